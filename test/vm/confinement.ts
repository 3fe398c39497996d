// Proofs 2–6 under a real kernel: a Debian kernel (AppArmor enforcing, cgroup v2) boots real systemd under
// TCG. Inside, `qemu-harden apply` installs the multi-tenant bundle on the live system (users, directories,
// udev reload and trigger, AppArmor profiles, daemon-reload), systemd starts each guest, and the proof script
// reads what the kernel says about each QEMU process. Nothing here touches the host: the VM has its own
// devices, users and /etc. A part of the shared AppArmor VM (test/apparmor-vm.test.ts, test/vmshare.ts).
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { validate } from '../../src/answers.js';
import { memoryMaxMiB, cpuQuotaPercent } from '../../src/guest.js';
import { loadPreset } from '../../src/sources/preset.js';
import { BOOT_MARKER, writeBootDisk } from '../bootdisk.js';
import { BIN, cli, generateBundle, REPO } from '../helpers.js';
import { diskSwapDropIn } from '../unitfile.js';
import { assertProofDone, reported, type VmResult } from '../vmboot.js';
import type { VmPart } from '../vmshare.js';

const GLOB_DISK = '/images/g*a?m[1] x,y.img';
const GLOB_DECOY = '/images/gXaYm1 x,y.img';

// The KVM bundle's users and groups (its udev rules name them) are created as boot would have: the part's files are
// laid over / after the boot.
const PROOF = (guests: string[]) => `cd /
systemd-sysusers
node ${BIN.replace(REPO, '/qh')} apply /bundle --yes > /run/apply.log 2>&1
r apply_exit $?
grep -E '^  (done|skip|FAIL) ' /run/apply.log | sed 's/^  /RESULT apply_step=/'
r tun "$(stat -c '%G %a' /dev/net/tun)"
r vhost "$(stat -c '%G %a' /dev/vhost-net)"
udevadm test /sys/class/misc/tun > /run/udevtest.log 2>&1
r udev_read_bundle "$(grep -c 'Reading rules file: /etc/udev/rules.d/65-qemu-harden.rules' /run/udevtest.log)"
r udev_read_kvm "$(grep -c 'Reading rules file: /etc/udev/rules.d/64-qemu-harden-kvm.rules' /run/udevtest.log)"
r udev_errors "$( (cat /run/udevtest.log; journalctl -b -u systemd-udevd --no-pager -o cat) | grep -c '^/etc/udev/rules.d/[0-9]*-qemu-harden[a-z-]*[.]rules:[0-9]')"
grep 'qemu-harden' /run/udevtest.log | sed 's/^/RESULT udevtest=/'
r profiles "$(grep -c '^qemu-harden-.* (enforce)$' /sys/kernel/security/apparmor/profiles)"

for g in ${guests.join(' ')}; do
  systemctl start qemu-$g.service
  wait_until 600 grep -qs '${BOOT_MARKER}' "/var/log/qemu-harden/$g/serial.log" && r "$g.marker" yes || r "$g.marker" no
  pid=$(systemctl show -p MainPID --value qemu-$g.service)
  r "$g.uid" "$(grep '^Uid:' /proc/$pid/status | cut -f2)"
  r "$g.user_uid" "$(id -u qemu-$g)"
  r "$g.gid" "$(grep '^Gid:' /proc/$pid/status | cut -f2)"
  r "$g.user_gid" "$(id -g qemu-$g)"
  r "$g.capeff" "$(grep '^CapEff:' /proc/$pid/status | cut -f2)"
  r "$g.nnp" "$(grep '^NoNewPrivs:' /proc/$pid/status | cut -f2)"
  r "$g.seccomp" "$(grep '^Seccomp:' /proc/$pid/status | cut -f2)"
  r "$g.label" "$(cat /proc/$pid/attr/current)"
  r "$g.cgroup" "$(cat /proc/$pid/cgroup)"
  cg=/sys/fs/cgroup/qemu.slice/qemu-$g.service
  r "$g.memory_max" "$(cat $cg/memory.max)"
  r "$g.cpu_max" "$(cat $cg/cpu.max)"
  r "$g.pids_max" "$(cat $cg/pids.max)"
  r "$g.cmdline_sandbox" "$(tr '\\0' '\\n' < /proc/$pid/cmdline | grep -A1 -x -- -sandbox | tail -1)"
  r "$g.tap_carrier" "$(cat /sys/class/net/qh-$g/carrier 2>&1)"
  r "$g.tap_owner" "$(cat /sys/class/net/qh-$g/owner 2>&1)"
  r "$g.vhost_fd" "$(ls -l /proc/$pid/fd | grep -c /dev/vhost-net)"
done
r denied_while_booting "$(dmesg | grep -c 'apparmor="DENIED"')"

# One line of JSON for a RESULT: JSON strings hold no raw newline, so dropping them keeps it the same document (a
# node to re-serialise it would cost a V8 start-up under TCG).
compact() { tr -d '\\n'; }
node ${BIN.replace(REPO, '/qh')} status --json > /run/status.json
r status_exit $?
r status "$(compact < /run/status.json)"
apparmor_parser -r -C /etc/apparmor.d/qemu-harden-alpha
node ${BIN.replace(REPO, '/qh')} status --json > /run/status-complain.json
r status_complain_exit $?
r status_complain "$(compact < /run/status-complain.json)"
apparmor_parser -r /etc/apparmor.d/qemu-harden-alpha

try_dropin() {
  unit=$1; conf=$2; name=$3
  echo "qh-proof: begin $name" > /dev/kmsg
  systemctl stop qemu-$unit.service
  mkdir -p /run/systemd/system/qemu-$unit.service.d
  cp /proof/$conf /run/systemd/system/qemu-$unit.service.d/test.conf
  systemctl daemon-reload
  refusals() { journalctl -b -u qemu-$unit.service --no-pager -o cat | grep -c "Could not open"; }
  markers() { grep -c '${BOOT_MARKER}' /var/log/qemu-harden/$unit/serial.log 2>/dev/null; }
  before=$(refusals)
  booted=$(markers)
  systemctl start qemu-$unit.service
  # Until QEMU has said which disk it could not open and has exited, or has opened it and booted from it (the
  # disk it was pointed at is a boot sector too, which writes the marker again).
  refused_again() { [ "$(refusals)" -gt "$before" ]; }
  booted_again() { [ "$(markers)" -gt "$booted" ]; }
  ended() { [ "$(systemctl show -p ActiveState --value qemu-$unit.service)" != active ]; }
  settled() { refused_again || booted_again; }
  wait_until 600 settled
  refused_again && wait_until 600 ended
  r "$name.state" "$(systemctl show -p ActiveState --value qemu-$unit.service)"
  r "$name.error" "$(journalctl -b -u qemu-$unit.service --no-pager -o cat | grep -o "Could not open '[^']*': [A-Za-z ]*" | tail -1)"
  echo "qh-proof: end $name" > /dev/kmsg
  systemctl stop qemu-$unit.service
  rm -r /run/systemd/system/qemu-$unit.service.d
  systemctl daemon-reload
}

chmod 0666 /images/beta.img "${GLOB_DECOY}"
try_dropin alpha alpha-beta-systemd.conf systemd_only
try_dropin alpha alpha-beta-apparmor.conf apparmor_only
try_dropin gamma gamma-decoy.conf glob_decoy
dmesg | grep -E 'apparmor="DENIED"|qh-proof: ' | sed 's/^/RESULT kmsg=/'
r done yes
`;

