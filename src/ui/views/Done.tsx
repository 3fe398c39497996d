// The end: where the bundle (or the answers) went, and the next commands, written the way this run was started.
import { Box, Text } from 'ink';
import { invocation, sudoInvocation } from '../../invocation.js';
import type { State } from '../state.js';
import { color } from './text.js';

export function Done({ s }: { s: State }) {
  const o = s.outcome!;
  const me = invocation();
  return (
    <Box flexDirection="column">
      <Text color={color('green')}>
        ✔ {o.kind === 'bundle' ? 'Bundle written to' : 'Answers saved to'} {o.path}
      </Text>
      <Text> </Text>
      <Text>Next:</Text>
      {o.kind === 'bundle' ? (
        <>
          <Text>  {me} verify {o.path}</Text>
          <Text>  {me} apply {o.path} --dry-run</Text>
          <Text>  {sudoInvocation()} apply {o.path}</Text>
          <Text>  then read {o.path}/README.md: sockets, who may use them, checking the host</Text>
        </>
      ) : (
        <>
          <Text>  {me} generate --answers {o.path} --out ./qemu-harden-bundle</Text>
          <Text>  {me} --answers {o.path}   (to edit it again)</Text>
        </>
      )}
    </Box>
  );
}
