// Debian 13 "trixie", proven live: a trixie root (debootstrap, cached by test/debian-root.ts) boots its own
// systemd 257 in a container, and qemu-harden itself runs inside on trixie's own Node.js, as on a real host:
// generate (the probe reads the release), verify, apply --start, status, apply of a changed bundle, rollback.
// Per guest: its user and group, no capabilities, NoNewPrivs, seccomp on every thread, its slice and limits, the
// fence between guests, systemd 257's own settings in force, trixie's systemd-analyze score within its target,
// and every AppArmor profile compiled by trixie's parser against trixie's pinned feature set (there is no
// securityfs in a container). What the container cannot apply (systemd's "... is configured, but ... proceeding
// without", AppArmor with no AppArmor in this kernel, limits with no cgroup controllers) is listed by name and
// never counted as proven. beta is a Linux guest (Debian's kernel and a busybox script): its user-mode network is
// passt and its folders are served by virtiofsd, each in a unit of its own, and it reports what it sees of them on its
// serial console. The guests run under TCG (emulation, accepted) even where KVM works: under the nested KVM of the
// machines this runs on, Debian's kernel stops early in its boot (after "Probing EDD") and never reaches its script;
// the KVM path of a bundle is proven on Debian 12 (test/nspawn.test.ts, test/boot.test.ts).
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { validate } from '../src/answers.js';
import { exposureTarget } from '../src/checks/exposure.js';
import { cpuQuotaPercent, memoryMaxMiB } from '../src/guest.js';
import { BOOT_MARKER, writeBootDisk } from './bootdisk.js';
import { Container } from './container.js';
import { debianRoot, TRIXIE_PACKAGES } from './debian-root.js';
import { cli, REPO, requireTool, waitUntil } from './helpers.js';
import { guestResults, writeLinuxGuest } from './linuxguest.js';

const RISKS = [
  { risk: 'emulation', reason: 'the proof’s guests are test boot sectors and a Linux kernel that nested KVM stalls' },
  { risk: 'share-writable', guest: 'beta', reason: 'the proof checks what the guest writes there' },
];
/** beta's folders, and what its script does with them and with passt's network. */
const SHARE_RO = '/srv/shares/beta-ro';
const SHARE_RW = '/srv/shares/beta-rw';
const BETA_SCRIPT = `echo ${BOOT_MARKER}
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /udhcpc.sh -n -q -t 20 -T 2 >/dev/null 2>&1
r dhcp $?
r addr "$(ip -4 -o addr show dev eth0 | awk '{print $4}')"
mkdir -p /mnt/ro /mnt/rw
mount -t virtiofs ro /mnt/ro
r mount_ro $?
r read_ro "$(cat /mnt/ro/hello.txt)"
r list_ro "$(ls -A /mnt/ro | tr '\\n' ' ')"
touch /mnt/ro/new 2>/dev/null
r write_ro $?
mount -t virtiofs rw /mnt/rw
r mount_rw $?
echo written-by-guest > /mnt/rw/out.txt
r write_rw $?
chown 1234:1234 /mnt/rw/out.txt 2>/dev/null
r chown $?`;
const guest = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  memoryMiB: 64,
  disks: [{ path: `/images/${name}.img`, format: 'raw' }],
  ...extra,
});
/** Three guests: no network; user networking with a SPICE display on a unix socket; a tap device. */
const V1 = {
  schemaVersion: 1,
  useCase: 'emulation',
  acceptedRisks: RISKS,
  guests: [
    guest('alpha'),
    guest('beta', {
      memoryMiB: 256,
      boot: { kernel: '/images/beta-vmlinuz', initrd: '/images/beta-initrd.gz', cmdline: 'console=ttyS0 quiet' },
      network: { mode: 'user' },
      display: { mode: 'spice-unix' },
      shares: [
        { path: SHARE_RO, tag: 'ro' },
        { path: SHARE_RW, tag: 'rw', readOnly: false },
      ],
    }),
    guest('gamma', { network: { mode: 'tap', vhost: false } }),
  ],
};
/** The same with beta's memory limit changed: apply restarts beta alone, rollback returns to V1. */
const V2 = { ...V1, guests: V1.guests.map((g) => (g.name === 'beta' ? { ...g, limits: { memoryMaxMiB: 400 } } : g)) };
const NAMES = V1.guests.map((g) => g.name);
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