const GUESTS = ['alpha', 'beta', 'gamma'];
let answers: ReturnType<typeof validate>;

export const confinement: VmPart = {
  name: 'confinement',
  cpuSeconds: 67,
  timeoutSeconds: 1800,
  modules: ['tun', 'vhost_net'],
  async prepare(root, work) {
    const doc = structuredClone(loadPreset('multi-tenant').answers) as {
      useCase: string;
      guests: { name: string; memoryMiB: number; disks: { path: string; format: string }[] }[];
      acceptedRisks?: unknown[];
    };
    doc.useCase = 'emulation';
    doc.acceptedRisks = [{ risk: 'emulation', reason: 'the proof VM has no KVM; its guests are test boot sectors' }];
    for (const g of doc.guests) {
      g.memoryMiB = 64;
      g.disks = [{ path: g.name === 'gamma' ? GLOB_DISK : `/images/${g.name}.img`, format: 'raw' }];
    }
    const bundle = await generateBundle(work, doc);
    answers = validate(doc);

    cpSync(bundle, join(root, 'bundle'), { recursive: true });
    mkdirSync(join(root, 'images'));
    for (const p of ['/images/alpha.img', '/images/beta.img', GLOB_DISK, GLOB_DECOY]) writeBootDisk(join(root, p));
    mkdirSync(join(root, 'proof'));
    const kvmBundle = join(work, 'kvm-bundle');
    assert.equal((await cli(['generate', '--preset', 'kvm-tap', '--out', kvmBundle])).code, 0);
    mkdirSync(join(root, 'etc/udev/rules.d'), { recursive: true });
    cpSync(
      join(kvmBundle, 'root/etc/udev/rules.d/65-qemu-harden.rules'),
      join(root, 'etc/udev/rules.d/64-qemu-harden-kvm.rules'),
    );
    mkdirSync(join(root, 'etc/sysusers.d'), { recursive: true });
    cpSync(join(kvmBundle, 'root/etc/sysusers.d/qemu-harden.conf'), join(root, 'etc/sysusers.d/qemu-harden-kvm.conf'));
    const unit = (g: string) => readFileSync(join(bundle, `root/etc/systemd/system/qemu-${g}.service`), 'utf8');
    writeFileSync(
      join(root, 'proof/alpha-beta-systemd.conf'),
      diskSwapDropIn(unit('alpha'), '/images/alpha.img', '/images/beta.img', ['AppArmorProfile=']),
    );
    writeFileSync(
      join(root, 'proof/alpha-beta-apparmor.conf'),
      diskSwapDropIn(unit('alpha'), '/images/alpha.img', '/images/beta.img', [
        'TemporaryFileSystem=',
        'InaccessiblePaths=',
        'ReadWritePaths=/images/beta.img',
      ]),
    );
    writeFileSync(
      join(root, 'proof/gamma-decoy.conf'),
      diskSwapDropIn(unit('gamma'), GLOB_DISK, GLOB_DECOY, [
        'TemporaryFileSystem=',
        'InaccessiblePaths=',
        `ReadWritePaths="${GLOB_DECOY}"`,
      ]),
    );
    return PROOF(GUESTS);
  },
  tests,
};

