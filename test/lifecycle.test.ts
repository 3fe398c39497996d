// Day two under real systemd in one container, guests under TCG: apply v1 (three guests, one with a TPM and passt
// as its network) with --start, status clean; apply v2 (the guest with the TPM and passt removed, one guest's memory
// limit changed and a TPM added, one unchanged); hand-edit a unit, status reports the drift; rollback restores v1
// byte for byte with all three running, the returning guest on the TPM state it kept, the other without the TPM v2
// gave it. The TPMs and passt are helper units: started, restarted, stopped and judged by status with their guests,
// passt by nothing but its helper record (src/helpers/passt.ts). Every --dry-run changes nothing.
// Without --start, the command printed for what is left is pasted as printed, twice; --start on a run with
// nothing to change starts a guest an operator stopped.
// Then, on a tree, apply is killed with SIGKILL at points across its install and the next apply completes it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeBootDisk } from './bootdisk.js';
import { Container } from './container.js';
import { BIN, cli, REPO, requireTool, tempDir } from './helpers.js';
import { aimAt, killAt, traceCalls } from './killpoints.js';

const GUESTS = ['alpha', 'beta', 'gamma'];
const RISK = [
  { risk: 'emulation', reason: 'the proof runs the same with and without KVM; its guests are test boot sectors' },
];
const guest = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  memoryMiB: 64,
  disks: [{ path: `/images/${name}.img`, format: 'raw' }],
  ...extra,
});
const V1 = {
  schemaVersion: 1,
  useCase: 'emulation',
  acceptedRisks: RISK,
  guests: [guest('alpha'), guest('beta'), guest('gamma', { tpm: 'tpm2', network: { mode: 'user' } })],
};
const V2 = {
  schemaVersion: 1,
  useCase: 'emulation',
  acceptedRisks: RISK,
  guests: [guest('alpha'), guest('beta', { limits: { memoryMaxMiB: 400 }, tpm: 'tpm2' })],
};
const tpmUnit = (g: string) => `qemu-${g}-tpm.service`;
const tpmState = (g: string) => `/var/lib/qemu-harden/${g}/tpm2`;
const RECORD = 'var/lib/qemu-harden/.installed';

/** v1 and v2, generated once for the whole file. */
const shared = tempDir({ after }, 'qh-lifecycle-bundles-');
const bundles = join(shared, 'bundles');
const v1 = join(bundles, 'v1');
const v2 = join(bundles, 'v2');
before(async () => {
  chmodSync(shared, 0o755);
  mkdirSync(bundles, { mode: 0o755 });
  for (const [name, doc] of [
    ['v1', V1],
    ['v2', V2],
  ] as const) {
    writeFileSync(join(shared, `${name}.json`), JSON.stringify(doc));
    const r = await cli(['generate', '--answers', join(shared, `${name}.json`), '--out', join(bundles, name)]);
    assert.equal(r.code, 0, r.stderr);
  }
});

/** Paths, modes, owners and contents of everything apply and rollback may touch in a root. */
function treeHash(root: string): string {
  const h = createHash('sha256');
  const visit = (rel: string) => {
    const p = join(root, rel);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return void h.update(`${rel}\0absent\0`);
    }
    h.update(`${rel}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isDirectory()) for (const e of readdirSync(p).sort()) visit(`${rel}/${e}`);
    else h.update(readFileSync(p));
  };
  for (const d of [
    'etc/systemd/system',
    'etc/apparmor.d',
    'etc/sysusers.d',
    'etc/tmpfiles.d',
    'etc/udev/rules.d',
    'etc/passwd',
    'etc/group',
    'var/lib/qemu-harden',
    'var/backups',
  ])
    visit(d);
  return h.digest('hex');
}

/** The bundle's root/ files by host path, with their sha256. */
function bundleFiles(bundle: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(join(bundle, 'MANIFEST.sha256'), 'utf8').split('\n')) {
    const m = /^([0-9a-f]{64}) {2}root(\/.+)$/.exec(line);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** The tree holds exactly the bundle's files, its record's current is the bundle, and no install is under way. */
function assertInstalled(root: string, bundle: string, others: string[]): void {
  for (const [hostPath, hash] of bundleFiles(bundle)) {
    assert.equal(sha(join(root, hostPath)), hash, `${hostPath} is the bundle's`);
    assert.equal(lstatSync(join(root, hostPath)).mode & 0o7777, 0o644, hostPath);
  }
  for (const hostPath of others) assert.ok(!existsSync(join(root, hostPath)), `${hostPath} is gone`);
  const current = join(root, RECORD, 'current');
  for (const f of ['MANIFEST.sha256', 'answers.json', 'README.md'])
    assert.ok(readFileSync(join(current, f)).equals(readFileSync(join(bundle, f))), `record: ${f}`);
  for (const rel of bundleFiles(bundle).keys())
    assert.ok(
      readFileSync(join(current, 'root', rel)).equals(readFileSync(join(bundle, 'root', rel))),
      `record: root${rel}`,
    );
  assert.ok(!existsSync(join(root, RECORD, 'journal.json')), 'no journal left');
  assert.ok(!existsSync(join(root, RECORD, 'next')), 'no half-copied bundle left');
  assert.equal(lstatSync(join(root, RECORD)).mode & 0o7777, 0o700);
}

