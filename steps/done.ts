import type { Step } from './fields.js';

export const done: Step = {
  id: 'done',
  title: 'Done',
  perGuest: false,
  why: [
    'The bundle changes nothing by itself. `verify` reads every file with the tool that will use it;',
    '`apply --dry-run` shows what would change on this host; `apply` installs it.',
  ],
  fields: () => [],
  screen: 'done',
};
