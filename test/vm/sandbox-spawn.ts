// An accepted sandbox-spawn risk must be usable where AppArmor enforces: under a real kernel (Debian's, TCG,
// AppArmor on) the bundle's profiles are loaded, and two QEMUs run with `-sandbox on,spawn=allow`, each under
// its guest's profile: one whose answers accepted sandbox-spawn, one whose answers did not. Each starts an
// `exec:` migration: QEMU runs /bin/sh, which every profile lets run (the unit's stop helpers are shell
// scripts confined by the same profile), and the shell runs bash, which only the profile written for the
// accepted risk allows. Bash says so on its standard error, which QEMU's log receives: the migration's own
// status cannot tell, since a guest with no devices sends less than a pipe holds and completes unread. A part of the
// shared AppArmor VM (test/apparmor-vm.test.ts, test/vmshare.ts).
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generateBundle } from '../helpers.js';
import { assertProofDone, reported, type VmResult } from '../vmboot.js';
import type { VmPart } from '../vmshare.js';

const QMP = [
  '{"execute":"qmp_capabilities"}',
  // A migration to a command QEMU starts itself: /bin/sh -c, then bash, which marks that it ran and reads the
  // stream with builtins only.
  '{"execute":"migrate","arguments":{"uri":"exec:exec /bin/bash -c \\"echo qh-bash-ran >&2; while read -r l; do :; done\\""}}',
  '{"execute":"query-migrate"}',
].join('\n');

const PROOF = `for p in /bundle/root/etc/apparmor.d/qemu-harden-*; do cp "$p" /etc/apparmor.d/; done
mkdir -p /etc/apparmor.d/qemu-harden.d /etc/apparmor.d/abstractions
cp /bundle/root/etc/apparmor.d/qemu-harden.d/* /etc/apparmor.d/qemu-harden.d/
cp /bundle/root/etc/apparmor.d/abstractions/qemu-harden /etc/apparmor.d/abstractions/
for g in allowed denied; do
  apparmor_parser -r /etc/apparmor.d/qemu-harden-$g > /run/parse-$g.log 2>&1
  r "$g.loaded" $?
  echo "qh-proof: begin $g" > /dev/kmsg
  # Ask for the migration's state every 2 s until QEMU says it has ended (TCG in a VM is slow), then quit.
  ( printf '%s\\n' '${QMP.split('\n')[0]}' '${QMP.split('\n')[1]}'
    asked_ended() { sleep 2; printf '%s\\n' '${QMP.split('\n')[2]}'; grep -qE '"status": *"(completed|failed|cancelled)"' /run/qmp-$g.log; }
    wait_until 600 asked_ended
    printf '%s\\n' '{"execute":"quit"}' ) |
    aa-exec -p qemu-harden-$g -- /usr/bin/qemu-system-x86_64 -machine none -nodefaults -display none -m 16 \\
      -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=allow,resourcecontrol=deny -qmp stdio > /run/qmp-$g.log 2>&1
  r "$g.exit" $?
  r "$g.status" "$(grep -o '"status": *"[a-z-]*"' /run/qmp-$g.log | tail -1 | sed 's/.*"\\([a-z-]*\\)"$/\\1/')"
  r "$g.bash_ran" "$(grep -c 'qh-bash-ran' /run/qmp-$g.log)"
  r "$g.exec_denied" "$(dmesg | sed -n "/qh-proof: begin $g/,\\$p" | grep 'apparmor="DENIED"' | grep -c 'operation="exec"')"
  r "$g.bash_denied" "$(dmesg | sed -n "/qh-proof: begin $g/,\\$p" | grep 'apparmor="DENIED"' | grep 'operation="exec"' | grep -c 'name="/usr/bin/bash"')"
done
dmesg | grep 'apparmor="DENIED"' | sed 's/^/RESULT kmsg=/'
r done yes
`;

export const sandboxSpawn: VmPart = {
  name: 'sandbox-spawn',
  cpuSeconds: 3,
  timeoutSeconds: 1800,
  tools: [
    ['aa-exec', 'apparmor'],
    ['apparmor_parser', 'apparmor'],
  ],
  // The profiles the script copied into /etc/apparmor.d itself (no apply installed them).
  cleanup:
    'rm -rf /etc/apparmor.d/qemu-harden-* /etc/apparmor.d/qemu-harden.d /etc/apparmor.d/abstractions/qemu-harden\n',
  async prepare(root, work) {
    const disk = (n: string) => ({ path: `/srv/${n}.img`, format: 'raw' });
    const bundle = await generateBundle(work, {
      schemaVersion: 1,
      useCase: 'emulation',
      guests: [
        { name: 'allowed', disks: [disk('allowed')], isolation: { sandbox: { spawn: 'allow' } } },
        { name: 'denied', disks: [disk('denied')] },
      ],
      acceptedRisks: [
        { risk: 'emulation', reason: 'the proof VM has no KVM and runs no guest code' },
        { risk: 'sandbox-spawn', guest: 'allowed', reason: 'QEMU runs an exec: migration command' },
      ],
    });
    cpSync(bundle, join(root, 'bundle'), { recursive: true });
    return PROOF;
  },
  tests,
};

function tests(part: () => VmResult): void {
  describe('an accepted sandbox-spawn risk under a real kernel with AppArmor enforcing', () => {
    const result = (key: string) => reported(part(), key);

    test('both profiles load and the VM ran the whole proof', () => {
      assertProofDone(part());
      assert.equal(result('allowed.loaded'), '0');
      assert.equal(result('denied.loaded'), '0');
    });

    test('with the risk accepted, the profile lets the shell QEMU runs start bash: bash runs, no exec is denied, the migration completes', () => {
      assert.equal(
        result('allowed.exec_denied'),
        '0',
        part()
          .console.split('\n')
          .filter((l) => l.includes('DENIED'))
          .join('\n'),
      );
      assert.equal(result('allowed.bash_ran'), '1');
      assert.equal(result('allowed.status'), 'completed');
    });

    test('without it, AppArmor alone stops bash even though the seccomp filter allows spawning', () => {
      assert.notEqual(
        result('denied.bash_denied'),
        '0',
        part()
          .console.split('\n')
          .filter((l) => l.includes('DENIED'))
          .join('\n'),
      );
      assert.equal(result('denied.bash_ran'), '0');
    });
  });
}
