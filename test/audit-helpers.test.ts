// audit recognises the guests' helpers whoever started them: real swtpm processes in a private mount+PID+net
// namespace (unshare), in the shapes careless deployments leave them — as root, with its own seccomp filter
// turned off, with its state readable by every user or by a group not its own — beside one as qemu-harden runs it.
// audit, run inside the namespace, lists each swtpm and reports exactly what is wrong with each, with the evidence
// it read; where a swtpm's command line does not say where its state is, audit says it could not judge it.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, guestFilesDir, requireTool, waitUntil } from './helpers.js';

interface AuditJson {
  helpers: { pid: number; kind: string; program: string; uid: number | null; systemUser: boolean; argv: string[] }[];
  findings: {
    check: string;
    severity: string;
    guest: string | null;
    pid: number | null;
    summary: string;
    evidence: string;
  }[];
  unseen: { what: string; reason: string }[];
}

/** The parent pid of a process, or undefined when it has already gone. */
function parentOf(pid: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1];
  } catch {
    return undefined;
  }
}

/**
 * A private mount+PID+net namespace (unshare) running a shell script: commands run inside it through nsenter, and
 * stopping it kills its init, which takes everything in it along.
 */
class Namespace {
  private child: ChildProcess | undefined;
  private pid = 0;

  async start(script: string): Promise<void> {
    const child = spawn(
      'unshare',
      ['--mount', '--pid', '--net', '--fork', '--mount-proc', '--kill-child', 'sh', '-c', script],
      { stdio: 'ignore' },
    );
    this.child = child;
    await waitUntil('the namespace’s init', () => {
      const init = readdirSync('/proc').find((p) => /^\d+$/.test(p) && parentOf(p) === String(child.pid));
      if (init) this.pid = Number(init);
      return this.pid || undefined;
    });
  }

  inside(argv: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync('nsenter', ['-t', String(this.pid), '-m', '-p', '-n', ...argv], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    if (this.pid) process.kill(this.pid, 'SIGKILL');
    else child.kill('SIGKILL');
    await exited;
  }
}

describe('audit of swtpm processes in bad shapes, in a private mount+PID+net namespace', () => {
  const dir = guestFilesDir({ after }, 'qh-audit-tpm-');
  const ns = new Namespace();
  /** System users (below UID_MIN), as libvirt's and Proxmox's swtpm run; 4260 is a group none of them is in. */
  const UID = { noseccomp: 961, open: 962, group: 963, good: 964, env: 965 };
  const OTHER_GROUP = 4260;
  const state = (name: string) => join(dir, name);
  const permall = (name: string) => join(state(name), 'tpm2-00.permall');
  const as = (uid: number) => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const swtpm = (name: string, tpmstate: string[], more: string[] = []) => [
    'swtpm',
    'socket',
    '--tpm2',
    ...tpmstate,
    '--ctrl',
    `type=unixio,path=${join(dir, 'run', `${name}.sock`)}`,
    // The TPM starts up at once, so its state file exists without a client.
    '--flags',
    'not-need-init,startup-clear',
    ...more,
  ];
  const TPMS: Record<string, string[]> = {
    root: swtpm('root', ['--tpmstate', `dir=${state('root')},mode=0600`]),
    noseccomp: [
      ...as(UID.noseccomp),
      ...swtpm('noseccomp', ['--tpmstate', `dir=${state('noseccomp')},mode=0600`], ['--seccomp', 'action=none']),
    ],
    open: [...as(UID.open), ...swtpm('open', ['--tpmstate', `dir=${state('open')},mode=0644`])],
    group: [...as(UID.group), ...swtpm('group', ['--tpmstate', `backend-uri=dir://${state('group')}`])],
    good: [
      ...as(UID.good),
      ...swtpm('good', ['--tpmstate', `dir=${state('good')},mode=0600`], ['--seccomp', 'action=kill']),
    ],
    env: ['env', `TPM_PATH=${state('env')}`, ...as(UID.env), ...swtpm('env', [])],
  };
  const EXPECTED: Record<string, string[]> = {
    root: ['helper.capabilities', 'helper.root'],
    noseccomp: ['helper.seccomp'],
    open: ['helper.state-mode'],
    group: ['helper.state-mode'],
    good: [],
    env: [],
  };
  const pids = new Map<string, number>();

  const inside = (argv: string[]) => ns.inside(argv);
  after(() => ns.stop());

  before(async () => {
    for (const [tool, pkg] of [
      ['unshare', 'util-linux'],
      ['nsenter', 'util-linux'],
      ['setpriv', 'util-linux'],
      ['swtpm', 'swtpm'],
    ] as const)
      requireTool(tool, pkg);
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'run'));
    chmodSync(join(dir, 'run'), 0o1777);
    for (const [name, uid, mode] of [
      ['root', 0, 0o700],
      ['noseccomp', UID.noseccomp, 0o700],
      ['open', UID.open, 0o755],
      // New files take the directory's group: OTHER_GROUP, whose members may read what swtpm writes (0640).
      ['group', UID.group, 0o2750],
      ['good', UID.good, 0o700],
      ['env', UID.env, 0o700],
    ] as const) {
      mkdirSync(state(name));
      chownSync(state(name), uid, name === 'group' ? OTHER_GROUP : uid);
      chmodSync(state(name), mode);
    }
    const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const script = [
      ...Object.entries(TPMS).map(
        ([name, argv]) =>
          `(exec ${argv.map(q).join(' ')}) </dev/null >>${q(join(dir, 'swtpm.log'))} 2>&1 &\necho ${name} $! >>${q(join(dir, 'pids'))}`,
      ),
      'wait',
    ].join('\n');
    await ns.start(script);
    // Each swtpm is up once its TPM has started and written its state.
    const log = () => (existsSync(join(dir, 'swtpm.log')) ? readFileSync(join(dir, 'swtpm.log'), 'utf8') : '');
    for (let i = 0; i < 300 && !Object.keys(TPMS).every((n) => existsSync(permall(n))); i++)
      await new Promise((r) => setTimeout(r, 100));
    for (const n of Object.keys(TPMS)) assert.ok(existsSync(permall(n)), `${n}'s swtpm wrote its state: ${log()}`);
    for (const line of readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n')) {
      const [name, pid] = line.split(' ');
      pids.set(name!, Number(pid));
    }
  });

