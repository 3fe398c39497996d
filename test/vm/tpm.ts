// The TPM's AppArmor profiles under a real kernel: a Debian kernel (AppArmor enforcing) boots real systemd under
// TCG, `qemu-harden apply` installs a bundle of two guests with a TPM on the live system, and systemd starts each
// guest: its swtpm (swtpm_setup first) under its own enforcing profile, then QEMU, which reaches the TPM through
// its socket. Then the systemd fence is lifted from guest alpha's units by drop-ins, so that only AppArmor stands
// between them and what is not theirs: alpha's swtpm pointed at beta's TPM state (handed to alpha's user, so file
// permissions allow it), and alpha's QEMU pointed at its own TPM's state, are each refused. The same swtpm, and the
// same QEMU, without their profiles open those files: it is AppArmor that keeps them out. A part of the shared
// AppArmor VM (test/apparmor-vm.test.ts, test/vmshare.ts).
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BOOT_MARKER, writeBootDisk } from '../bootdisk.js';
import { BIN, generateBundle, REPO } from '../helpers.js';
import { diskSwapDropIn } from '../unitfile.js';
import { assertProofDone, reported, type VmResult } from '../vmboot.js';
import type { VmPart } from '../vmshare.js';

const GUESTS = ['alpha', 'beta'];
const state = (g: string) => `/var/lib/qemu-harden/${g}/tpm2`;
const cli = BIN.replace(REPO, '/qh');

/**
 * alpha's swtpm on beta's state, with the systemd fence lifted; `more` adds settings (AppArmorProfile= off). Started
 * on its own here, without QEMU, it is kept running (StopWhenUnneeded=no) so that the proof can talk to it. Without
 * mode=: swtpm would set the mode of beta's state file, which alpha's user does not own, and fail before it reads it.
 */
const swtpmOnBeta = (more: string[] = []) =>
  [
    '[Unit]',
    'StopWhenUnneeded=no',
    '[Service]',
    'ExecStartPre=',
    'ExecStart=',
    `ExecStart=/usr/bin/swtpm socket --tpm2 --tpmstate dir=${state('beta')} --ctrl type=unixio,fd=3 --seccomp action=kill`,
    'TemporaryFileSystem=',
    'BindPaths=',
    'InaccessiblePaths=',
    `ReadWritePaths=${state('beta')}`,
    ...more,
    '',
  ].join('\n');

