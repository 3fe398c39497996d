// The end: where the bundle (or the answers) went, and the next commands, written the way this run was started
// and laid out so that copying what is shown and pasting it into a shell runs it (never cut by a bare newline).
import { Box, Text, useStdout } from 'ink';
import { visible } from '../../escape.js';
import type { Engine } from '../hooks.js';
import type { State } from '../state.js';
import { color, commandLines, shellWords } from './text.js';

export function Done({ s, engine }: { s: State; engine: Engine }) {
  const { stdout } = useStdout();
  const width = (stdout.columns || 80) - 1;
  const o = s.outcome!;
  const { me, sudo } = engine.rerun();
  const command = (line: string, ...args: string[]) =>
    commandLines([...shellWords(line), ...args], width).map((l, i) => <Text key={i}>{l}</Text>);
  return (
    <Box flexDirection="column">
      <Text color={color('green')}>
        ✔ {o.kind === 'bundle' ? 'Bundle written to' : 'Answers saved to'} {visible(o.path)}
      </Text>
      <Text> </Text>
      {o.kind === 'bundle' ? (
        <>
          <Text>Next: check it, see what it would change here, install it.</Text>
          {command(me, 'verify', o.path)}
          {command(me, 'apply', o.path, '--dry-run')}
          {command(sudo, 'apply', o.path)}
          <Text>Then read {visible(o.path)}/README.md: sockets, who may use them, checking the host.</Text>
        </>
      ) : (
        <>
          <Text>Next: write the bundle from them,</Text>
          {command(me, 'generate', '--answers', o.path, '--out', './qemu-harden-bundle')}
          <Text>or go through the interview with them again:</Text>
          {command(me, '--answers', o.path)}
        </>
      )}
    </Box>
  );
}