  test('as root it lists every swtpm and reports exactly what is wrong with each, with what it read', () => {
    const r = inside([process.execPath, BIN, 'audit', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const json = JSON.parse(r.stdout) as AuditJson;
    // The pids the script saw are the namespace's own: the swtpm processes, or setpriv and env that became them.
    assert.deepEqual(
      json.helpers.map((h) => h.pid).sort((a, b) => a - b),
      [...pids.values()].sort((a, b) => a - b),
    );
    assert.ok(json.helpers.every((h) => h.kind === 'tpm' && h.program === 'swtpm' && h.systemUser));
    for (const [name, checks] of Object.entries(EXPECTED))
      assert.deepEqual(
        json.findings
          .filter((f) => f.pid === pids.get(name))
          .map((f) => f.check)
          .sort(),
        checks,
        `${name}: ${JSON.stringify(json.findings.filter((f) => f.pid === pids.get(name)))}`,
      );
    const f = (name: string, check: string) =>
      json.findings.find((x) => x.pid === pids.get(name) && x.check === check)!;
    assert.equal(f('root', 'helper.root').summary, 'swtpm runs as root');
    assert.match(f('root', 'helper.root').evidence, /^\/proc\/\d+\/status: Uid:\t0\t0\t0\t0$/);
    assert.equal(
      f('noseccomp', 'helper.seccomp').summary,
      'swtpm runs with its own seccomp filter off (--seccomp action=none)',
    );
    assert.equal(f('open', 'helper.state-mode').severity, 'high');
    assert.equal(f('open', 'helper.state-mode').summary, `swtpm state ${permall('open')} is readable by every user`);
    assert.match(f('open', 'helper.state-mode').evidence, / mode 0644, owner 962:962 \(every directory above it/);
    assert.equal(f('group', 'helper.state-mode').severity, 'medium');
    assert.equal(
      f('group', 'helper.state-mode').summary,
      `swtpm state ${permall('group')} is readable by group ${OTHER_GROUP}`,
    );
    for (const x of json.findings.filter((x) => x.pid !== null)) assert.equal(x.guest, 'swtpm');
    // The one without --tpmstate: where its state is, its command line does not say.
    assert.deepEqual(
      json.unseen.map((u) => u.what),
      [`swtpm (pid ${pids.get('env')}): where it keeps its state, so the state's modes are not judged`],
    );

    const text = inside([process.execPath, BIN, 'audit']);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^and 6 helper processes of guests:$/m);
    assert.match(text.stdout, new RegExp(`^ {2}pid ${pids.get('root')} {2}swtpm {2}user root \\(uid 0\\)$`, 'm'));
    assert.match(text.stdout, new RegExp(`^swtpm \\(pid ${pids.get('noseccomp')}\\):$`, 'm'));
    assert.match(text.stdout, /^ {2}\[high\] helper\.seccomp: swtpm runs with its own seccomp filter off/m);
  });
});

// The network and shared folders done the old ways, beside passt: Debian 12's C virtiofsd, which needs root and is
// left running as root; QEMU's own slirp forwarding a port; passt as libvirt and Podman run it (started as root, it
// changes to nobody itself); a QEMU whose network is that passt. audit lists virtiofsd and passt as helpers and
// reports the root virtiofsd and the QEMU holding IP sockets for slirp, and nothing about passt or its QEMU's network.
describe('audit of virtiofsd, passt and slirp, in a private mount+PID+net namespace', () => {
  const dir = guestFilesDir({ after }, 'qh-audit-net-');
  const ns = new Namespace();
  const QEMU_UID = { slirp: 966, onpasst: 967 };
  const SLIRP_PORT = 4460;
  const passtSock = join(dir, 'run', 'passt.sock');
  const qemu = (name: keyof typeof QEMU_UID, net: string[]) => [
    'setpriv',
    `--reuid=${QEMU_UID[name]}`,
    `--regid=${QEMU_UID[name]}`,
    '--clear-groups',
    '/usr/bin/qemu-system-x86_64',
    '-name',
    `guest=${name}`,
    '-nodefaults',
    '-no-user-config',
    '-S',
    '-display',
    'none',
    '-machine',
    'q35',
    '-accel',
    'tcg',
    '-m',
    '32',
    '-sandbox',
    'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    ...net,
  ];
  const PROCS: Record<string, string[]> = {
    virtiofsd: [
      '/usr/lib/qemu/virtiofsd',
      `--socket-path=${join(dir, 'run', 'vfs.sock')}`,
      '-o',
      `source=${dir}/share`,
    ],
    passt: ['passt', '--foreground', '--socket', passtSock, '-t', 'none', '-u', 'none'],
    slirp: qemu('slirp', [
      '-netdev',
      `user,id=n0,hostfwd=tcp:0.0.0.0:${SLIRP_PORT}-:22`,
      '-device',
      'e1000,netdev=n0',
      '-drive',
      `file=${join(dir, 'slirp.img')},format=raw,if=virtio`,
    ]),
    onpasst: qemu('onpasst', [
      '-netdev',
      `stream,id=n0,server=off,addr.type=unix,addr.path=${passtSock}`,
      '-device',
      'e1000,netdev=n0',
    ]),
  };
  const pids = new Map<string, number>();

  const inside = (argv: string[]) => ns.inside(argv);
  after(() => ns.stop());

  before(async () => {
    for (const [tool, pkg] of [
      ['unshare', 'util-linux'],
      ['nsenter', 'util-linux'],
      ['setpriv', 'util-linux'],
      ['ip', 'iproute2'],
      ['passt', 'passt'],
      ['qemu-system-x86_64', 'qemu-system-x86'],
      ['/usr/lib/qemu/virtiofsd', 'qemu-system-common'],
    ] as const)
      requireTool(tool, pkg);
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'share'));
    writeFileSync(join(dir, 'slirp.img'), Buffer.alloc(1024 * 1024), { mode: 0o600 });
    chownSync(join(dir, 'slirp.img'), QEMU_UID.slirp, QEMU_UID.slirp);
    mkdirSync(join(dir, 'run'));
    chmodSync(join(dir, 'run'), 0o1777);
    const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    const start = (name: string) =>
      `(exec ${PROCS[name]!.map(q).join(' ')}) </dev/null >>${q(join(dir, `${name}.log`))} 2>&1 &\necho ${name} $! >>${q(join(dir, 'pids'))}`;
    const script = [
      // passt serves the namespace's own network: an address and a default route for it to give its guest.
      'ip link set lo up',
      'ip link add qh0 type veth peer name qh1 && ip addr add 10.79.0.1/24 dev qh0 && ip link set qh0 up && ip link set qh1 up && ip route add default via 10.79.0.2',
      start('virtiofsd'),
      start('passt'),
      start('slirp'),
      // QEMU 7.2 connects once, at start: passt listens first.
      `while [ ! -S ${q(passtSock)} ]; do sleep 0.1; done`,
      start('onpasst'),
      'wait',
    ].join('\n');
    await ns.start(script);
    const logs = () =>
      Object.keys(PROCS)
        .map((n) => `${n}: ${existsSync(join(dir, `${n}.log`)) ? readFileSync(join(dir, `${n}.log`), 'utf8') : ''}`)
        .join('\n');
    // Each has started (the QEMU on passt once passt's socket was there), virtiofsd listens, and slirp's forwarded
    // port is open (QEMU opens it before -S stops it).
    await waitUntil(
      'virtiofsd, passt and both QEMUs',
      () =>
        existsSync(join(dir, 'pids')) &&
        readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n').length === Object.keys(PROCS).length &&
        existsSync(join(dir, 'run', 'vfs.sock')) &&
        inside(['ss', '-Hltn', `sport = :${SLIRP_PORT}`]).stdout.trim() !== '',
      { timeoutMs: 120_000, detail: logs },
    );
    for (const line of readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n')) {
      const [name, pid] = line.split(' ');
      pids.set(name!, Number(pid));
    }
  });

