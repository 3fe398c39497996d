// `qemu-harden audit` under a real kernel with AppArmor enforcing and cgroup v2 (a Debian kernel booting real
// systemd under TCG, test/vmboot.ts): what a container on this host cannot show. A guest from an applied bundle
// (its own profile, MemoryMax=, TasksMax=) has no finding of its own; a guest in an AppArmor profile in complain
// mode, and an unconfined one without a memory limit, are reported as such; AppArmor being on is seen; and a
// denial the kernel logged for the bundle's profile is mapped to the answer that would grant it. A part of the
// shared AppArmor VM (test/apparmor-vm.test.ts, test/vmshare.ts).
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { writeBootDisk } from '../bootdisk.js';
import { BIN, generateBundle, REPO } from '../helpers.js';
import { assertProofDone, reported, type VmResult } from '../vmboot.js';
import type { VmPart } from '../vmshare.js';

const QH = BIN.replace(REPO, '/qh');
const QEMU =
  '/usr/bin/qemu-system-x86_64 -nodefaults -no-user-config -S -display none -machine q35 -accel tcg -m 32 -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

const PROOF = `cd /
node ${QH} apply /bundle --yes > /run/apply.log 2>&1
r apply_exit $?
sed 's/^/APPLY /' /run/apply.log
apparmor_parser -r /proof/qh-complain
r complain_loaded $?
systemctl start qemu-kept.service
systemd-run --unit=complain -p DynamicUser=yes -p AppArmorProfile=qh-complain -p MemoryMax=256M -p TasksMax=64 ${QEMU} -name complain
systemd-run --unit=loose -p DynamicUser=yes ${QEMU} -name loose
# Until the three QEMUs are past start-up (each has its seccomp filter) and the bundle's guest has its QMP socket.
qemus_ready() {
  n=0
  for s in /proc/[0-9]*/status; do grep -q '^Name:.qemu-system' $s 2>/dev/null && grep -q '^Seccomp:.2' $s 2>/dev/null && n=$((n+1)); done
  [ $n -ge 3 ] && [ -S /run/qemu-harden/kept/qmp.sock ]
}
wait_until 600 qemus_ready
node ${QH} audit --json > /run/audit1.json
r audit1_exit $?
r audit1.json "$(tr -d '\\n' < /run/audit1.json)"
# status judges the bundle's guest with the same checks, held to its installed unit, with its profile switched to
# complain mode for the time of that one look (enforcing again before the denial below).
apparmor_parser -r -C /etc/apparmor.d/qemu-harden-kept
node ${QH} status --json > /run/status.json
r status_exit $?
r status.json "$(tr -d '\\n' < /run/status.json)"
apparmor_parser -r /etc/apparmor.d/qemu-harden-kept
systemd-run --unit=denied -p DynamicUser=yes -p AppArmorProfile=qemu-harden-kept ${QEMU} -name denied -drive file=/images/extra.img,format=raw,if=virtio
# Until the kernel has logged the denial of the disk the kept guest's profile does not grant, or QEMU holds it open.
extra_denied() { dmesg | grep 'apparmor="DENIED"' | grep -q extra.img; }
extra_open() { ls -l /proc/$(systemctl show -p MainPID --value denied.service)/fd 2>/dev/null | grep -q extra.img; }
settled() { extra_denied || extra_open; }
wait_until 600 settled
node ${QH} audit --json > /run/audit2.json
r audit2_exit $?
r audit2.json "$(tr -d '\\n' < /run/audit2.json)"
r done yes
`;

export const audit: VmPart = {
  name: 'audit',
  cpuSeconds: 37,
  timeoutSeconds: 1800,
  tools: [['apparmor_parser', 'apparmor']],
  // audit reads /dev/kmsg from the boot on, and asserts the one denial there is its own.
  kernelLogFromBoot: true,
  async prepare(root, work) {
    const bundle = await generateBundle(work, {
      schemaVersion: 1,
      useCase: 'emulation',
      acceptedRisks: [{ risk: 'emulation', reason: 'the proof VM has no KVM; its guest is a test boot sector' }],
      guests: [{ name: 'kept', memoryMiB: 32, disks: [{ path: '/images/kept.img', format: 'raw' }] }],
    });
    cpSync(bundle, join(root, 'bundle'), { recursive: true });
    mkdirSync(join(root, 'images'));
    writeBootDisk(join(root, 'images/kept.img'));
    writeBootDisk(join(root, 'images/extra.img'));
    chmodSync(join(root, 'images/extra.img'), 0o644);
    mkdirSync(join(root, 'proof'));
    writeFileSync(
      join(root, 'proof/qh-complain'),
      'abi <abi/3.0>,\ninclude <tunables/global>\nprofile qh-complain flags=(complain) {\n}\n',
    );
    return PROOF;
  },
  tests,
};

