// `npm run bench`: the speed targets of the built CLI (dist/qemu-harden.js), as medians and ratios measured in
// this run. Runs are interleaved so that a busy moment on the machine hits both sides of a ratio alike. A missed
// target prints FAIL but exits 0: CI runs this only to check that it still runs. `npm run bench -- wizard` runs
// only the wizard's parts (first frame, keypress to frame). With `--write FILE` the table, and the machine it was
// measured on, also replace the figures between FILE's bench markers (npm run bench writes docs/performance.md),
// so the figures in the docs are always a run's own output.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFakeQemu } from './fake-qemu.mjs';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(REPO, 'dist', 'qemu-harden.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const BEGIN = '<!-- figures: written by npm run bench -->';
const END = '<!-- end of figures -->';
const args = process.argv.slice(2);
const at = args.indexOf('--write');
const WRITE = at >= 0 ? args[at + 1] : undefined;
if (at >= 0) args.splice(at, 2);
if ((at >= 0 && !WRITE) || args.length > 1) {
  console.error('usage: node scripts/bench.mjs [--write FILE] [wizard]');
  process.exit(2);
}
if (WRITE && !readFileSync(WRITE, 'utf8').includes(BEGIN)) {
  console.error(`bench: ${WRITE} has no "${BEGIN}" line to write the figures after`);
  process.exit(2);
}
/** The load when the run began: the figures say how busy the machine was. */
const LOAD_AT_START = loadavg()[0];

/** The machine, in one line: CPU model and count, Node, the distribution. */
function machine() {
  const osRelease = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1] ?? process.platform;
  return `${cpus().length} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, ${pretty}`;
}

if (!existsSync(BIN)) {
  console.error('bench: dist/qemu-harden.js is missing; run npm run build first');
  process.exit(2);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Wall time of one run in milliseconds; a failed run stops the benchmark. */
function timed(args, cwd) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`qemu-harden ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return ms;
}

// A pseudo-terminal of 80x24 from Python's pty module. Each run: the time from just before the child is spawned
// to the first output that has visible text once escape sequences are removed (for `node -e ""`, which prints
// nothing: to its exit). The child is killed once measured.
const PTY_HARNESS = String.raw`
import json, os, pty, re, select, signal, struct, subprocess, sys, termios, fcntl, time
cmds, runs = json.loads(sys.argv[1]), int(sys.argv[2])
ESC = re.compile(rb'\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])')
def once(cmd):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
    env = dict(os.environ, TERM='xterm-256color')
    env.pop('CI', None)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd['argv'], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cmd['cwd'], start_new_session=True)
    os.close(slave)
    buf, first, deadline = b'', None, t0 + 30
    while time.perf_counter() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if not r:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            chunk = b''
        if not chunk:
            first = time.perf_counter() if cmd['until'] == 'exit' else None
            break
        buf += chunk
        if cmd['until'] == 'text' and ESC.sub(b'', buf).strip():
            first = time.perf_counter()
            break
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()
    os.close(master)
    if first is None:
        raise SystemExit('no %s from %r within 30 s; output: %r' % (cmd['until'], cmd['argv'], buf[-300:]))
    return (first - t0) * 1000, ESC.sub(b'', buf).decode('utf8', 'replace').strip().splitlines()[:1]
out = {c['name']: [] for c in cmds}
seen = {}
for _ in range(runs):
    for c in cmds:
        ms, text = once(c)
        out[c['name']].append(ms)
        seen[c['name']] = text
print(json.dumps({'times': out, 'first': seen}))
`;

function firstFrame(scratch) {
  const cmds = [
    { name: 'node', argv: [process.execPath, '-e', ''], cwd: scratch, until: 'exit' },
    { name: 'wizard', argv: [process.execPath, BIN], cwd: scratch, until: 'text' },
  ];
  const r = spawnSync('python3', ['-c', PTY_HARNESS, JSON.stringify(cmds), String(RUNS)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0) throw new Error(`the pseudo-terminal harness failed (python3 exited ${r.status}):\n${r.stderr}`);
  const { times, first } = JSON.parse(r.stdout);
  return { node: median(times.node), wizard: median(times.wizard), firstLine: (first.wizard[0] ?? '').slice(0, 60) };
}

// Keypress to frame: the wizard on an 80x24 pseudo-terminal with a 64-guest answers file, driven to a step, then
// one key at a time: the time from writing the key to the first output after it (Ink draws the new frame in
// one write). Keys are spaced 120 ms apart, so Ink's 30 fps throttle never holds a frame back. systemd-analyze
// is kept off PATH: its exposure measurements would draw frames of their own while the keys are timed.
const KEYS_HARNESS = String.raw`
import json, os, pty, re, select, signal, struct, subprocess, sys, termios, fcntl, time
spec = json.loads(sys.argv[1])
ESC = re.compile(rb'\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])')
master, slave = pty.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
env = dict(os.environ, TERM='xterm-256color', PATH=spec['path'])
env.pop('CI', None)
p = subprocess.Popen(spec['argv'], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=spec['cwd'], start_new_session=True)
os.close(slave)
def read(timeout):
    r, _, _ = select.select([master], [], [], timeout)
    return os.read(master, 1 << 20) if r else b''