const PROOF = `cd /
node ${cli} apply /bundle --yes > /run/apply.log 2>&1
r apply_exit $?
grep -vE '^  (done|skip) ' /run/apply.log | sed 's/^/RESULT apply_log=/'
r profiles "$(grep -c '^qemu-harden-.* (enforce)$' /sys/kernel/security/apparmor/profiles)"
for g in ${GUESTS.join(' ')}; do
  r "$g.t_start" "$(cut -d' ' -f1 /proc/uptime)"
  systemctl start qemu-$g.service
  r "$g.start" $?
  journalctl -b -u qemu-$g-tpm.socket -u qemu-$g-tpm.service -u qemu-$g.service --no-pager -o cat | sed "s/^/RESULT $g.journal=/"
  booted() { grep -qs '${BOOT_MARKER}' "/var/log/qemu-harden/$g/serial.log"; }
  failed() { [ "$(systemctl show -p ActiveState --value qemu-$g.service)" != active ]; }
  booted_or_failed() { booted || failed; }
  wait_until 300 booted_or_failed
  booted && r "$g.marker" yes || r "$g.marker" no
  t=$(systemctl show -p MainPID --value qemu-$g-tpm.service)
  q=$(systemctl show -p MainPID --value qemu-$g.service)
  r "$g.tpm_label" "$(cat /proc/$t/attr/current)"
  r "$g.qemu_label" "$(cat /proc/$q/attr/current)"
  r "$g.tpm_uid" "$(grep '^Uid:' /proc/$t/status | cut -f2)"
  r "$g.user_uid" "$(id -u qemu-$g)"
  r "$g.state" "$(ls /var/lib/qemu-harden/$g/tpm2)"
  r "$g.query_tpm" "$(node /qh/test/clients/qmp.mjs /run/qemu-harden/$g/qmp.sock '{"execute":"query-tpm"}')"
done
r t_guests_done "$(cut -d' ' -f1 /proc/uptime)"
r denied_while_running "$(dmesg | grep -c 'apparmor="DENIED"')"

systemctl stop qemu-alpha.service qemu-beta.service
# beta's TPM state as if handed to alpha's user: file permissions let alpha's swtpm in.
chmod 0711 /var/lib/qemu-harden/beta
chown -R qemu-alpha:qemu-alpha ${state('beta')}

try_tpm() {
  name=$1; conf=$2
  r "$name.t" "$(cut -d' ' -f1 /proc/uptime)"
  echo "qh-proof: begin $name" > /dev/kmsg
  mkdir -p /run/systemd/system/qemu-alpha-tpm.service.d
  cp /proof/$conf /run/systemd/system/qemu-alpha-tpm.service.d/test.conf
  systemctl daemon-reload
  systemctl reset-failed qemu-alpha-tpm.service qemu-alpha-tpm.socket
  systemctl start qemu-alpha-tpm.service
  r "$name.start" $?
  r "$name.label" "$(cat /proc/$(systemctl show -p MainPID --value qemu-alpha-tpm.service)/attr/current 2>&1)"
  # QEMU's first word to a TPM: initialise it, which reads its state.
  swtpm_ioctl --unix /run/qemu-harden/alpha/tpm.sock -i > /run/ioctl.log 2>&1
  r "$name.init" $?
  sed "s/^/RESULT $name.ioctl=/" /run/ioctl.log
  journalctl -b -u qemu-alpha-tpm.service --no-pager -o cat | tail -5 | sed "s/^/RESULT $name.journal=/"
  echo "qh-proof: end $name" > /dev/kmsg
  systemctl stop qemu-alpha-tpm.service qemu-alpha-tpm.socket
  rm -r /run/systemd/system/qemu-alpha-tpm.service.d
  systemctl daemon-reload
}
try_tpm swtpm_apparmor swtpm-on-beta.conf
try_tpm swtpm_unconfined swtpm-on-beta-unconfined.conf

# alpha's QEMU with its TPM's state as its disk. Its profile denies that state with an explicit deny rule, which
# AppArmor does not log: the same QEMU without its profile is what shows AppArmor refused it.
try_qemu() {
  name=$1; conf=$2
  r "$name.t" "$(cut -d' ' -f1 /proc/uptime)"
  mkdir -p /run/systemd/system/qemu-alpha.service.d
  cp /proof/$conf /run/systemd/system/qemu-alpha.service.d/test.conf
  systemctl daemon-reload
  systemctl reset-failed qemu-alpha.service
  since=$(date '+%Y-%m-%d %H:%M:%S')
  systemctl start qemu-alpha.service
  # Until QEMU has ended, saying it could not open the file, or holds the file open.
  opened() { q=$(systemctl show -p MainPID --value qemu-alpha.service); [ "$q" != 0 ] && ls -l /proc/$q/fd 2>/dev/null | grep -q tpm2-00.permall; }
  settled() { case "$(systemctl show -p ActiveState --value qemu-alpha.service)" in failed|inactive) return 0;; esac; opened; }
  wait_until 300 settled
  r "$name.active" "$(systemctl show -p ActiveState --value qemu-alpha.service)"
  q=$(systemctl show -p MainPID --value qemu-alpha.service)
  r "$name.label" "$([ "$q" != 0 ] && cat /proc/$q/attr/current)"
  r "$name.open" "$([ "$q" != 0 ] && ls -l /proc/$q/fd | grep -c tpm2-00.permall)"
  r "$name.error" "$(journalctl -b -u qemu-alpha.service --since "$since" --no-pager -o cat | grep -o "Could not open '[^']*': [A-Za-z ]*" | tail -1)"
  systemctl stop qemu-alpha.service
  rm -r /run/systemd/system/qemu-alpha.service.d
  systemctl daemon-reload
}
try_qemu qemu_apparmor qemu-on-own-tpm-state.conf
try_qemu qemu_unconfined qemu-on-own-tpm-state-unconfined.conf

dmesg | grep -E 'apparmor="DENIED"|qh-proof: ' | sed 's/^/RESULT kmsg=/'
r done yes
`;

export const tpm: VmPart = {
  name: 'tpm',
  cpuSeconds: 50,
  timeoutSeconds: 1800,
  tools: [
    ['swtpm', 'swtpm'],
    ['swtpm_ioctl', 'swtpm-tools'],
  ],
  async prepare(root, work) {
    const bundle = await generateBundle(work, {
      schemaVersion: 1,
      useCase: 'emulation',
      acceptedRisks: [{ risk: 'emulation', reason: 'the proof VM has no KVM; its guests are test boot sectors' }],
      guests: GUESTS.map((name) => ({
        name,
        memoryMiB: 64,
        tpm: 'tpm2',
        disks: [{ path: `/images/${name}.img`, format: 'raw' }],
      })),
    });
    cpSync(bundle, join(root, 'bundle'), { recursive: true });
    mkdirSync(join(root, 'images'));
    for (const g of GUESTS) writeBootDisk(join(root, `images/${g}.img`));
    mkdirSync(join(root, 'proof'));
    writeFileSync(join(root, 'proof/swtpm-on-beta.conf'), swtpmOnBeta());
    writeFileSync(join(root, 'proof/swtpm-on-beta-unconfined.conf'), swtpmOnBeta(['AppArmorProfile=']));
    const unit = readFileSync(join(bundle, 'root/etc/systemd/system/qemu-alpha.service'), 'utf8');
    const onOwnState = (more: string[]) =>
      diskSwapDropIn(unit, '/images/alpha.img', `${state('alpha')}/tpm2-00.permall`, [
        'TemporaryFileSystem=',
        'InaccessiblePaths=',
        `ReadWritePaths=${state('alpha')}`,
        ...more,
      ]);
    writeFileSync(join(root, 'proof/qemu-on-own-tpm-state.conf'), onOwnState([]));
    writeFileSync(join(root, 'proof/qemu-on-own-tpm-state-unconfined.conf'), onOwnState(['AppArmorProfile=']));
    return PROOF;
  },
  tests,
};