function tests(part: () => VmResult): void {
  describe('under a real kernel with AppArmor and cgroup v2, real systemd runs the bundle', () => {
    const guests = GUESTS;
    const result = (key: string) => reported(part(), key);

    test('the VM ran the whole proof', () => {
      assertProofDone(part());
    });

    test('apply on the live system: every activation step done', () => {
      assert.equal(result('apply_exit'), '0');
      const steps = [...part().console.matchAll(/RESULT apply_step=(\w+) +(.*)/g)].map((m) => `${m[1]} ${m[2]}`);
      for (const s of [
        'create users',
        'create directories',
        'reload udev rules',
        're-trigger',
        'load AppArmor profiles',
        'reload systemd',
      ])
        assert.ok(
          steps.some((x) => x.startsWith('done') && x.includes(s)),
          `${s}: ${steps.join(' | ')}`,
        );
    });

    test('udevd applied the rules: /dev/net/tun and /dev/vhost-net to the group, not the world; the kvm rule reads cleanly', () => {
      assert.equal(result('tun'), 'qemu-net 660');
      assert.equal(result('vhost'), 'qemu-net 660');
      assert.equal(result('udev_read_bundle'), '1', 'udevadm test read the bundle’s rules file');
      assert.equal(result('udev_read_kvm'), '1', 'and the rules of a KVM bundle, with its kvm rule');
      assert.equal(result('udev_errors'), '0', 'no complaint about either rules file');
    });

    for (const g of guests) {
      test(`${g}: booted under systemd as its own user, no capabilities, seccomp, AppArmor enforcing, in its slice`, () => {
        assert.equal(result(`${g}.marker`), 'yes');
        assert.equal(result(`${g}.uid`), result(`${g}.user_uid`));
        assert.notEqual(result(`${g}.uid`), '0');
        assert.equal(result(`${g}.gid`), result(`${g}.user_gid`));
        assert.equal(result(`${g}.capeff`), '0000000000000000');
        assert.equal(result(`${g}.nnp`), '1');
        assert.equal(result(`${g}.seccomp`), '2');
        assert.equal(result(`${g}.label`), `qemu-harden-${g} (enforce)`);
        assert.equal(result(`${g}.cgroup`), `0::/qemu.slice/qemu-${g}.service`);
        assert.equal(
          result(`${g}.cmdline_sandbox`),
          'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
        );
      });

      test(`${g}: the unit’s memory, CPU and task limits are in force in its cgroup`, () => {
        const guest = answers.guests.find((x) => x.name === g)!;
        assert.equal(result(`${g}.memory_max`), String(memoryMaxMiB(guest) * 1024 * 1024));
        assert.equal(result(`${g}.cpu_max`), `${cpuQuotaPercent(guest) * 1000} 100000`);
        assert.equal(result(`${g}.pids_max`), String(guest.limits.tasksMax));
      });

      test(`${g}: its NIC is attached to the pre-created tap, owned by its user, with vhost-net`, () => {
        assert.equal(result(`${g}.tap_carrier`), '1');
        assert.equal(result(`${g}.tap_owner`), result(`${g}.user_uid`));
        assert.equal(result(`${g}.vhost_fd`), '1');
      });
    }

    test('status on the live system: each guest runs as installed, labelled by its enforcing profile, with its cgroup limits read from the kernel', () => {
      assert.equal(result('status_exit'), '0', result('status'));
      const r = JSON.parse(result('status')) as {
        ok: boolean;
        guests: {
          name: string;
          weaker: string[];
          process: { apparmor: unknown; limits: Record<string, string>; cgroup: string };
        }[];
      };
      assert.equal(r.ok, true);
      for (const g of guests) {
        const s = r.guests.find((x) => x.name === g)!;
        const guest = answers.guests.find((x) => x.name === g)!;
        assert.deepEqual(s.process.apparmor, { label: `qemu-harden-${g}`, mode: 'enforce' });
        assert.equal(s.process.cgroup, `/qemu.slice/qemu-${g}.service`);
        assert.deepEqual(s.process.limits, {
          memoryMax: String(memoryMaxMiB(guest) * 1024 * 1024),
          cpuMax: `${cpuQuotaPercent(guest) * 1000} 100000`,
          pidsMax: String(guest.limits.tasksMax),
        });
        assert.deepEqual(s.weaker, []);
      }
    });

    test('status: a guest whose profile was switched to complain mode runs weaker than its bundle (exit 1)', () => {
      assert.equal(result('status_complain_exit'), '1');
      const r = JSON.parse(result('status_complain')) as { guests: { name: string; weaker: string[] }[] };
      assert.deepEqual(
        r.guests.find((x) => x.name === 'alpha')!.weaker,
        ['AppArmor profile qemu-harden-alpha in complain mode, not enforce'],
        result('status_complain'),
      );
      assert.ok(r.guests.filter((x) => x.name !== 'alpha').every((x) => x.weaker.length === 0));
    });

    test('no AppArmor denial while the guests booted', () => {
      assert.equal(
        result('denied_while_booting'),
        '0',
        part()
          .console.split('\n')
          .filter((l) => l.includes('DENIED'))
          .join('\n'),
      );
    });

    /** The files AppArmor denied to a profile during one drop-in run, from the kernel log between its markers. */
    const denials = (run: string, profile: string) => {
      const lines = part()
        .console.split('\n')
        .filter((l) => l.includes('RESULT kmsg='));
      const from = lines.findIndex((l) => l.includes(`qh-proof: begin ${run}`));
      const to = lines.findIndex((l) => l.includes(`qh-proof: end ${run}`));
      assert.ok(from >= 0 && to > from, `markers for ${run} in the kernel log`);
      return lines
        .slice(from, to)
        .map((l) => /apparmor="DENIED" operation="open" profile="([^"]+)" name=("[^"]*"|[0-9A-F]+) /.exec(l))
        .filter((m) => m !== null && m[1] === profile)
        .map((m) => (m![2]!.startsWith('"') ? m![2]!.slice(1, -1) : Buffer.from(m![2]!, 'hex').toString('utf8')));
    };

    test('guest A pointed at guest B’s disk (mode 0666), AppArmor off: the systemd sandbox alone keeps it out', () => {
      assert.equal(result('systemd_only.error'), "Could not open '/images/beta.img': No such file or directory");
      assert.deepEqual(
        denials('systemd_only', 'qemu-harden-alpha'),
        [],
        'no AppArmor involvement: the disk is not in alpha’s view at all',
      );
      assert.notEqual(result('systemd_only.state'), 'active');
    });

    test('guest A pointed at guest B’s disk with the systemd fence removed: AppArmor denies it', () => {
      assert.equal(result('apparmor_only.error'), "Could not open '/images/beta.img': Permission denied");
      assert.ok(
        denials('apparmor_only', 'qemu-harden-alpha').includes('/images/beta.img'),
        'the kernel logged the denial of B’s disk',
      );
    });

    test('a disk named with glob characters grants exactly that file: its would-be match is denied', () => {
      assert.equal(result('glob_decoy.error'), `Could not open '${GLOB_DECOY}': Permission denied`);
      assert.ok(denials('glob_decoy', 'qemu-harden-gamma').includes(GLOB_DECOY));
    });
  });
}