def drain(quiet):
    buf = b''
    while True:
        c = read(quiet)
        if not c:
            return buf
        buf += c
def wait_for(pattern, limit=60):
    buf, end = b'', time.time() + limit
    while time.time() < end:
        buf += read(0.2)
        if re.search(pattern, ESC.sub(b'', buf).decode('utf8', 'replace')):
            return
    raise SystemExit('never saw %r; last output: %r' % (pattern, ESC.sub(b'', buf)[-400:]))
out = {}
try:
    for phase in spec['phases']:
        for k in phase['to']:
            os.write(master, k.encode())
            time.sleep(0.05)
        wait_for(phase['wait'])
        drain(0.5)
        times = []
        for i in range(spec['runs']):
            key = phase['keys'][i % len(phase['keys'])]
            t0 = time.perf_counter()
            os.write(master, key.encode())
            if not read(5):
                raise SystemExit('no frame after key %r on %s' % (key, phase['name']))
            times.append((time.perf_counter() - t0) * 1000)
            drain(0.12)
        out[phase['name']] = times
finally:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
print(json.dumps(out))
`;

const p95 = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)];
};

function keypress(scratch) {
  const file = join(scratch, 'latency.json');
  writeFileSync(file, JSON.stringify(answers(64)));
  const spec = {
    argv: [process.execPath, BIN, '--answers', file],
    cwd: scratch,
    path: dirname(process.execPath),
    runs: Math.max(40, RUNS * 4),
    phases: [
      // Host, use case, guests: Enter three times reaches the disks step; Tab and ↑ move between its fields.
      { name: 'disks', to: ['\r', '\r', '\r'], wait: '4/12 Disks', keys: ['\t', '\t', '\u001b[A'] },
      // Seven Enters on: the review; two Tabs and two → show the map of all 64 guests; ↓ and ↑ scroll it.
      {
        name: 'review',
        to: ['\r', '\r', '\r', '\r', '\r', '\r', '\r', '\t', '\t', '\u001b[C', '\u001b[C'],
        wait: 'lines \\d+-\\d+ of',
        keys: ['\u001b[B', '\u001b[B', '\u001b[A'],
      },
    ],
  };
  const r = spawnSync('python3', ['-c', KEYS_HARNESS, JSON.stringify(spec)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 300_000,
  });
  if (r.status !== 0)
    throw new Error(`the keypress harness failed (python3 exited ${r.status}):\n${r.stderr}${r.stdout}`);
  const t = JSON.parse(r.stdout);
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { median: median(v), p95: p95(v), n: v.length }]));
}

function answers(guests) {
  return {
    schemaVersion: 1,
    useCase: 'virtualization',
    guests: Array.from({ length: guests }, (_, i) => {
      const name = `g${String(i).padStart(4, '0')}`;
      return { name, vcpus: 1, memoryMiB: 512, disks: [{ path: `/srv/qemu/${name}/disk.qcow2`, format: 'qcow2' }] };
    }),
  };
}

function generate(scratch) {
  const one = join(scratch, 'one.json');
  const many = join(scratch, 'many.json');
  writeFileSync(one, JSON.stringify(answers(1)));
  writeFileSync(many, JSON.stringify(answers(1000)));
  // Every run writes a new directory and all are removed at the end: removing 3,000 files just before a run
  // would have the file system busy with that removal while the run is timed.
  const t = { one: [], many: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const [key, file] of [
      ['one', one],
      ['many', many],
    ])
      t[key].push(timed(['generate', '--answers', file, '--out', join(scratch, `out-${key}-${i}`)], scratch));
  }
  return { one: median(t.one), many: median(t.many) };
}

function verify(scratch) {
  const bundle = join(scratch, 'multi-tenant');
  timed(['generate', '--preset', 'multi-tenant', '--out', bundle], scratch);
  const r = spawnSync(process.execPath, [BIN, 'verify', bundle], { encoding: 'utf8' });
  if (/^\s+skip\s/m.test(r.stdout))
    throw new Error(`verify skipped a check: a real tool is missing (bash scripts/install-test-deps.sh)\n${r.stdout}`);
  const t = [];
  for (let i = 0; i < RUNS; i++) t.push(timed(['verify', bundle], scratch));
  return median(t);
}

// Signing and checking a 100-guest bundle (310 files) with a throwaway ed25519 key made here: `sign` as the operator
// runs it, and the signature check as apply runs it — the time `apply --dry-run --signers` takes beyond the same
// `apply --dry-run` without it, interleaved run by run, so the check is timed on exactly what it adds.
function signing(scratch) {
  const bundle = join(scratch, 'signed');
  const file = join(scratch, 'signed.json');
  writeFileSync(file, JSON.stringify(answers(100)));
  timed(['generate', '--answers', file, '--out', bundle], scratch);
  const key = join(scratch, 'bench-key');
  const kg = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench', '-f', key], { encoding: 'utf8' });
  if (kg.status !== 0) throw new Error(`ssh-keygen could not make a key (Debian package openssh-client): ${kg.stderr}`);
  const signers = join(scratch, 'allowed_signers');
  writeFileSync(signers, `bench@example.com ${readFileSync(`${key}.pub`, 'utf8')}`);
  const root = mkdtempSync(join(scratch, 'root-'));
  const t = { sign: [], with: [], without: [] };
  for (let i = 0; i < RUNS; i++) {
    t.sign.push(timed(['sign', bundle, '--key', key], scratch));
    t.with.push(timed(['apply', bundle, '--root', root, '--dry-run', '--signers', signers], scratch));
    t.without.push(timed(['apply', bundle, '--root', root, '--dry-run'], scratch));
  }
  const sign = median(t.sign);
  const check = Math.max(0, median(t.with) - median(t.without));
  return { sign, check, total: sign + check };
}

/** `import libvirt` of every domain in libvirt's own test corpus (../shared/corpus/libvirt), in one run. Some of
 * them are refused, so the run exits 2; any other status, or no summary line, stops the benchmark. */
function importCorpus(scratch) {
  const dir = join(REPO, '..', 'shared', 'corpus', 'libvirt');
  if (!existsSync(dir)) throw new Error(`the libvirt corpus is missing: ${dir}`);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.xml'))
    .map((f) => join(dir, f));
  const t = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [BIN, 'import', 'libvirt', ...files], {
      cwd: scratch,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (![0, 1, 2].includes(r.status) || !/^\d+ guests: /m.test(r.stdout))
      throw new Error(`qemu-harden import libvirt exited ${r.status}:\n${r.stdout.slice(-500)}${r.stderr}`);
  }
  return { files: files.length, ms: median(t) };
}

/** The pid of the init of the namespace `unshare` (pid `ns`) made: its only child. */
function namespaceInit(ns) {
  const parentOf = (p) => {
    try {
      return readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ')[1];
    } catch {
      return undefined;
    }
  };
  return readdirSync('/proc').find((p) => /^\d+$/.test(p) && parentOf(p) === String(ns));
}

/**
 * Run `script` as the init of a private mount+PID namespace until it prints "ready", then time `audit --json`
 * run inside it (median of RUNS), handing each report to `check`. The namespace is killed afterwards.
 */
async function inNamespace(script, what, check) {
  const ns = spawn('unshare', ['--mount', '--pid', '--fork', '--mount-proc', '--kill-child', 'sh', '-c', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`bench: ${what} did not start within 120 s`)), 120_000);
      ns.stdout.on('data', (d) => String(d).includes('ready') && (clearTimeout(t), resolve()));
      ns.once(
        'exit',
        (code) => (clearTimeout(t), reject(new Error(`bench: the namespace exited (${code}) before ${what} started`))),
      );
    });
    const init = namespaceInit(ns.pid);
    const t = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = process.hrtime.bigint();
      const r = spawnSync('nsenter', ['-t', init, '-m', '-p', process.execPath, BIN, 'audit', '--json'], {
        encoding: 'utf8',
        maxBuffer: 256 * 1024 * 1024,
      });
      t.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (r.status !== 0 && r.status !== 1) throw new Error(`qemu-harden audit exited ${r.status}:\n${r.stderr}`);
      check(JSON.parse(r.stdout));
    }
    return median(t);
  } finally {
    if (ns.exitCode === null) {
      const exited = new Promise((r) => ns.once('exit', r));
      ns.kill('SIGKILL');
      await exited;
    }
  }
}

// 100 real QEMU processes (TCG, -S, stopped with SIGSTOP once started) with the command lines a bundle writes,
// in a private mount+PID namespace, so that `audit` run inside it sees exactly them and nothing else.
async function audit(scratch) {
  const N = 100;
  const lines = [];
  for (let i = 0; i < N; i++) {
    const name = `g${String(i).padStart(3, '0')}`;
    const disk = join(scratch, `${name}.img`);
    writeFileSync(disk, Buffer.alloc(65536));
    lines.push(
      `/usr/bin/qemu-system-x86_64 -name guest=${name},debug-threads=on -nodefaults -no-user-config -S -machine q35 -accel tcg -m 16M ` +
        `-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny -msg timestamp=on ` +
        `-chardev socket,id=qmp,path=${scratch}/${name}.qmp,server=on,wait=off -mon chardev=qmp,mode=control ` +
        `-drive file=${disk},format=raw,if=none,id=disk0,readonly=off -device virtio-blk-pci,drive=disk0,bootindex=1 -display none </dev/null >/dev/null 2>&1 &\npids="$pids $!"`,
    );
  }
  const script = `${lines.join('\n')}\nwhile [ "$(ls ${scratch} | grep -c '\\.qmp$')" -lt ${N} ]; do sleep 0.1; done\nkill -STOP $pids\necho ready\nwait\n`;
  return inNamespace(script, `${N} QEMU processes`, (report) => {
    if (report.processes.length !== N) throw new Error(`audit saw ${report.processes.length} QEMU processes, not ${N}`);
  });
}

// 200 hostile processes of the kinds #20 names, from the stand-in that opens nothing (scripts/fake-qemu.mjs), in
// the same kind of namespace: a -blockdev nested 60,000 deep, FIFOs as qcow2 and format-less disks, a command
// line of 360 KB (past what audit reads), and 2,000 -drive options naming paths that do not exist; meanwhile a
// loop keeps starting stand-ins that exit at once, so processes vanish while audit reads them. Each of the 200
// must be reported.
async function auditHostile(scratch) {
  const N = 200;
  const dir = join(scratch, 'hostile');
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'gone'));
  const fake = join(dir, 'bin', 'qemu-system-x86_64');
  const gone = join(dir, 'gone', 'qemu-system-x86_64');
  writeFakeQemu(fake);
  writeFakeQemu(gone, 'exit');
  writeFileSync(join(dir, 'deep.json'), `{"driver":"raw","file":${'['.repeat(60_000)}${']'.repeat(60_000)}}`);
  writeFileSync(join(dir, 'big'), 'a'.repeat(120_000));
  writeFileSync(
    join(dir, 'many'),
    Array.from({ length: 2000 }, (_, i) => `-drive\nfile=${dir}/none/${i}.img,format=qcow2`).join('\n') + '\n',
  );
  const kinds = [
    (i) => `-name deep${i} -blockdev "$(cat ${dir}/deep.json)"`,
    (i) => `-name fifo${i} -drive file=${dir}/${i}.fifo,format=qcow2 -drive file=${dir}/${i}.fifo`,
    (i) => `-name huge${i} -append "$(cat ${dir}/big)" "$(cat ${dir}/big)" "$(cat ${dir}/big)"`,
    // 2,000 options, one per line of the file, each a word of the command line.
    (i) => `-name many${i} $(cat ${dir}/many)`,
  ];
  const lines = [];
  for (let i = 0; i < N; i++) {
    if (i % kinds.length === 1) lines.push(`mkfifo ${dir}/${i}.fifo`);
    lines.push(`${fake} ${kinds[i % kinds.length](i)} </dev/null >/dev/null 2>&1 &`);
  }
  const script = [
    'set -e',
    ...lines,
    `until [ "$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -c '^${fake}$')" -ge ${N} ]; do sleep 0.1; done`,
    `(while :; do ${gone} -name gone -drive file=${dir}/0.img; done) &`,
    'echo ready',
    'wait',
  ].join('\n');
  return inNamespace(script, `${N} hostile processes`, (report) => {
    const seen = report.processes.filter((p) => p.argv[0] === fake).length;
    if (seen !== N) throw new Error(`audit reported ${seen} of the ${N} hostile processes`);
  });
}

const only = args[0];
if (only !== undefined && only !== 'wizard') {
  console.error(`bench: "${only}" is not a part to run alone; the one there is: wizard`);
  process.exit(2);
}
const scratch = mkdtempSync(join(tmpdir(), 'qh-bench-'));
try {
  const wizardOnly = only === 'wizard';
  const ff = firstFrame(scratch);
  const gen = wizardOnly ? undefined : generate(scratch);
  const ver = wizardOnly ? undefined : verify(scratch);
  const imp = wizardOnly ? undefined : importCorpus(scratch);
  const sig = wizardOnly ? undefined : signing(scratch);
  const keys = keypress(scratch);
  const aud = wizardOnly ? undefined : await audit(scratch);
  const hostile = wizardOnly ? undefined : await auditHostile(scratch);
  const rows = [
    [
      'wizard first frame / node -e ""',
      `${ff.wizard.toFixed(0)} ms / ${ff.node.toFixed(0)} ms = ${(ff.wizard / ff.node).toFixed(2)}x`,
      '<= 2.5x',
      ff.wizard / ff.node <= 2.5,
    ],
    ...(wizardOnly
      ? []
      : [
          ['generate, 1,000 guests', `${gen.many.toFixed(0)} ms`, '<= 1000 ms', gen.many <= 1000],
          [
            'generate, 1,000 guests / 1 guest',
            `${gen.many.toFixed(0)} ms / ${gen.one.toFixed(0)} ms = ${(gen.many / gen.one).toFixed(2)}x`,
            '<= 10x',
            gen.many / gen.one <= 10,
          ],
          ['verify multi-tenant (3 guests)', `${ver.toFixed(0)} ms`, '<= 2000 ms', ver <= 2000],
          [`import libvirt corpus (${imp.files} domains)`, `${imp.ms.toFixed(0)} ms`, '<= 2000 ms', imp.ms <= 2000],
          [
            'sign + check signatures, 100 guests',
            `${sig.sign.toFixed(0)} ms + ${sig.check.toFixed(0)} ms = ${sig.total.toFixed(0)} ms`,
            '<= 1000 ms',
            sig.total <= 1000,
          ],
        ]),
    ...['disks', 'review'].map((step) => [
      `wizard keypress to frame, 64 guests, ${step}`,
      `median ${keys[step].median.toFixed(1)} ms, p95 ${keys[step].p95.toFixed(1)} ms (${keys[step].n} keys)`,
      'p95 <= 50 ms',
      keys[step].p95 <= 50,
    ]),
    ...(wizardOnly
      ? []
      : [
          ['audit, 100 QEMU processes', `${aud.toFixed(0)} ms`, '<= 1000 ms', aud <= 1000],
          ['audit, 200 hostile processes', `${hostile.toFixed(0)} ms`, '<= 2000 ms', hostile <= 2000],
        ]),
  ];
  const head = ['benchmark', `median of ${RUNS}`, 'target', 'result'];
  const table = [head, ...rows.map(([a, b, c, ok]) => [a, b, c, ok ? 'pass' : 'FAIL'])];
  const w = head.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  const text = [line(head), `| ${w.map((n) => '-'.repeat(n)).join(' | ')} |`, ...table.slice(1).map(line)].join('\n');
  console.log(text);
  console.log(`\nwizard's first visible line: ${JSON.stringify(ff.firstLine)}`);
  // A part run alone leaves the documented figures, which are the whole run's, as they are.
  if (WRITE && !only) {
    const doc = readFileSync(WRITE, 'utf8');
    const from = doc.indexOf(BEGIN) + BEGIN.length;
    const to = doc.indexOf(END, from);
    if (to < 0) throw new Error(`${WRITE}: no "${END}" after "${BEGIN}"`);
    // A blank line after the marker, as Prettier keeps Markdown: the written file passes the formatting check.
    const figures = [
      '',
      '',
      `Measured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${machine()}; load average ${LOAD_AT_START.toFixed(1)} when it started.`,
      '',
      text,
      '',
      `The wizard's first visible line: ${JSON.stringify(ff.firstLine)}.`,
      '',
    ].join('\n');
    writeFileSync(WRITE, doc.slice(0, from) + figures + doc.slice(to));
    console.log(`\nwrote the figures to ${WRITE}`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