  test('it lists virtiofsd and passt as helpers and reports the root virtiofsd and slirp’s IP sockets in QEMU', () => {
    const r = inside([process.execPath, BIN, 'audit', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const json = JSON.parse(r.stdout) as AuditJson & {
      processes: { pid: number; guest: string }[];
    };
    const helper = (name: string) => json.helpers.find((h) => h.pid === pids.get(name));
    assert.equal(helper('virtiofsd')?.kind, 'fs0');
    assert.equal(helper('virtiofsd')?.uid, 0);
    // passt changed to nobody itself, and it runs passt.avx2 in its place where the CPU has AVX2.
    assert.equal(helper('passt')?.kind, 'net', JSON.stringify(json.helpers));
    assert.match(helper('passt')!.program, /^passt(\.avx2)?$/);
    assert.equal(helper('passt')!.uid, 65534);
    const checks = (name: string) =>
      json.findings
        .filter((f) => f.pid === pids.get(name))
        .map((f) => f.check)
        .filter((c) => !c.startsWith('process.cgroup-'));
    assert.ok(checks('virtiofsd').includes('helper.root'), JSON.stringify(checks('virtiofsd')));
    assert.ok(checks('virtiofsd').includes('helper.capabilities'));
    assert.deepEqual(checks('passt'), [], 'passt as libvirt runs it: nobody, no capabilities, its own filter');
    assert.ok(checks('slirp').includes('network.slirp'), JSON.stringify(checks('slirp')));
    assert.ok(!checks('slirp').includes('listeners.unexplained-tcp'), 'slirp’s forward is explained by its -netdev');
    assert.ok(!checks('onpasst').includes('network.slirp'), JSON.stringify(checks('onpasst')));
    const f = (name: string, check: string) =>
      json.findings.find((x) => x.pid === pids.get(name) && x.check === check)!;
    assert.equal(f('virtiofsd', 'helper.root').summary, 'virtiofsd runs as root');
    assert.match(f('virtiofsd', 'helper.root').evidence, /^\/proc\/\d+\/status: Uid:\t0\t0\t0\t0$/);
    const s = f('slirp', 'network.slirp');
    assert.equal(s.severity, 'medium');
    assert.equal(s.guest, 'slirp');
    assert.equal(
      s.evidence,
      `-netdev user,id=n0,hostfwd=tcp:0.0.0.0:${SLIRP_PORT}-:22; the IP sockets it holds: 0.0.0.0:${SLIRP_PORT} tcp LISTEN`,
    );
    const text = inside([process.execPath, BIN, 'audit']);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /^ {2}\[medium\] network\.slirp: runs the user-mode network inside QEMU \(slirp\)/m);
  });

  test('--answers-out gives the slirp guest passt’s user-mode network, and says so', () => {
    const out = join(dir, 'answers.json');
    const r = inside([process.execPath, BIN, 'audit', '--json', '--answers-out', out]);
    assert.equal(r.code, 1, r.stderr);
    const json = JSON.parse(r.stdout) as {
      answersOut: { notCarried: { guest: string; choice: string; reason: string }[] };
    };
    assert.deepEqual(
      json.answersOut.notCarried.filter((n) => n.guest === 'slirp' && n.choice === 'network').map((n) => n.reason),
      [
        'user-mode networking inside QEMU (slirp) becomes passt, in a unit of its own, and QEMU keeps no IP socket; on a host without passt, answer network.backend "slirp" and accept the risk "slirp"',
      ],
    );
    const doc = JSON.parse(readFileSync(out, 'utf8')) as { guests: { name: string; network: unknown }[] };
    assert.deepEqual(doc.guests.find((g) => g.name === 'slirp')?.network, { mode: 'user' });
  });
});
