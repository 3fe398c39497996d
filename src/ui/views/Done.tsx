// The end: where the bundle (or the answers) went, and the next commands, written the way this run was started.
import { Box, Text } from 'ink';
import type { Engine } from '../hooks.js';
import type { State } from '../state.js';
import { color } from './text.js';

export function Done({ s, engine }: { s: State; engine: Engine }) {
  const o = s.outcome!;
  const { me, sudo } = engine.rerun();
  return (
    <Box flexDirection="column">
      <Text color={color('green')}>
        ✔ {o.kind === 'bundle' ? 'Bundle written to' : 'Answers saved to'} {o.path}
      </Text>
      <Text> </Text>
      <Text>Next:</Text>
      {/* Strings, not JSX text: the formatter treats runs of spaces in JSX text as one, and the indent is two. */}
      {o.kind === 'bundle' ? (
        <>
          <Text>{`  ${me} verify ${o.path}`}</Text>
          <Text>{`  ${me} apply ${o.path} --dry-run`}</Text>
          <Text>{`  ${sudo} apply ${o.path}`}</Text>
          <Text>{`  then read ${o.path}/README.md: sockets, who may use them, checking the host`}</Text>
        </>
      ) : (
        <>
          <Text>{`  ${me} generate --answers ${o.path} --out ./qemu-harden-bundle`}</Text>
          <Text>{`  ${me} --answers ${o.path}   (to edit it again)`}</Text>
        </>
      )}
    </Box>
  );
}