describe('day two: apply, removal, activation, status and rollback under real systemd (TCG)', () => {
  const dir = tempDir({ after }, 'qh-lifecycle-');
  const ct = new Container(dir);
  after(() => ct.stop());
  const qh = (...args: string[]) => ct.exec(['node', '/qh/dist/qemu-harden.js', ...args]);
  const show = (unit: string, prop: string) =>
    ct.exec(['systemctl', 'show', '-p', prop, '--value', unit]).stdout.trim();
  const active = (g: string) => ct.exec(['systemctl', 'is-active', `qemu-${g}.service`]).stdout.trim();
  const pids = new Map<string, string>();
  /** Files qemu-harden did not install, named like its own: never touched. */
  const FOREIGN = {
    'etc/apparmor.d/qemu-harden-gamma-notes': 'not installed by qemu-harden\n',
    'etc/systemd/system/qemu-gamma-backup.service': '[Unit]\n',
  };
  const assertForeignUntouched = () => {
    for (const [f, text] of Object.entries(FOREIGN))
      assert.equal(readFileSync(join(ct.root, f), 'utf8'), text, `${f} is untouched`);
  };

  before(async () => {
    for (const [tool, pkg] of [
      ['systemd-nspawn', 'systemd-container'],
      ['nsenter', 'util-linux'],
      ['qemu-system-x86_64', 'qemu-system-x86'],
      ['strace', 'strace'],
    ] as const)
      requireTool(tool, pkg);
    assert.ok(existsSync(BIN), 'dist/ is built (npm run build)');
    chmodSync(dir, 0o755);
    const images = join(dir, 'images');
    mkdirSync(images, { mode: 0o755 });
    for (const g of GUESTS) writeBootDisk(join(images, `${g}.img`));
    ct.prepare();
    await ct.boot({
      binds: { [images]: '/images' },
      bindsRo: { [join(REPO, 'dist')]: '/qh/dist', [bundles]: '/bundles' },
      privateNetwork: true,
      devices: [],
    });
    // The network passt speaks for gamma: an address and a default route in the container's own namespace.
    const net = ct.sh(
      'ip link add qhv0 type veth peer name qhv1 && ip addr add 10.78.0.1/24 dev qhv0 && ip link set qhv0 up && ip link set qhv1 up && ip route add default via 10.78.0.2',
    );
    assert.equal(net.code, 0, net.stderr);
  });

  test('v1: --dry-run changes nothing; apply --start starts all three guests; status is clean', () => {
    const before = treeHash(ct.root);
    const dry = qh('apply', '/bundles/v1', '--dry-run', '--start');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /new +alpha/);
    assert.equal(treeHash(ct.root), before, 'apply --dry-run changed nothing');

    const r = qh('apply', '/bundles/v1', '--yes', '--start');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    for (const g of GUESTS) {
      assert.match(r.stdout, new RegExp(`done +enable and start ${g}: running`));
      assert.equal(active(g), 'active', g);
      assert.equal(show(`qemu-${g}.service`, 'UnitFileState'), 'enabled');
      pids.set(g, show(`qemu-${g}.service`, 'MainPID'));
    }
    assertInstalled(ct.root, v1, []);
    assert.ok(!existsSync(join(ct.root, RECORD, 'previous')), 'no previous after the first install');

    assert.equal(active('gamma-tpm'), 'active', 'gamma’s TPM started with it');
    pids.set('gamma-tpm', show(tpmUnit('gamma'), 'MainPID'));
    assert.equal(active('gamma-net'), 'active', 'gamma’s passt started with it');
    pids.set('gamma-net', show('qemu-gamma-net.service', 'MainPID'));

    const s = qh('status');
    assert.equal(s.code, 0, s.stdout + s.stderr);
    for (const g of GUESTS)
      assert.match(s.stdout, new RegExp(`^${g} +qemu-${g}\\.service +running, pid ${pids.get(g)}$`, 'm'));
    // The TPM's own unit, under its guest, with its own confinement.
    const uid = ct.exec(['id', '-u', 'qemu-gamma']).stdout.trim();
    assert.match(
      s.stdout,
      new RegExp(
        `^ {2}TPM 2\\.0 emulator \\(swtpm\\) +qemu-gamma-tpm\\.service +running, pid ${pids.get('gamma-tpm')}\n {4}uid ${uid}/${uid}/${uid}/${uid} .* CapEff 0000000000000000 +NoNewPrivs 1 +Seccomp 2 \\(1 thread\\)\n {4}AppArmor .*\n {4}cgroup /qemu\\.slice/qemu-gamma-tpm\\.service `,
        'm',
      ),
      s.stdout,
    );
  });

  test('status --json: the documented shape, read from the live processes', () => {
    // QEMU starts and ends worker threads as it runs: the threads there before status and still there after it
    // are the ones it must have listed.
    const tasks = (pid: string) =>
      ct
        .exec(['ls', `/proc/${pid}/task`])
        .stdout.trim()
        .split('\n');
    const before = new Map(GUESTS.map((g) => [g, tasks(pids.get(g)!)]));
    const s = qh('status', '--json');
    const after = new Map(GUESTS.map((g) => [g, tasks(pids.get(g)!)]));
    assert.equal(s.code, 0, s.stderr);
    const r = JSON.parse(s.stdout) as Record<string, any>;
    assert.deepEqual(Object.keys(r).sort(), [
      'drift',
      'guests',
      'installed',
      'interrupted',
      'ok',
      'root',
      'signing',
      'unseen',
    ]);
    assert.equal(r.root, '/');
    assert.deepEqual(r.unseen, [], 'as root every live process was read');
    // An unsigned bundle on a host that is not enrolled (docs/signing.md): said, and not a finding.
    assert.deepEqual(r.signing, {
      enrolled: null,
      trustFile: '/etc/qemu-harden/allowed_signers',
      signers: [],
      problems: [],
    });
    assert.equal(r.ok, true);
    assert.equal(r.interrupted, null);
    assert.deepEqual(r.drift, []);
    assert.deepEqual(Object.keys(r.installed).sort(), ['manifest', 'previous']);
    assert.equal(r.installed.manifest, sha(join(v1, 'MANIFEST.sha256')));
    assert.deepEqual(
      r.guests.map((g: any) => g.name),
      GUESTS,
    );
    for (const g of r.guests) {
      assert.deepEqual(Object.keys(g).sort(), [
        'drift',
        'expected',
        'helpers',
        'name',
        'process',
        'running',
        'unit',
        'weaker',
      ]);
      assert.deepEqual(Object.keys(g.expected).sort(), [
        'apparmorProfile',
        'memoryMax',
        'noCapabilities',
        'noNewPrivs',
        'seccomp',
        'selinuxContext',
        'uid',
        'user',
      ]);
      assert.deepEqual(Object.keys(g.process).sort(), [
        'apparmor',
        'capEff',
        'cgroup',
        'gid',
        'limits',
        'listening',
        'noNewPrivs',
        'pid',
        'seccomp',
        'selinux',
        'uid',
      ]);
      assert.deepEqual(Object.keys(g.process.limits).sort(), ['cpuMax', 'memoryMax', 'pidsMax']);
      const uid = Number(ct.exec(['id', '-u', `qemu-${g.name}`]).stdout.trim());
      assert.equal(g.running, true);
      assert.equal(String(g.process.pid), pids.get(g.name));
      assert.equal(g.expected.uid, uid);
      assert.deepEqual(g.process.uid, [uid, uid, uid, uid]);
      assert.equal(g.process.capEff, '0000000000000000');
      assert.equal(g.process.noNewPrivs, true);
      const listed = Object.keys(g.process.seccomp);
      const throughout = before.get(g.name)!.filter((t: string) => after.get(g.name)!.includes(t));
      assert.ok(throughout.length > 0);
      for (const t of throughout) assert.ok(listed.includes(t), `thread ${t} is listed: ${listed.join(' ')}`);
      assert.ok(
        Object.values(g.process.seccomp).every((m) => m === 2),
        'every thread runs under a seccomp filter',
      );
      assert.equal(g.process.cgroup, `/qemu.slice/qemu-${g.name}.service`);
      assert.deepEqual(g.process.listening, [
        { proto: 'unix', address: `/run/qemu-harden/${g.name}/qmp.sock` },
        { proto: 'unix', address: `/run/qemu-harden/${g.name}/serial.sock` },
      ]);
      assert.deepEqual(g.weaker, []);
      assert.deepEqual(g.drift, []);
      if (g.name !== 'gamma') {
        assert.deepEqual(g.helpers, [], `${g.name} has no helper unit`);
        continue;
      }
      // gamma's TPM and passt: each its unit, judged against that unit (its user, no capabilities, no_new_privs, its
      // filter).
      assert.deepEqual(
        g.helpers.map((x: { kind: string }) => x.kind),
        ['tpm', 'net'],
      );
      const net = g.helpers[1];
      assert.equal(net.unit, 'qemu-gamma-net.service');
      assert.equal(net.running, true);
      assert.equal(String(net.process.pid), pids.get('gamma-net'));
      assert.deepEqual(net.process.uid, [uid, uid, uid, uid]);
      assert.equal(net.process.capEff, '0000000000000000');
      assert.equal(net.process.noNewPrivs, true);
      assert.equal(net.process.cgroup, '/qemu.slice/qemu-gamma-net.service');
      assert.equal(net.expected.apparmorProfile, 'qemu-harden-gamma-net');
      assert.deepEqual(net.weaker, []);
      const h = g.helpers[0];
      assert.deepEqual(Object.keys(h).sort(), ['expected', 'kind', 'process', 'running', 'title', 'unit', 'weaker']);
      assert.equal(h.kind, 'tpm');
      assert.equal(h.unit, 'qemu-gamma-tpm.service');
      assert.equal(h.running, true);
      assert.equal(String(h.process.pid), pids.get('gamma-tpm'));
      assert.deepEqual(h.process.uid, [uid, uid, uid, uid]);
      assert.equal(h.process.capEff, '0000000000000000');
      assert.equal(h.process.noNewPrivs, true);
      assert.deepEqual(Object.values(h.process.seccomp), [2]);
      assert.equal(h.process.cgroup, '/qemu.slice/qemu-gamma-tpm.service');
      assert.deepEqual(h.process.listening, [], 'its socket is systemd’s, handed over');
      assert.equal(h.expected.user, 'qemu-gamma');
      assert.equal(h.expected.apparmorProfile, 'qemu-harden-gamma-tpm');
      assert.equal(h.expected.memoryMax, String(128 * 1024 * 1024));
      assert.deepEqual(h.weaker, []);
    }
  });

  test('v2: the removed guest is stopped and its files are gone (backed up), the changed one restarted with its new limit, the unchanged one keeps its PID', () => {
    for (const [f, text] of Object.entries(FOREIGN)) writeFileSync(join(ct.root, f), text);
    const before = treeHash(ct.root);
    const dry = qh('apply', '/bundles/v2', '--dry-run', '--start');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /unchanged alpha\n +changed +beta \(profile, unit\)\n +removed +gamma/);
    assert.equal(treeHash(ct.root), before, 'apply --dry-run changed nothing');

    // First an apply that stops at a failed activation step once the files are in place (a systemd-sysusers that
    // fails stands in for any): gamma is stopped and its unit files are gone, the install is unfinished. The one
    // that follows completes it, with gamma's units no longer there to disable.
    const failing = ct.sh(
      'mkdir -p /run/qh-failing && printf "#!/bin/sh\\necho stand-in refuses >&2\\nexit 1\\n" > /run/qh-failing/systemd-sysusers && chmod 755 /run/qh-failing/systemd-sysusers && PATH=/run/qh-failing:$PATH node /qh/dist/qemu-harden.js apply /bundles/v2 --yes --start',
    );
    assert.equal(failing.code, 1, failing.stderr + failing.stdout);
    assert.match(failing.stdout, /done +stop and disable gamma: /);
    assert.match(failing.stdout, /FAIL +create users and groups \(systemd-sysusers\): .*stand-in refuses/);
    assert.match(failing.stderr, /a step failed, so this apply is not recorded as complete/);
    assert.ok(!existsSync(join(ct.root, 'etc/systemd/system/qemu-gamma.service')), 'gamma’s unit file is gone');
    assert.equal(active('gamma'), 'inactive');
    ct.sh('rm -r /run/qh-failing');

    const r = qh('apply', '/bundles/v2', '--yes', '--start');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout + r.stderr, /the last apply \(started [^)]+\) stopped midway: /);
    assert.match(
      r.stdout,
      /done +stop and disable gamma: qemu-gamma\.service qemu-gamma-tpm\.service qemu-gamma-tpm\.socket qemu-gamma-net\.service\n/,
    );
    assert.match(
      r.stdout,
      /Kept: user qemu-gamma, state \/var\/lib\/qemu-harden\/gamma with its TPM state \(the guest's own secrets, such as BitLocker's keys\) \/var\/lib\/qemu-harden\/gamma\/tpm2, logs \/var\/log\/qemu-harden\/gamma, disks \/images\/gamma\.img/,
    );
    assert.match(r.stdout, /userdel qemu-gamma/);
    assert.match(r.stdout, /done +restart \(unit changed\) beta: running/);
    assert.doesNotMatch(r.stdout, /alpha: running/, 'alpha is neither started nor restarted');

    const gammaFiles = [
      '/etc/systemd/system/qemu-gamma.service',
      '/etc/systemd/system/qemu-gamma-tpm.service',
      '/etc/systemd/system/qemu-gamma-tpm.socket',
      '/etc/apparmor.d/qemu-harden-gamma',
      '/etc/apparmor.d/qemu-harden.d/gamma',
      '/etc/apparmor.d/qemu-harden-gamma-tpm',
      '/etc/apparmor.d/qemu-harden.d/gamma-tpm',
      '/etc/systemd/system/qemu-gamma-net.service',
      '/etc/apparmor.d/qemu-harden-gamma-net',
      '/etc/apparmor.d/qemu-harden.d/gamma-net',
    ];
    assertInstalled(ct.root, v2, gammaFiles);
    assert.equal(active('gamma'), 'inactive');
    assert.equal(active('gamma-tpm'), 'inactive');
    assert.equal(ct.sh(`pgrep -x swtpm -u qemu-gamma || true`).stdout.trim(), '', "gamma's swtpm is gone");
    assert.equal(active('gamma-net'), 'inactive');
    assert.equal(
      ct.sh(`pgrep -u qemu-gamma || true`).stdout.trim(),
      '',
      'no process of gamma’s user is left: passt is gone',
    );
    assert.equal(ct.exec(['test', '-s', `${tpmState('gamma')}/tpm2-00.permall`]).code, 0, "gamma's TPM state is kept");
    // beta gained a TPM with its change: started with it, before it.
    assert.equal(active('beta-tpm'), 'active');
    assert.ok(
      Number(show(tpmUnit('beta'), 'ExecMainStartTimestampMonotonic')) <
        Number(show('qemu-beta.service', 'ExecMainStartTimestampMonotonic')),
    );
    assert.equal(
      ct.sh('pgrep -f "^/usr/bin/qemu-system-x86_64 -name guest=gamma" || true').stdout.trim(),
      '',
      "gamma's QEMU is gone",
    );
    const backups = readdirSync(join(ct.root, 'var/backups/qemu-harden'));
    assert.ok(
      backups.every((b) => /^\d{8}T\d{6}Z$/.test(b)),
      backups.join(' '),
    );
    for (const f of gammaFiles) {
      const saved = backups.map((b) => join(ct.root, 'var/backups/qemu-harden', b, f)).find(existsSync);
      assert.ok(saved, `${f} was backed up`);
      assert.equal(sha(saved), bundleFiles(v1).get(f));
    }
    assert.ok(
      ct.exec(['id', 'qemu-gamma']).code === 0 && existsSync(join(ct.root, 'var/lib/qemu-harden/gamma')),
      "gamma's user and state are kept",
    );
    assert.ok(existsSync(join(dir, 'images/gamma.img')), "gamma's disk is kept");

    assert.equal(
      show('qemu-beta.service', 'MemoryMax'),
      String(400 * 1024 * 1024),
      'systemd holds the new limit (this host gives the container no memory controller)',
    );
    assert.notEqual(show('qemu-beta.service', 'MainPID'), pids.get('beta'), 'beta runs a new QEMU');
    assert.equal(active('beta'), 'active');
    assert.equal(show('qemu-alpha.service', 'MainPID'), pids.get('alpha'), 'alpha runs the same QEMU');
    assert.equal(
      readFileSync(join(ct.root, RECORD, 'previous/MANIFEST.sha256'), 'utf8'),
      readFileSync(join(v1, 'MANIFEST.sha256'), 'utf8'),
    );
    assertForeignUntouched();
    const s = qh('status');
    assert.equal(s.code, 0, s.stdout);
  });

  test('a hand-edited unit shows as drift in status (exit 1); rollback restores v1 byte for byte and all three run', () => {
    const unit = join(ct.root, 'etc/systemd/system/qemu-alpha.service');
    writeFileSync(unit, readFileSync(unit, 'utf8').replace('TasksMax=256', 'TasksMax=4096'));
    const s = qh('status', '--json');
    assert.equal(s.code, 1, s.stdout);
    const r = JSON.parse(s.stdout) as { ok: boolean; guests: { name: string; drift: unknown[] }[] };
    assert.equal(r.ok, false);
    assert.deepEqual(r.guests.find((g) => g.name === 'alpha')!.drift, [
      { path: '/etc/systemd/system/qemu-alpha.service', problem: 'changed' },
    ]);
    assert.match(
      qh('status').stdout,
      /DRIFT: \/etc\/systemd\/system\/qemu-alpha\.service changed since it was installed/,
    );

    const before = treeHash(ct.root);
    const dry = qh('rollback', '--dry-run', '--start');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /new +gamma/);
    assert.equal(treeHash(ct.root), before, 'rollback --dry-run changed nothing');

    const rb = qh('rollback', '--yes', '--start');
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    assertInstalled(ct.root, v1, [
      '/etc/systemd/system/qemu-beta-tpm.service',
      '/etc/systemd/system/qemu-beta-tpm.socket',
      '/etc/apparmor.d/qemu-harden-beta-tpm',
      '/etc/apparmor.d/qemu-harden.d/beta-tpm',
    ]);
    for (const g of GUESTS) assert.equal(active(g), 'active', g);
    // beta no longer has a TPM: its units stopped once beta restarted without them, its state kept and named.
    assert.match(
      rb.stdout,
      /Guest beta no longer has qemu-beta-tpm\.service: its files are gone \(backed up\), and it stops once the guest restarts on its new unit\. Kept: its TPM state \(the guest's own secrets, such as BitLocker's keys\) \/var\/lib\/qemu-harden\/beta\/tpm2\. To remove it too:\n {2}rm -r \/var\/lib\/qemu-harden\/beta\/tpm2\n/,
    );
    // Its service stopped itself once beta's QEMU no longer needed it (StopWhenUnneeded=); its socket is stopped.
    assert.match(rb.stdout, /done +stop the helper units guests no longer have: qemu-beta-tpm\.socket\n/);
    assert.equal(active('beta-tpm'), 'inactive');
    assert.equal(
      ct.exec(['systemctl', 'is-active', 'qemu-beta-tpm.socket']).stdout.trim(),
      'inactive',
      'its socket no longer listens',
    );
    assert.ok(!existsSync(join(ct.root, 'run/qemu-harden/beta/tpm.sock')));
    assert.equal(ct.sh(`pgrep -x swtpm -u qemu-beta || true`).stdout.trim(), '', "beta's swtpm is gone");
    assert.equal(ct.exec(['test', '-s', `${tpmState('beta')}/tpm2-00.permall`]).code, 0, "beta's TPM state is kept");
    // gamma is back on the TPM it had: swtpm_setup left its state alone; and on passt.
    assert.equal(active('gamma-tpm'), 'active');
    assert.equal(active('gamma-net'), 'active');
    assert.match(
      ct.exec(['journalctl', '-u', tpmUnit('gamma'), '--no-pager', '-o', 'cat']).stdout,
      /Not overwriting existing state file/,
    );
    assert.equal(ct.exec(['test', '-s', `${tpmState('gamma')}/tpm2-00.permall`]).code, 0);
    assert.equal(show('qemu-beta.service', 'MemoryMax'), String(320 * 1024 * 1024));
    assert.equal(
      readFileSync(join(ct.root, RECORD, 'previous/MANIFEST.sha256'), 'utf8'),
      readFileSync(join(v2, 'MANIFEST.sha256'), 'utf8'),
      'a second rollback would return to v2',
    );
    assertForeignUntouched();
    const after = qh('status');
    assert.equal(after.code, 0, after.stdout);
  });

  test('without --start the printed command, pasted, brings every guest to its installed unit; a second paste changes nothing; --start starts a guest stopped on purpose on a run with nothing to change', () => {
    const mainPid = (g: string) => show(`qemu-${g}.service`, 'MainPID');
    /** The one command the output names for what is left, pasted into a shell in the container as printed. */
    const hintOf = (out: string) => {
      const m = /^To start, restart and enable them .*:\n {2}(.*)$/m.exec(out);
      assert.ok(m, `a command to paste:\n${out}`);
      return m[1]!;
    };
    const paste = (line: string) => {
      const r = ct.exec(['sh', '-c', line]);
      assert.equal(r.code, 0, `$ ${line}\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    for (const g of GUESTS) assert.equal(active(g), 'active', g);

    // v2 without --start: beta's unit changes (its memory limit), gamma goes. beta keeps running its old QEMU.
    const before = new Map(GUESTS.map((g) => [g, mainPid(g)]));
    const r = qh('apply', '/bundles/v2', '--yes');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^ {2}beta {2}runs an older unit \(written after it started\)$/m);
    assert.doesNotMatch(r.stdout, /^ {2}alpha /m, 'alpha runs its installed unit');
    assert.equal(mainPid('beta'), before.get('beta'), 'nothing was restarted');
    const hint = hintOf(r.stdout);
    assert.equal(hint, 'node qh/dist/qemu-harden.js start', 'as this process was started, as root without sudo');

    const first = paste(hint);
    assert.match(first, /^ {2}done {2}restart \(unit changed\) beta: running$/m);
    assert.notEqual(mainPid('beta'), before.get('beta'), 'beta runs a new QEMU');
    assert.equal(show('qemu-beta.service', 'MemoryMax'), String(400 * 1024 * 1024));
    assert.equal(mainPid('alpha'), before.get('alpha'), 'alpha is left running');
    const after = new Map(['alpha', 'beta'].map((g) => [g, mainPid(g)]));
    const second = paste(hint);
    assert.doesNotMatch(second, /done|FAIL/, 'a second paste does nothing');
    assert.match(second, /^Already running their installed unit and profile, and enabled: alpha, beta$/m);
    for (const [g, pid] of after) assert.equal(mainPid(g), pid, `${g} runs the same QEMU`);

    // An operator stops alpha on purpose; apply --start with nothing to change starts it (systemctl start's way).
    assert.equal(ct.exec(['systemctl', 'stop', 'qemu-alpha.service']).code, 0);
    // The test guest ignores the power button: systemd ends it with SIGTERM after TimeoutStopSec, and calls it failed.
    assert.equal(active('alpha'), 'failed');
    const idle = qh('apply', '/bundles/v2', '--yes', '--start');
    assert.equal(idle.code, 0, idle.stderr + idle.stdout);
    assert.match(idle.stdout, /^Nothing to change under \//m);
    assert.match(idle.stdout, /^ {2}done {2}start alpha: running$/m);
    assert.equal(active('alpha'), 'active');
    assert.equal(mainPid('beta'), after.get('beta'), 'beta, already current, is not restarted');

    // rollback without --start, as JSON: the text and the hint go to stderr, the document names the same command.
    const rb = qh('rollback', '--yes', '--json');
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    const doc = JSON.parse(rb.stdout) as { result: string; start: { next: string; guests: Record<string, unknown>[] } };
    assert.equal(doc.result, 'installed');
    assert.equal(doc.start.next, hintOf(rb.stderr));
    assert.equal(doc.start.next, hint, 'start, never rollback --start, which would roll back again');
    const byName = new Map(doc.start.guests.map((g) => [g.name, g]));
    assert.deepEqual(
      ['running', 'enabled', 'action'].map((k) => byName.get('gamma')![k]),
      [false, false, 'start'],
      'gamma was stopped and disabled when v2 removed it',
    );
    assert.deepEqual(byName.get('beta')!.older, ['unit']);
    assert.equal(byName.get('beta')!.action, 'restart');
    assert.equal(byName.get('alpha')!.action, 'none');
    assert.equal(active('gamma'), 'inactive', 'nothing was started');
    const beta = mainPid('beta');
    paste(doc.start.next);
    for (const g of GUESTS) assert.equal(active(g), 'active', g);
    assert.equal(show('qemu-gamma.service', 'UnitFileState'), 'enabled');
    assert.notEqual(mainPid('beta'), beta);
    assert.equal(show('qemu-beta.service', 'MemoryMax'), String(320 * 1024 * 1024), 'beta runs v1’s unit again');
    const pids = new Map(GUESTS.map((g) => [g, mainPid(g)]));
    const again = JSON.parse(ct.exec(['sh', '-c', `${doc.start.next} --json`]).stdout) as {
      ok: boolean;
      guests: { action: string; running: boolean; enabled: boolean; older: string[] }[];
    };
    assert.equal(again.ok, true);
    for (const g of again.guests) assert.deepEqual([g.action, g.running, g.enabled, g.older], ['none', true, true, []]);
    for (const [g, pid] of pids) assert.equal(mainPid(g), pid, `${g} runs the same QEMU after a second paste`);
    assertInstalled(ct.root, v1, []);
    assert.equal(qh('status').code, 0);
  });

  test('a guest running weaker than its bundle (a runtime drop-in gives it a capability): status exits 1 and says how', () => {
    const dropIn = '/run/systemd/system/qemu-alpha.service.d';
    const set = ct.sh(
      `mkdir -p ${dropIn} && printf '[Service]\\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\\nAmbientCapabilities=CAP_NET_BIND_SERVICE\\n' > ${dropIn}/weaker.conf && systemctl daemon-reload && systemctl restart qemu-alpha.service`,
    );
    assert.equal(set.code, 0, set.stderr);
    try {
      const s = qh('status', '--json');
      assert.equal(s.code, 1, s.stdout);
      const r = JSON.parse(s.stdout) as {
        guests: { name: string; weaker: string[]; drift: unknown[]; process: { capEff: string } }[];
      };
      const alpha = r.guests.find((g) => g.name === 'alpha')!;
      assert.equal(alpha.process.capEff, '0000000000000400');
      assert.deepEqual(alpha.weaker, ['holds capabilities (CapEff 0000000000000400)']);
      assert.deepEqual(alpha.drift, [], 'a drop-in in /run is not an installed file: this is not drift');
      assert.ok(r.guests.filter((g) => g.name !== 'alpha').every((g) => g.weaker.length === 0));
      assert.match(qh('status').stdout, /WEAKER: holds capabilities/);
    } finally {
      ct.sh(`rm -r ${dropIn} && systemctl daemon-reload && systemctl restart qemu-alpha.service`);
    }
    const s = qh('status');
    assert.equal(s.code, 0, s.stdout);
  });

  test('a TPM running weaker than its unit (a runtime drop-in gives swtpm a capability): status exits 1 and names it under its guest', () => {
    const dropIn = '/run/systemd/system/qemu-gamma-tpm.service.d';
    // Restarting the guest restarts its TPM (PartOf=) on the drop-in.
    const set = ct.sh(
      `mkdir -p ${dropIn} && printf '[Service]\\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\\nAmbientCapabilities=CAP_NET_BIND_SERVICE\\n' > ${dropIn}/weaker.conf && systemctl daemon-reload && systemctl restart qemu-gamma.service`,
    );
    assert.equal(set.code, 0, set.stderr);
    try {
      const s = qh('status', '--json');
      assert.equal(s.code, 1, s.stdout);
      const r = JSON.parse(s.stdout) as {
        ok: boolean;
        guests: { name: string; weaker: string[]; helpers: { weaker: string[]; process: { capEff: string } }[] }[];
      };
      assert.equal(r.ok, false);
      const gamma = r.guests.find((g) => g.name === 'gamma')!;
      assert.deepEqual(gamma.weaker, [], 'gamma’s QEMU is as installed');
      assert.equal(gamma.helpers[0]!.process.capEff, '0000000000000400');
      assert.deepEqual(gamma.helpers[0]!.weaker, ['swtpm holds capabilities (CapEff 0000000000000400)']);
      assert.match(qh('status').stdout, /^ {4}WEAKER: swtpm holds capabilities \(CapEff 0000000000000400\)$/m);
    } finally {
      ct.sh(`rm -r ${dropIn} && systemctl daemon-reload && systemctl restart qemu-gamma.service`);
    }
    const s = qh('status');
    assert.equal(s.code, 0, s.stdout);
  });

  test('a guest that fails to start: apply reports its last journal lines and exits 1', async () => {
    const broken = {
      ...V1,
      guests: [...V1.guests, guest('delta', { disks: [{ path: '/images/missing.img', format: 'raw' }] })],
    };
    writeFileSync(join(dir, 'v3.json'), JSON.stringify(broken));
    const v3 = join(dir, 'v3');
    assert.equal((await cli(['generate', '--answers', join(dir, 'v3.json'), '--out', v3])).code, 0);
    // The container's /tmp is its own tmpfs: the bundle goes to /root.
    mkdirSync(join(ct.root, 'root'), { recursive: true });
    execFileSync('cp', ['-a', v3, join(ct.root, 'root/v3')]);
    const r = qh('apply', '/root/v3', '--yes', '--start');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /FAIL +enable and start delta: [^\n]*; its last journal lines:\n(?: {6}.*\n)* {6}.*qemu-delta\.service: (?:Main|Control) process exited, code=exited, status=226\/NAMESPACE\n/,
    );
    for (const g of GUESTS) assert.equal(active(g), 'active', `${g} runs on`);
  });
});

/** The system calls that change the tree during an install: each is a point where apply is killed. */
const KILL_AT = ['rename', 'renameat', 'renameat2', 'unlink', 'unlinkat', 'rmdir'];

const applyArgv = (root: string, bundle: string) => [process.execPath, BIN, 'apply', bundle, '--root', root, '--yes'];

test('apply killed with SIGKILL at points across its install: the next apply reports it and completes, or rollback restores the bundle before it; the tree matches', async (t) => {
  requireTool('systemd-sysusers', 'systemd');
  const tmp = tempDir(t, 'qh-lifecycle-kill-');
  const base = join(tmp, 'base');
  mkdirSync(join(base, 'etc'), { recursive: true });
  writeFileSync(join(base, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(base, 'etc/group'), 'root:x:0:\n');
  assert.equal((await cli(['apply', v1, '--root', base, '--yes'])).code, 0);
  const work = join(tmp, 'work');
  const fresh = () => {
    rmSync(work, { recursive: true, force: true });
    execFileSync('cp', ['-a', base, work]);
  };
  const gammaFiles = [
    '/etc/systemd/system/qemu-gamma.service',
    '/etc/apparmor.d/qemu-harden-gamma',
    '/etc/apparmor.d/qemu-harden.d/gamma',
  ];

  fresh();
  const full = traceCalls(applyArgv(work, v2), KILL_AT, { log: join(tmp, 'full.trace') });
  assert.equal(full.status, 0, full.stdout);
  assertInstalled(work, v2, gammaFiles);
  // From the first change after the journal is in place to the unlink that removes the journal.
  const calls = full.calls.map((c, i) => ({ ...c, i }));
  const first = calls.findIndex((c) => c.syscall.startsWith('rename') && c.line.includes('/journal.json")'));
  const last = calls.findLastIndex((c) => c.syscall.startsWith('unlink') && c.line.includes('journal.json'));
  assert.ok(
    first >= 0 && last > first + 1,
    `the trace shows the journal written and removed:\n${calls.map((c) => c.line).join('\n')}`,
  );
  const span = calls.slice(first + 1, last + 1);
  const kinds = (re: RegExp) => span.filter((c) => re.test(c.line));
  // Points spread over the install: its first change (a file installed), the last file installed, a file removed,
  // each of the record's two renames (the second leaves `current` missing in between), the journal's removal.
  const wanted = [
    span[0],
    kinds(/^rename.*qemu-harden-new/).at(-1),
    kinds(/^unlink.*\/qemu-gamma\.service"/)[0],
    kinds(/^rename\(.*\/current", .*\/previous"/)[0],
    kinds(/^rename\(.*\/next", .*\/current"/)[0],
    span.at(-1),
  ];
  for (const [i, p] of wanted.entries())
    assert.ok(p, `kill point ${i} is in the trace:\n${span.map((c) => c.line).join('\n')}`);
  const points = [...new Set(wanted as NonNullable<(typeof wanted)[number]>[])];
  assert.ok(points.length >= 5, `distinct kill points: ${points.map((p) => p.line).join('\n')}`);
  const kill = (p: (typeof points)[number], log: string) =>
    killAt(applyArgv(work, v2), aimAt(full.calls, p.i), p, { log: join(tmp, log) });
  for (const [i, p] of points.entries()) {
    fresh();
    kill(p, `kill-${i}.trace`);
    assert.ok(existsSync(join(work, RECORD, 'journal.json')), `the journal is there after a kill at ${p.line}`);
    const st = await cli(['status', '--root', work, '--json']);
    assert.equal(st.code, 1, 'status reports the interrupted install');
    assert.equal((JSON.parse(st.stdout) as { interrupted: { action: string } }).interrupted.action, 'apply');
    const next = await cli(['apply', v2, '--root', work, '--yes']);
    assert.equal(next.code, 0, next.stderr + next.stdout);
    assert.match(
      next.stdout,
      /^Interrupted install: the last apply \(started [0-9TZ:-]+\) (stopped midway|had installed bundle)/m,
      `after a kill at ${p.line}`,
    );
    assertInstalled(work, v2, gammaFiles);
    assert.equal(
      readFileSync(join(work, RECORD, 'previous/MANIFEST.sha256'), 'utf8'),
      readFileSync(join(v1, 'MANIFEST.sha256'), 'utf8'),
      'previous is v1, for rollback',
    );
  }

  // Rollback after a kill, instead of apply: back to v1, the bundle installed completely before the killed apply.
  for (const p of [wanted[1]!, wanted[4]!]) {
    fresh();
    kill(p, 'kill-rollback.trace');
    const rb = await cli(['rollback', '--root', work, '--yes']);
    assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    assert.match(rb.stdout, /^The last apply stopped midway; rolling back to the bundle installed before it\.$/m);
    assertInstalled(work, v1, []);
  }
  t.diagnostic(`${points.length} kill points, then 2 rollbacks after a kill`);
});

test('a failed step leaves the install unfinished: no record moved, the next apply reports it, runs every step again and completes', async (t) => {
  requireTool('systemd-sysusers', 'systemd');
  const root = tempDir(t, 'qh-lifecycle-step-');
  // A directory where systemd-sysusers reads the user database: its step fails.
  mkdirSync(join(root, 'etc/passwd'), { recursive: true });
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  const failed = await cli(['apply', v1, '--root', root, '--yes']);
  assert.equal(failed.code, 1, failed.stdout + failed.stderr);
  assert.match(failed.stdout, /FAIL +create users and groups \(systemd-sysusers\)/);
  assert.match(failed.stderr, /a step failed, so this apply is not recorded as complete/);
  assert.ok(
    existsSync(join(root, RECORD, 'journal.json')) && !existsSync(join(root, RECORD, 'current')),
    'the journal stays, nothing is recorded as installed',
  );
  const st = await cli(['status', '--root', root]);
  assert.equal(st.code, 2);
  assert.match(
    st.stderr,
    /nothing is installed under .* yet: the first apply \(started .*\) did not complete; run apply again/,
  );

  rmSync(join(root, 'etc/passwd'), { recursive: true });
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const again = await cli(['apply', v1, '--root', root, '--yes']);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /^Interrupted install: the last apply .* stopped midway/m);
  assert.match(again.stdout, /^Nothing to change under /m, 'the files were all installed the first time');
  assert.match(again.stdout, /done +create users and groups/);
  assert.match(readFileSync(join(root, 'etc/passwd'), 'utf8'), /^qemu-alpha:/m);
  assertInstalled(root, v1, []);
  assert.equal((await cli(['status', '--root', root])).code, 0);
});

test('the bundle README draws each guest’s reach as a Mermaid graph: guest → user → files, devices, sockets, network', async (t) => {
  const tmp = tempDir(t);
  writeFileSync(
    join(tmp, 'a.json'),
    JSON.stringify({
      ...V1,
      guests: [
        guest('alpha', { disks: [{ path: '/images/a "b" <c>.img', format: 'raw' }] }),
        guest('beta', { network: { mode: 'user' } }),
      ],
    }),
  );
  assert.equal((await cli(['generate', '--answers', join(tmp, 'a.json'), '--out', join(tmp, 'b')])).code, 0);
  const readme = readFileSync(join(tmp, 'b/README.md'), 'utf8');
  const graph = /```mermaid\nflowchart LR\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(graph, 'a mermaid block');
  const lines = graph.trimEnd().split('\n');
  for (const l of lines)
    assert.match(
      l,
      /^ {2}(g\d+\["[^"]*"\] --> u\d+\["[^"]*"\]|u\d+ -->\|[a-z]+\| r\d+_\d+\["[^"]*"\])$/,
      'every line is one edge with a quoted label',
    );
  assert.ok(lines.includes('  g0["guest alpha"] --> u0["user qemu-alpha"]'));
  assert.ok(
    lines.includes('  u0 -->|rw| r0_0["file /images/a #34;b#34; #60;c#62;.img"]'),
    'quotes and angle brackets are entity codes',
  );
  assert.ok(lines.includes('  u0 -->|listens| r0_1["socket /run/qemu-harden/alpha/qmp.sock"]'));
  assert.ok(lines.includes('  u0 -->|net| r0_3["no network"]'));
  // beta's user-mode network is passt's: QEMU reaches it over its socket, and holds no IP itself.
  assert.ok(
    lines.some((l) =>
      /^ {2}u1 -->\|net\| r1_\d+\["passt socket \/run\/qemu-harden\/beta\/net\/passt\.sock"\]$/.test(l),
    ),
    lines.join('\n'),
  );
});
