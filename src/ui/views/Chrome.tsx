// What surrounds every screen: the header, the why panel, the quit question and the footer of keys.
import { Box, Text } from 'ink';
import { STEPS } from '../../../steps/index.js';
import { footerOf } from '../keys.js';
import { commandsOf, stepOf, type State } from '../state.js';
import { color } from './text.js';

export function Header({ s }: { s: State }) {
  const step = stepOf(s);
  const guest = step.perGuest
    ? ` · guest ${s.guest + 1}/${s.draft.guests.length} "${String(s.draft.guests[s.guest]?.name ?? '')}"`
    : '';
  return (
    <Text bold color={color('cyan')} wrap="truncate-end">
      qemu-harden · {s.step + 1}/{STEPS.length} {step.title}
      {guest}
    </Text>
  );
}

export function Why({ s }: { s: State }) {
  if (!s.help) return null;
  return (
    <Box borderStyle="round" paddingX={1}>
      <Text>{stepOf(s).why.join(' ')}</Text>
    </Box>
  );
}

export function Footer({ s }: { s: State }) {
  const step = stepOf(s);
  const { commands, labels } = commandsOf(s);
  const text = s.quitting
    ? 'y quit without writing · n keep going'
    : s.confirm
      ? 'y remove it · n keep it'
      : s.review.confirmReplace
        ? 'y replace it · n keep it'
        : footerOf(commands, labels);
  return (
    <Box flexDirection="column">
      {s.notice ? <Text color={color('yellow')}>{s.notice}</Text> : null}
      {s.quitting ? <Text color={color('yellow')}>Quit without writing anything? (y/n)</Text> : null}
      {s.confirm && !s.quitting ? <Text color={color('yellow')}>{s.confirm.question}</Text> : null}
      <Text dimColor>{text}</Text>
      {step.tip && !s.help ? <Text dimColor>{step.tip}</Text> : null}
    </Box>
  );
}