describe('Debian 13 in a container: qemu-harden applies, starts, reports and rolls back guests (TCG)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qh-trixie-'));
  const ct = new Container(dir);
  after(async () => {
    try {
      await ct.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  const answers = validate({ ...V1, host: { target: 'debian-13' } });
  /** Runs a command in the container as root's shell would, with no environment from the test. */
  const sh = (script: string) => ct.exec(['env', '-i', `PATH=${PATH}`, 'sh', '-c', script]);
  const qh = (...args: string[]) => ct.exec(['env', '-i', `PATH=${PATH}`, 'qemu-harden', ...args]);
  const show = (unit: string, prop: string) =>
    ct.exec(['systemctl', 'show', '-p', prop, '--value', unit]).stdout.trim();
  const mainPid = (g: string) => Number(show(`qemu-${g}.service`, 'MainPID'));
  const journal = (unit?: string) =>
    ct.exec(['journalctl', '-b', '--no-pager', '-o', 'cat', ...(unit ? ['-u', unit] : [])]).stdout;
  /** Settings of the guest units the container did not apply, by name, with the reason. */
  const notApplied = new Map<string, string>();
  const proven = new Set<string>();
  /** Skips (never passes) a proof of a setting this container did not apply; otherwise records it as proven. */
  const proving = (t: TestContext, setting: string): boolean => {
    const why = notApplied.get(setting);
    if (why) {
      t.skip(`${setting} not applied in this container: ${why}`);
      return false;
    }
    proven.add(setting);
    return true;
  };

  before(async () => {
    for (const [tool, pkg] of [
      ['systemd-nspawn', 'systemd-container'],
      ['nsenter', 'util-linux'],
      ['unshare', 'util-linux'],
    ] as const)
      requireTool(tool, pkg);
    const tree = await debianRoot('trixie', TRIXIE_PACKAGES);
    chmodSync(dir, 0o755);
    const images = join(dir, 'images');
    const bundles = join(dir, 'bundles');
    mkdirSync(images, { mode: 0o755 });
    mkdirSync(bundles, { mode: 0o755 });
    for (const g of NAMES) writeBootDisk(join(images, `${g}.img`));
    const linux = writeLinuxGuest(join(dir, 'beta-linux'), ['virtio_pci', 'virtio_net', 'virtiofs'], BETA_SCRIPT, {
      then: 'idle',
    });
    copyFileSync(linux.kernel, join(images, 'beta-vmlinuz'));
    copyFileSync(linux.initrd, join(images, 'beta-initrd.gz'));
    // Off-host generation: the bundles for Debian 13 are made here, on Debian 12, with --target.
    const generate = async (name: string, doc: object, ...flags: string[]) => {
      writeFileSync(join(bundles, `${name}.json`), JSON.stringify(doc));
      const r = await cli([
        'generate',
        '--answers',
        join(bundles, `${name}.json`),
        '--out',
        join(bundles, name),
        ...flags,
      ]);
      assert.equal(r.code, 0, r.stderr);
    };
    await generate('v1', V1, '--target', 'debian-13');
    await generate('v2', V2, '--target', 'debian-13');
    await generate('for-debian-12', V1, '--target', 'debian-12');
    ct.prepareSystem(tree);
    // qemu-harden installed as a package would install it: its files read-only, a command on PATH.
    const bin = join(dir, 'upper/usr/local/bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(
      join(bin, 'qemu-harden'),
      '#!/bin/sh\nexec node /usr/local/lib/qemu-harden/dist/qemu-harden.js "$@"\n',
      {
        mode: 0o755,
      },
    );
    await ct.boot({
      binds: { [images]: '/images' },
      bindsRo: {
        [join(REPO, 'dist')]: '/usr/local/lib/qemu-harden/dist',
        [join(REPO, 'presets')]: '/usr/local/lib/qemu-harden/presets',
        [bundles]: '/bundles',
      },
      privateNetwork: true,
    });
    // The network passt speaks for beta: an address and a default route in the container's own namespace. beta's
    // folders: one with a file to read, one it writes (its directory is made by apply, the guest's).
    const net = ct.sh(
      'ip link add qhv0 type veth peer name qhv1 && ip addr add 10.78.0.1/24 dev qhv0 && ip link set qhv0 up && ip link set qhv1 up && ip route add default via 10.78.0.2',
    );
    assert.equal(net.code, 0, net.stderr);
    assert.equal(sh(`mkdir -p ${SHARE_RO} && echo shared-read-only > ${SHARE_RO}/hello.txt`).code, 0);
  });

  test('the container runs Debian 13 with its own QEMU 10.0, systemd 257, AppArmor 4.1 and Node.js 20', (t) => {
    assert.match(ct.exec(['cat', '/etc/debian_version']).stdout, /^13\./);
    assert.match(ct.exec(['qemu-system-x86_64', '--version']).stdout, /^QEMU emulator version 10\.0\./);
    assert.match(ct.exec(['systemctl', '--version']).stdout, /^systemd 257 /);
    assert.match(ct.exec(['apparmor_parser', '--version']).stdout, /AppArmor parser version 4\.1\./);
    const node = ct.exec(['node', '--version']).stdout.trim();
    assert.match(node, /^v20\./);
    assert.equal(ct.exec(['readlink', '-f', '/proc/1/exe']).stdout.trim(), '/usr/lib/systemd/systemd');
    t.diagnostic(`trixie's own node ${node} runs qemu-harden ${qh('--version').stdout.trim()}`);
  });

  test('generate on Debian 13 without --target reads the release and makes the same bundle as --target debian-13 on Debian 12', () => {
    const r = qh('generate', '--answers', '/bundles/v1.json', '--out', '/root/here');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(
      r.stdout,
      /^For Debian 13 "trixie" \(QEMU 10\.0, systemd 257, AppArmor 4\.1\): this host runs Debian GNU\/Linux 13 \(trixie\)\.$/m,
    );
    // Every file but the README is the same, byte for byte. The README writes its commands the way qemu-harden
    // ran (node and the script's path, as neither is qemu-harden on PATH): here the container's, there this host's.
    const withoutReadme = (m: string) => m.replace(/^\S+ {2}README\.md\n/m, '');
    assert.equal(
      withoutReadme(ct.exec(['cat', '/root/here/MANIFEST.sha256']).stdout),
      withoutReadme(readFileSync(join(dir, 'bundles/v1/MANIFEST.sha256'), 'utf8')),
      'every file but the README is the same, byte for byte',
    );
    assert.equal(
      ct.exec(['cat', '/root/here/README.md']).stdout,
      readFileSync(join(dir, 'bundles/v1/README.md'), 'utf8').replaceAll(
        `${process.execPath} ${join(REPO, 'dist', 'qemu-harden.js')}`,
        '/usr/bin/node /usr/local/lib/qemu-harden/dist/qemu-harden.js',
      ),
      'the README differs only in how qemu-harden ran',
    );
    assert.equal(JSON.parse(ct.exec(['cat', '/root/here/answers.json']).stdout).host.target, 'debian-13');
  });

  test('verify on Debian 13: every check passes on the Debian 13 bundle, none is skipped', () => {
    const r = qh('verify', '/bundles/v1', '--json');
    const report = JSON.parse(r.stdout) as { checks: { check: string; status: string; detail?: string }[] };
    assert.deepEqual(
      report.checks.filter((c) => c.status !== 'passed'),
      [],
      r.stdout,
    );
    assert.equal(r.code, 0);
    assert.match(
      report.checks.find((c) => c.check === 'target release')!.detail!,
      /^made for Debian 13 "trixie" .*, which this host runs$/,
    );
  });

  test('verify on Debian 13 of a bundle made for Debian 12 says it is for another release', () => {
    const r = qh('verify', '/bundles/for-debian-12');
    assert.equal(r.code, 1, r.stdout);
    assert.match(
      r.stdout,
      /target release: answers\.json: made for Debian 12 "bookworm" \(QEMU 7\.2, systemd 252, AppArmor 3\.0\), but this host runs Debian 13 "trixie" \(QEMU 10\.0, systemd 257, AppArmor 4\.1\): the bundle leaves out settings this host’s systemd and AppArmor offer; generate the bundle again on this host, or with --target debian-13/,
    );
  });

  test('apply --start: each guest boots as its own user, with no capabilities, NoNewPrivs and seccomp on every thread, in qemu.slice', async () => {
    const r = qh('apply', '/bundles/v1', '--yes', '--start');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const g of NAMES) {
      assert.match(r.stdout, new RegExp(`done +enable and start ${g}: running`));
      const log = `/var/log/qemu-harden/${g}/serial.log`;
      // beta's kernel boots under TCG before its script prints the marker.
      await waitUntil(
        `${g}: the boot marker on its serial console`,
        () => ct.exec(['grep', '-q', BOOT_MARKER, log]).code === 0,
        {
          timeoutMs: 300_000,
          detail: () => journal(`qemu-${g}.service`),
        },
      );
      const pid = mainPid(g);
      const status = ct.exec(['cat', `/proc/${pid}/status`]).stdout;
      const field = (key: string) => new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(status)![1]!.split(/\s+/);
      const uid = ct.exec(['id', '-u', `qemu-${g}`]).stdout.trim();
      const gid = ct.exec(['id', '-g', `qemu-${g}`]).stdout.trim();
      assert.notEqual(uid, '0');
      assert.deepEqual(field('Uid'), [uid, uid, uid, uid], g);
      assert.deepEqual(field('Gid'), [gid, gid, gid, gid], g);
      assert.deepEqual(field('CapEff'), ['0000000000000000'], g);
      assert.deepEqual(field('NoNewPrivs'), ['1'], g);
      const threads = sh(`grep -H '^Seccomp:' /proc/${pid}/task/*/status`).stdout.trim().split('\n');
      assert.ok(threads.length > 1, `${g}: QEMU's threads are listed`);
      for (const line of threads) assert.match(line, /:Seccomp:\s+2$/, `${g}: ${line}`);
      assert.match(
        ct.exec(['cat', `/proc/${pid}/cgroup`]).stdout,
        new RegExp(`^0::/qemu\\.slice/qemu-${g}\\.service$`, 'm'),
      );
    }
    // What the container did not apply, now that every unit has started once.
    // systemd's words for a setting it skipped: "X=... is configured, but ..., proceeding without" or "..., ignoring".
    for (const m of journal().matchAll(/\b(\w+)=\S* is configured, but [^\n]*/g)) notApplied.set(m[1]!, m[0]);
    if (ct.exec(['test', '-e', '/sys/module/apparmor/parameters/enabled']).code !== 0)
      notApplied.set('AppArmorProfile', 'this kernel has no AppArmor: systemd starts the guests unconfined');
    const controllers = ct.exec(['cat', '/sys/fs/cgroup/qemu.slice/cgroup.controllers']).stdout.trim().split(/\s+/);
    for (const [setting, controller] of [
      ['MemoryMax', 'memory'],
      ['MemorySwapMax', 'memory'],
      ['CPUQuota', 'cpu'],
      ['CPUWeight', 'cpu'],
      ['IOWeight', 'io'],
      ['TasksMax', 'pids'],
    ] as const)
      if (!controllers.includes(controller))
        notApplied.set(
          setting,
          `the container's cgroup has no ${controller} controller: systemd holds the limit, the kernel does not enforce it`,
        );
  });

  test('systemd 257 on each guest: a PID namespace of its own, where QEMU is PID 1', (t) => {
    if (!proving(t, 'PrivatePIDs')) return;
    for (const g of NAMES) {
      const pid = mainPid(g);
      assert.match(ct.exec(['cat', `/proc/${pid}/status`]).stdout, new RegExp(`^NSpid:\\s+${pid}\\s+1$`, 'm'), g);
      assert.notEqual(
        ct.exec(['readlink', `/proc/${pid}/ns/pid`]).stdout,
        ct.exec(['readlink', '/proc/1/ns/pid']).stdout,
      );
    }
  });

  test('systemd 257 on each guest: /tmp and /var/tmp on a tmpfs of its own, not on the host’s /tmp', (t) => {
    if (!proving(t, 'PrivateTmp')) return;
    const mount = (info: string, at: string) =>
      info
        .split('\n')
        .map((l) => l.split(' '))
        .findLast((f) => f[4] === at);
    const hostTmp = mount(ct.exec(['cat', '/proc/1/mountinfo']).stdout, '/tmp')!;
    for (const g of NAMES) {
      const info = ct.exec(['cat', `/proc/${mainPid(g)}/mountinfo`]).stdout;
      const tmp = mount(info, '/tmp')!;
      const varTmp = mount(info, '/var/tmp')!;
      assert.equal(tmp[tmp.indexOf('-') + 1], 'tmpfs', `${g}: /tmp is a tmpfs`);
      assert.notEqual(tmp[2], hostTmp[2], `${g}: its /tmp is not the container's /tmp (device ${hostTmp[2]})`);
      assert.doesNotMatch(tmp[3]!, /systemd-private-/, `${g}: nor a directory of it`);
      assert.equal(varTmp[2], tmp[2], `${g}: /var/tmp is on the same private tmpfs`);
    }
  });

  test('systemd 257 on each guest: a cgroup namespace whose cgroup tree is its own subtree, read-only', (t) => {
    if (!proving(t, 'ProtectControlGroups')) return;
    for (const g of NAMES) {
      const pid = mainPid(g);
      assert.notEqual(
        ct.exec(['readlink', `/proc/${pid}/ns/cgroup`]).stdout,
        ct.exec(['readlink', '/proc/1/ns/cgroup']).stdout,
      );
      const cg = ct
        .exec(['cat', `/proc/${pid}/mountinfo`])
        .stdout.split('\n')
        .map((l) => l.split(' '))
        .findLast((f) => f[4] === '/sys/fs/cgroup')!;
      assert.equal(cg[3], `/qemu.slice/qemu-${g}.service`, `${g}: only its own subtree`);
      assert.match(cg[5]!, /^ro,/, `${g}: mounted read-only`);
    }
  });

  test('no guest memory is offered to KSM: QEMU’s mem-merge=off, and MemoryKSM=no', (t) => {
    if (!proving(t, 'MemoryKSM')) return;
    for (const g of NAMES) {
      const ksm = ct.exec(['cat', `/proc/${mainPid(g)}/ksm_stat`]).stdout;
      assert.match(ksm, /^ksm_mergeable: no$/m, `${g}: no mapping of QEMU is marked mergeable\n${ksm}`);
      assert.match(ksm, /^ksm_merge_any: no$/m, `${g}: nor is the whole process`);
    }
    t.diagnostic('MemoryKSM=no shows as ksm_merge_any: no, which is also what a process has when nothing set it');
  });

  test('each guest sees only its own disk and directories: the others’ are not there at all', () => {
    for (const g of NAMES) {
      const inside = (...argv: string[]) => ct.exec(['nsenter', '-t', String(mainPid(g)), '-m', ...argv]);
      assert.deepEqual(
        inside('ls', '-A', '/images').stdout.split('\n').filter(Boolean),
        g === 'beta' ? ['beta-initrd.gz', 'beta-vmlinuz', 'beta.img'] : [`${g}.img`],
        g,
      );
      for (const base of ['/run/qemu-harden', '/var/lib/qemu-harden', '/var/log/qemu-harden'])
        assert.deepEqual(inside('ls', '-A', base).stdout.split('\n').filter(Boolean), [g], `${g}'s ${base}`);
      for (const other of NAMES.filter((o) => o !== g)) {
        const st = inside('stat', '-c', '%s', `/images/${other}.img`);
        assert.match(st.stderr, /No such file or directory/, `${g} must not see ${other}'s disk`);
      }
    }
    assert.equal(ct.exec(['stat', '-c', '%s', '/images/beta.img']).stdout.trim(), String(1024 * 1024));
  });

  test('each guest’s network is what its answers say: none for alpha and for beta, whose network is passt’s; the host’s for gamma', (t) => {
    if (!proving(t, 'PrivateNetwork')) return;
    const ns = (pid: number | string) => ct.exec(['readlink', `/proc/${pid}/ns/net`]).stdout.trim();
    assert.notEqual(ns(mainPid('alpha')), ns(1), 'alpha has a network namespace of its own');
    assert.deepEqual(
      ct
        .exec(['nsenter', '-t', String(mainPid('alpha')), '-n', 'ip', '-o', 'link'])
        .stdout.trim()
        .split('\n').length,
      1,
      'holding only its loopback',
    );
    assert.notEqual(ns(mainPid('beta')), ns(1), 'beta’s QEMU has a network namespace of its own');
    assert.equal(ns(show('qemu-beta-net.service', 'MainPID')), ns(1), 'its passt has the host’s');
    assert.equal(ns(mainPid('gamma')), ns(1), "gamma's QEMU uses the host's network for its tap");
  });

  test('systemd holds each unit’s slice and limits', () => {
    for (const g of answers.guests) {
      const unit = `qemu-${g.name}.service`;
      assert.equal(show(unit, 'Slice'), 'qemu.slice');
      assert.equal(show(unit, 'MemoryMax'), String(memoryMaxMiB(g) * 1024 * 1024));
      assert.equal(show(unit, 'CPUQuotaPerSecUSec'), `${cpuQuotaPercent(g) / 100}s`);
      assert.equal(show(unit, 'TasksMax'), String(g.limits.tasksMax));
    }
  });

  test('status --json: every guest running as its bundle says, seccomp on every thread, nothing weaker, no drift', () => {
    const s = qh('status', '--json');
    assert.equal(s.code, 0, s.stdout + s.stderr);
    const r = JSON.parse(s.stdout) as {
      ok: boolean;
      guests: {
        name: string;
        running: boolean;
        weaker: string[];
        drift: unknown[];
        process: { pid: number; seccomp: Record<string, number>; capEff: string; noNewPrivs: boolean; cgroup: string };
      }[];
    };
    assert.equal(r.ok, true);
    assert.deepEqual(
      r.guests.map((g) => g.name),
      NAMES,
    );
    for (const g of r.guests) {
      assert.equal(g.running, true, g.name);
      assert.equal(g.process.pid, mainPid(g.name));
      assert.equal(g.process.capEff, '0000000000000000');
      assert.equal(g.process.noNewPrivs, true);
      assert.ok(Object.keys(g.process.seccomp).length > 1 && Object.values(g.process.seccomp).every((m) => m === 2));
      assert.equal(g.process.cgroup, `/qemu.slice/qemu-${g.name}.service`);
      assert.deepEqual(g.weaker, [], g.name);
      assert.deepEqual(g.drift, [], g.name);
    }
  });

  test('passt and virtiofsd on Debian 13: beta gets its address, reads its read-only folder, cannot write it, writes the other as its user', async () => {
    const serial = () => ct.exec(['cat', '/var/log/qemu-harden/beta/serial.log']).stdout;
    await waitUntil('beta’s script to finish', () => /RESULT done=yes/.test(serial()), {
      timeoutMs: 300_000,
      detail: () =>
        `${serial().slice(-2000)}\n${journal('qemu-beta-net.service')}\n${journal('qemu-beta-fs0.service')}\n${journal('qemu-beta.service')}`,
    });
    const r = guestResults(serial());
    assert.equal(r.get('dhcp'), '0', 'an address from passt');
    assert.equal(r.get('addr'), '10.78.0.1/24', 'the host’s own, as passt gives it');
    assert.equal(r.get('mount_ro'), '0');
    assert.equal(r.get('read_ro'), 'shared-read-only');
    assert.equal(r.get('list_ro'), 'hello.txt', 'exactly the folder’s own entries');
    assert.notEqual(r.get('write_ro'), '0', 'virtiofsd --readonly refuses a new file');
    assert.equal(r.get('mount_rw'), '0');
    assert.equal(r.get('write_rw'), '0');
    assert.notEqual(r.get('chown'), '0', 'the guest cannot give a file another owner');
    const uid = ct.exec(['id', '-u', 'qemu-beta']).stdout.trim();
    assert.equal(ct.exec(['stat', '-c', '%u %s', `${SHARE_RW}/out.txt`]).stdout.trim(), `${uid} 17`);
    assert.equal(ct.exec(['test', '-e', `${SHARE_RO}/new`]).code, 1);
  });

  test('passt and each virtiofsd run as the guest’s user, no capabilities, NoNewPrivs, seccomp; passt in a user namespace of its own that maps no user, virtiofsd in none but its unit’s', () => {
    const uid = ct.exec(['id', '-u', 'qemu-beta']).stdout.trim();
    const status = (pid: string) => {
      const text = ct.exec(['cat', `/proc/${pid}/status`]).stdout;
      return (key: string) => new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(text)?.[1]?.split(/\s+/);
    };
    const userns = (pid: string) => ct.exec(['readlink', `/proc/${pid}/ns/user`]).stdout.trim();
    const uidMap = (pid: string) =>
      ct
        .exec(['cat', `/proc/${pid}/uid_map`])
        .stdout.trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/).join(' '));
    const hostUserns = userns('1');
    for (const unit of ['qemu-beta-net.service', 'qemu-beta-fs0.service', 'qemu-beta-fs1.service']) {
      const main = show(unit, 'MainPID');
      const procs = ct
        .exec(['cat', `/sys/fs/cgroup/qemu.slice/${unit}/cgroup.procs`])
        .stdout.trim()
        .split('\n');
      assert.ok(procs.includes(main), unit);
      for (const pid of procs) {
        const f = status(pid);
        assert.deepEqual(f('Uid'), [uid, uid, uid, uid], `${unit} ${pid}`);
        assert.deepEqual(f('NoNewPrivs'), ['1'], `${unit} ${pid}`);
        assert.deepEqual(f('Seccomp'), ['2'], `${unit} ${pid}`);
        // No process of a helper holds a capability, in any user namespace. passt makes a user namespace for its own
        // sandbox, which maps no user at all; virtiofsd makes none (--sandbox=none): it is in the container's, or in
        // its unit's (PrivateUsers=yes: root and the guest's user, each as itself), never one that maps the user to 0.
        assert.deepEqual(f('CapEff'), ['0000000000000000'], `${unit} ${pid}`);
        if (userns(pid) === hostUserns) continue;
        if (unit.endsWith('-net.service')) assert.deepEqual(uidMap(pid), [''], `${unit} ${pid}: its own maps no user`);
        else assert.deepEqual(uidMap(pid), ['0 0 1', `${uid} ${uid} 1`], `${unit} ${pid}: its unit's user namespace`);
      }
    }
    const qemu = String(mainPid('beta'));
    assert.equal(
      ct.exec(['nsenter', '-t', qemu, '-n', 'ss', '-H', '-A', 'inet', '-a']).stdout.trim(),
      '',
      'beta’s QEMU holds no IP socket: its network is passt’s',
    );
    assert.match(
      ct.exec(['cat', `/proc/${qemu}/cmdline`]).stdout,
      /memory-backend-memfd,id=ram,size=256M,share=on/,
      'its RAM is the shared memfd virtiofsd maps',
    );
  });

  test('the helper units run under systemd 257’s settings: the tap is up for gamma, the serial logs rotate', () => {
    assert.equal(show('qemu-gamma-tap.service', 'ActiveState'), 'active');
    assert.equal(ct.exec(['ip', '-o', 'link', 'show', 'qh-gamma']).code, 0, 'the tap device exists');
    const r = ct.exec(['systemctl', 'start', 'qemu-harden-logrotate.service']);
    assert.equal(r.code, 0, r.stderr + journal('qemu-harden-logrotate.service'));
    assert.equal(show('qemu-harden-logrotate.service', 'Result'), 'success');
    for (const unit of ['qemu-gamma-tap.service', 'qemu-harden-logrotate.service'])
      assert.match(ct.exec(['cat', `/etc/systemd/system/${unit}`]).stdout, /^PrivateTmp=disconnected$/m, unit);
  });

  test('trixie’s systemd-analyze scores every installed unit within its target, the Debian 12 bundle’s no better', (t) => {
    const score = (file: string) =>
      Number(
        /Overall exposure level for .*?: ([0-9.]+)/.exec(
          ct.exec(['systemd-analyze', 'security', '--offline=true', '--no-pager', file]).stdout,
        )?.[1],
      );
    const lines: string[] = [];
    for (const g of answers.guests) {
      const unit = `qemu-${g.name}.service`;
      const here = score(`/etc/systemd/system/${unit}`);
      const old = score(`/bundles/for-debian-12/root/etc/systemd/system/${unit}`);
      assert.ok(here <= exposureTarget(g), `${unit}: ${here} > ${exposureTarget(g)}`);
      assert.ok(here <= old, `${unit}: the Debian 13 bundle scores ${here}, the Debian 12 one ${old}`);
      lines.push(`${unit} ${here} (Debian 12 bundle: ${old}, target ${exposureTarget(g)})`);
    }
    t.diagnostic(`systemd-analyze security (systemd 257): ${lines.join(', ')}`);
  });

  test('every AppArmor profile compiles with Debian 13’s parser against Debian 13’s pinned feature set', () => {
    const profiles = sh('ls /etc/apparmor.d/qemu-harden-*').stdout.trim().split('\n');
    assert.deepEqual(profiles, [
      '/etc/apparmor.d/qemu-harden-alpha',
      '/etc/apparmor.d/qemu-harden-beta',
      '/etc/apparmor.d/qemu-harden-beta-fs0',
      '/etc/apparmor.d/qemu-harden-beta-fs1',
      '/etc/apparmor.d/qemu-harden-beta-net',
      '/etc/apparmor.d/qemu-harden-gamma',
    ]);
    for (const p of profiles) {
      // A guest's profile declares the release's newest ABI; a helper's, the 3.0 ABI every release here parses.
      const helper = /-(net|fs\d+)$/.test(p);
      assert.match(ct.exec(['cat', p]).stdout, helper ? /^abi <abi\/3\.0>,$/m : /^abi <abi\/4\.0>,$/m, p);
      const r = sh(`apparmor_parser -S -M /usr/share/apparmor-features/features -I /etc/apparmor.d ${p} > /dev/null`);
      assert.equal(r.code, 0, `${p}: ${r.stderr}`);
      assert.equal(
        r.stderr
          .split('\n')
          .filter((l) => l.trim() && !l.startsWith('Cache read/write disabled'))
          .join('\n'),
        '',
        p,
      );
    }
  });

  test('systemctl stop presses the power button and waits for QEMU to exit, PID namespace and all; the ignoring guest gets SIGTERM after TimeoutStopSec', () => {
    const unit = 'qemu-alpha.service';
    const started = Date.now();
    assert.equal(ct.exec(['systemctl', 'stop', unit]).code, 0);
    const took = (Date.now() - started) / 1000;
    // The test systems give every guest TimeoutStopSec=3 (test/container.ts): the boot sector ignores ACPI.
    assert.ok(took >= 2.8, `stop waited for QEMU until TimeoutStopSec (3 s), took ${took} s`);
    assert.match(journal(unit), /terminating on signal 15/);
    assert.equal(show(unit, 'Result'), 'timeout');
    ct.exec(['systemctl', 'reset-failed', unit]);
    assert.equal(ct.exec(['systemctl', 'start', unit]).code, 0);
  });

  test('QEMU killed with SIGKILL is noticed and restarted by systemd (Restart=on-failure), PID 1 of its namespace or not', async () => {
    const unit = 'qemu-gamma.service';
    const before = mainPid('gamma');
    const restarts = Number(show(unit, 'NRestarts'));
    assert.equal(sh(`kill -KILL ${before}`).code, 0);
    let now = before;
    for (let i = 0; i < 120 && (now === before || now === 0 || show(unit, 'ActiveState') !== 'active'); i++) {
      await new Promise((res) => setTimeout(res, 250));
      now = mainPid('gamma');
    }
    assert.ok(now !== before && now > 0, `a new QEMU runs (was ${before}, is ${now})`);
    assert.equal(show(unit, 'ActiveState'), 'active');
    assert.equal(Number(show(unit, 'NRestarts')), restarts + 1);
  });

  test('apply of a changed bundle restarts only the changed guest; rollback --start returns to the first, every guest running', () => {
    const pids = new Map(NAMES.map((g) => [g, mainPid(g)]));
    const r = qh('apply', '/bundles/v2', '--yes', '--start');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /done +restart \(unit changed\) beta: running/);
    assert.equal(show('qemu-beta.service', 'MemoryMax'), String(400 * 1024 * 1024));
    assert.notEqual(mainPid('beta'), pids.get('beta'));
    assert.equal(mainPid('alpha'), pids.get('alpha'), 'alpha runs the same QEMU');

    const rb = qh('rollback', '--yes', '--start');
    assert.equal(rb.code, 0, rb.stdout + rb.stderr);
    assert.equal(
      ct.exec(['cat', '/var/lib/qemu-harden/.installed/current/MANIFEST.sha256']).stdout,
      readFileSync(join(dir, 'bundles/v1/MANIFEST.sha256'), 'utf8'),
    );
    assert.equal(show('qemu-beta.service', 'MemoryMax'), String(memoryMaxMiB(answers.guests[1]!) * 1024 * 1024));
    for (const g of NAMES) assert.equal(show(`qemu-${g}.service`, 'ActiveState'), 'active', g);
    const s = qh('status');
    assert.equal(s.code, 0, s.stdout);
  });

  test('what this container could not apply is listed by name, and none of it was counted as proven', (t) => {
    const listed = [...notApplied].map(([setting, why]) => `${setting}: ${why}`);
    t.diagnostic(`not applied here, so not proven here (${listed.length}): ${listed.join(' | ') || 'none'}`);
    t.diagnostic(`proven live here: ${[...proven].sort().join(', ')}`);
    for (const s of ['PrivatePIDs', 'PrivateTmp', 'ProtectControlGroups', 'MemoryKSM', 'PrivateNetwork'])
      assert.ok(proven.has(s) !== notApplied.has(s), `${s} is either proven live here or listed as not applied`);
  });
});
