import type { Step } from './fields.js';

export const review: Step = {
  id: 'review',
  title: 'Review',
  perGuest: false,
  why: [
    'Read what will be written before it is written. The exposure score is systemd’s own reading of each',
    'unit, from 0 (every sandboxing setting used) to 10 (none); lower is better. The map lists which files,',
    'devices, sockets and network each guest’s QEMU can reach, what systemd keeps out of its reach, and what',
    'only AppArmor keeps out (reading /usr and /etc): that part holds only where AppArmor is enforcing.',
  ],
  fields: () => [],
  screen: 'review',
};