function tests(part: () => VmResult): void {
  describe('under a real kernel with AppArmor, each guest’s swtpm is confined to its own TPM state', () => {
    const result = (key: string) => reported(part(), key);

    /** The paths AppArmor denied to a profile between a run's markers in the kernel log. */
    const denials = (run: string, profile: string) => {
      const lines = part()
        .console.split('\n')
        .filter((l) => l.includes('RESULT kmsg='));
      const from = lines.findIndex((l) => l.includes(`qh-proof: begin ${run}`));
      const to = lines.findIndex((l) => l.includes(`qh-proof: end ${run}`));
      assert.ok(from >= 0 && to > from, `markers for ${run} in the kernel log`);
      return lines
        .slice(from, to)
        .map((l) => /apparmor="DENIED" operation="[a-z_]+" profile="([^"]+)" name="([^"]*)"/.exec(l))
        .filter((m) => m !== null && m[1] === profile)
        .map((m) => m![2]!);
    };

    test('the VM ran the whole proof, the bundle applied, and each guest has its QEMU and TPM profiles enforcing', () => {
      assertProofDone(part());
      assert.equal(result('apply_exit'), '0');
      assert.equal(
        result('profiles'),
        String(GUESTS.length * 2),
        'a QEMU profile and a TPM profile per guest, enforcing',
      );
    });

    for (const g of GUESTS)
      test(`${g}: swtpm_setup, swtpm and QEMU run under their enforcing profiles, and QEMU sees the TPM`, () => {
        assert.equal(result(`${g}.start`), '0');
        assert.equal(result(`${g}.marker`), 'yes');
        assert.equal(result(`${g}.tpm_label`), `qemu-harden-${g}-tpm (enforce)`);
        assert.equal(result(`${g}.qemu_label`), `qemu-harden-${g} (enforce)`);
        assert.equal(result(`${g}.tpm_uid`), result(`${g}.user_uid`));
        assert.equal(result(`${g}.state`), 'tpm2-00.permall', 'swtpm_setup wrote the state under the profile');
        const answers = JSON.parse(result(`${g}.query_tpm`)) as {
          return?: { model: string; options: { type: string } }[];
        }[];
        const tpm = answers.find((m) => Array.isArray(m.return))?.return;
        assert.deepEqual(
          tpm?.map((t) => [t.model, t.options.type]),
          [['tpm-crb', 'emulator']],
        );
      });

    test('no AppArmor denial while the guests and their TPMs ran: the profiles allow what they need', () => {
      assert.equal(
        result('denied_while_running'),
        '0',
        part()
          .console.split('\n')
          .filter((l) => l.includes('DENIED'))
          .join('\n'),
      );
    });

    test('alpha’s swtpm pointed at beta’s TPM state (its files alpha’s, systemd fence lifted): AppArmor denies it', () => {
      assert.equal(result('swtpm_apparmor.start'), '0');
      assert.equal(result('swtpm_apparmor.label'), 'qemu-harden-alpha-tpm (enforce)');
      assert.notEqual(result('swtpm_apparmor.init'), '0', 'the TPM cannot initialise from beta’s state');
      const denied = denials('swtpm_apparmor', 'qemu-harden-alpha-tpm');
      assert.ok(
        denied.some((p) => p.startsWith(`${state('beta')}/`)),
        `the kernel denied beta’s state to alpha’s swtpm: ${JSON.stringify(denied)}`,
      );
    });

    test('the same swtpm without its profile initialises from beta’s state: AppArmor is what kept it out', () => {
      assert.equal(result('swtpm_unconfined.start'), '0');
      assert.equal(result('swtpm_unconfined.label'), 'unconfined');
      assert.equal(result('swtpm_unconfined.init'), '0');
      assert.deepEqual(denials('swtpm_unconfined', 'qemu-harden-alpha-tpm'), []);
    });

    test('alpha’s QEMU pointed at its own TPM’s state (systemd fence lifted): its profile refuses it, and without the profile it opens', () => {
      assert.equal(
        result('qemu_apparmor.error'),
        `Could not open '${state('alpha')}/tpm2-00.permall': Permission denied`,
      );
      assert.notEqual(result('qemu_apparmor.active'), 'active', 'QEMU did not start on it');
      assert.equal(result('qemu_unconfined.error'), '', 'the same QEMU without its profile opens the file');
      assert.equal(result('qemu_unconfined.active'), 'active');
      assert.equal(result('qemu_unconfined.label'), 'unconfined');
      assert.equal(result('qemu_unconfined.open'), '1', 'and holds it open');
    });
  });
}