function tests(part: () => VmResult): void {
  describe('audit under a real kernel with AppArmor enforcing and cgroup v2', () => {
    const result = (key: string) => reported(part(), key);
    const report = (run: string) =>
      JSON.parse(result(`${run}.json`)) as {
        root: boolean;
        processes: { guest: string }[];
        findings: { guest: string | null; check: string; answer: string | null; evidence: string }[];
      };
    const findings = (run: string) => report(run).findings;
    const checks = (run: string, guest: string) =>
      findings(run)
        .filter((f) => f.guest === guest)
        .map((f) => f.check)
        .sort();

    test('the VM ran the whole proof', () => {
      assertProofDone(part());
      assert.equal(
        result('apply_exit'),
        '0',
        part()
          .console.split('\n')
          .filter((l) => l.startsWith('APPLY '))
          .join('\n'),
      );
      assert.equal(result('complain_loaded'), '0');
      assert.equal(report('audit1').root, true);
      assert.deepEqual(
        report('audit1')
          .processes.map((p) => p.guest)
          .sort(),
        ['complain', 'kept', 'loose'],
      );
    });

    test('the bundle’s guest, confined and limited, has no finding but the TCG note; AppArmor is seen as enabled', () => {
      assert.deepEqual(checks('audit1', 'kept'), ['process.tcg'], part().console.slice(-4000));
      const host = findings('audit1').filter((f) => f.guest === null);
      assert.ok(!host.some((f) => f.check === 'host.apparmor'), 'AppArmor is enabled in this kernel');
      for (const f of host)
        assert.match(
          `${f.check} ${f.evidence}`,
          /^host\.device-mode \/dev\/(net\/tun|vhost-net): mode 0666/,
          'only systemd’s default device modes remain',
        );
    });

    test('a profile in complain mode, and an unconfined guest without a memory limit, are reported', () => {
      assert.deepEqual(checks('audit1', 'complain'), ['process.apparmor', 'process.tcg']);
      assert.match(
        findings('audit1').find((f) => f.guest === 'complain' && f.check === 'process.apparmor')!.evidence,
        /attr\/current: qh-complain \(complain\)$/,
      );
      assert.deepEqual(checks('audit1', 'loose'), ['process.apparmor', 'process.cgroup-memory', 'process.tcg']);
      assert.match(
        findings('audit1').find((f) => f.guest === 'loose' && f.check === 'process.cgroup-memory')!.evidence,
        /loose\.service\/memory\.max: max$/,
      );
      assert.equal(result('audit1_exit'), '1');
    });

    test('status judges the same guest with the same checks against its installed unit: its profile in complain mode is the one thing weaker, its limits are the kernel’s and match the unit', () => {
      assert.equal(result('status_exit'), '1', result('status.json'));
      const r = JSON.parse(result('status.json')) as {
        unseen: unknown[];
        guests: {
          name: string;
          running: boolean;
          weaker: string[];
          expected: { memoryMax: string | null };
          process: { apparmor: unknown; limits: { memoryMax: string | null; pidsMax: string | null } };
        }[];
      };
      assert.deepEqual(r.unseen, []);
      const kept = r.guests.find((g) => g.name === 'kept')!;
      assert.equal(kept.running, true);
      assert.deepEqual(kept.weaker, ['AppArmor profile qemu-harden-kept in complain mode, not enforce']);
      assert.deepEqual(kept.process.apparmor, { label: 'qemu-harden-kept', mode: 'complain' });
      assert.equal(kept.process.limits.memoryMax, kept.expected.memoryMax, 'memory.max is MemoryMax=');
      assert.match(kept.process.limits.pidsMax ?? '', /^\d+$/, 'pids.max is a limit (TasksMax=)');
    });

    test('an AppArmor denial for the bundle’s profile is reported with the answer that grants it', () => {
      const d = findings('audit2').filter((f) => f.check === 'host.apparmor-denied');
      assert.equal(d.length, 1, JSON.stringify(findings('audit2'), null, 1));
      assert.equal(d[0]!.guest, 'kept', 'the denial is attributed to the guest running under that profile');
      assert.equal(d[0]!.answer, 'guests.N.disks');
      assert.match(
        d[0]!.evidence,
        /apparmor="DENIED" operation="open".* profile="qemu-harden-kept" name="\/images\/extra\.img"/,
      );
    });
  });
}
