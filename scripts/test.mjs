// `npm test`: typecheck, the layering (dependency-cruiser with .dependency-cruiser.cjs), formatting (prettier), lint
// (eslint), build, then every test file, several at a time, the slowest first so the short ones run beside them.
// `npm run test:quick` (`--quick`): the same checks, then only the quick tier, for the edit-test loop. Named files
// (`node scripts/test.mjs test/x.test.ts …`) run just those after the checks.
//
// Each test file runs in a process of its own; its output is printed whole when it ends, so files running side by
// side do not interleave. Each runs in a cgroup of its own, which counts its CPU seconds (its containers and VMs
// included) and shows what it left running. The run ends with each file's wall time and CPU (slowest first), the
// tests that did not run and why, the caches that were built, and the totals, whatever the outcome.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
const phases = [];
/** CPU seconds the build and the checks took (counted only where the test files' CPU is). */
let checkCpu = 0;

/**
 * Every test file, with its wall time in seconds and what keeps it out of the quick tier (null: nothing, it is
 * quick). The times were measured with each file alone on a 2-core machine, the quick ones and those of CORES
 * on a quiet one, the other booting ones while others were loading it (load average 8 to 24), so only their order
 * counts: a run starts the longest first. A file missing here fails the run: a new file declares its tier.
 */
const FILES = {
  'apparmor-vm.test.ts': [232, 'boots VMs (Debian kernel under TCG) shared by the parts in test/vm/'],
  'selinux-vm.test.ts': [242, 'boots a VM (Debian kernel under TCG, SELinux enforcing, on a cached debootstrap root)'],
  'selinux-trixie-vm.test.ts': [
    200,
    'boots a VM (Debian 13’s kernel under TCG, SELinux enforcing, on a cached debootstrap root)',
  ],
  'audit.test.ts': [339, 'boots QEMU in namespaces and a container'],
  'trixie.test.ts': [300, 'boots a Debian 13 container (a debootstrap root)'],
  'ansible.test.ts': [266, 'boots two containers and runs Ansible against them'],
  'trixie-vm.test.ts': [123, 'boots a VM (forky’s kernel under TCG, AppArmor enforcing) on the Debian 13 root'],
  'boot.test.ts': [148, 'boots QEMU'],
  'import.test.ts': [103, 'boots QEMU'],
  'property.test.ts': [77, 'runs 17,000 generated documents, 50 bundles through the real parsers'],
  'isolation-container.test.ts': [77, 'boots a container'],
  'lifecycle.test.ts': [61, 'boots a container'],
  'atomic.test.ts': [50, 'kills generate under strace at 65 points'],
  'selinux-store.test.ts': [30, 'builds SELinux policies with semodule into copies of the policy store'],
  'selinux.test.ts': [3, null],
  'bench.test.ts': [47, 'runs every benchmark'],
  'fresh-clone.test.ts': [44, 'installs from the npm registry into a fresh clone'],
  'tpm-container.test.ts': [70, 'boots a container and OVMF under TCG'],
  'uefi-container.test.ts': [37, 'boots a container and OVMF under TCG'],
  'nspawn.test.ts': [36, 'boots containers'],
  'host-storage.test.ts': [20, 'uses namespaces and loop devices'],
  'secureboot-kernel.test.ts': [20, 'boots OVMF under TCG'],
  'removed-options.test.ts': [20, 'starts Debian 13’s QEMU from its root in a mount namespace'],
  'cli.test.ts': [9, null],
  'signing.test.ts': [9, null],
  'wizard-tty.test.ts': [13, 'drives the built wizard in real terminals (tmux)'],
  'files.test.ts': [13, 'uses namespaces, loop devices and udevadm'],
  'package.test.ts': [12, 'packs and runs the npm package'],
  'audit-helpers.test.ts': [10, 'starts swtpm, passt, virtiofsd and QEMU in namespaces'],
  'windows-state.test.ts': [6, 'runs swtpm and swtpm_setup'],
  'wizard-ink.test.tsx': [12, null],
  'presets.test.ts': [7, null],
  'install.test.ts': [9, null],
  'checks.test.ts': [4, null],
  'backend.test.ts': [3, null],
  'probe.test.ts': [4, null],
  'apply.test.ts': [8, null],
  'backing.test.ts': [3, 'boots QEMU'],
  'generators.test.ts': [2, null],
  'wizard-state.test.ts': [1, null],
  'messages.test.ts': [1, null],
  'model.test.ts': [1, null],
  'audit-acl.test.ts': [1, null],
  'cache.test.ts': [1, null],
  'rules.test.ts': [3, null],
  'targets.test.ts': [3, null],
  'wizard-coverage.test.ts': [2, null],
  'wizard-done.test.ts': [3, null],
};

/**
 * The files that keep cores busy for minutes, with how many (CPU seconds over wall seconds, each alone on a quiet
 * 2-core machine, rounded): together they never ask for more than the machine has (a file that asks for more runs
 * with none of them beside it). The other files run beside them, up to cores + 1 files in all.
 */
const CORES = {
  'apparmor-vm.test.ts': 2,
  'selinux-vm.test.ts': 1,
  'selinux-trixie-vm.test.ts': 1,
  'ansible.test.ts': 1,
  'trixie-vm.test.ts': 1,
};

/** Test-local modules that only a proof booting a container, a VM or a guest imports. */
const BOOTING_MODULES = ['./container.js', './vmboot.js', './vmshare.js', './bootdisk.js'];

/** The line prefix by which a test says it is building a cache (test/helpers.ts, cacheNotice). */
const CACHE_NOTICE = '[qemu-harden test cache]';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const named = args.filter((a) => a !== '--quick').map((f) => f.replace(/^test\//, ''));
const present = readdirSync(join(repo, 'test')).filter((f) => /\.test\.tsx?$/.test(f));
const undeclared = present.filter((f) => !(f in FILES));
if (undeclared.length) {
  console.error(
    `No tier declared for ${undeclared.map((f) => `test/${f}`).join(', ')}: add each to FILES in scripts/test.mjs, ` +
      'with what keeps it out of the quick tier (null if nothing does).',
  );
  process.exit(2);
}
const unknown = named.filter((f) => !present.includes(f));
if (unknown.length) {
  console.error(`No such test file: ${unknown.map((f) => `test/${f}`).join(', ')}`);
  process.exit(2);
}
const files = (named.length ? named : present.filter((f) => !quick || FILES[f][1] === null)).sort(
  (a, b) => FILES[b][0] - FILES[a][0] || a.localeCompare(b),
);

function seconds(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * A file's digest as git would see it: a symbolic link by where it points (one to a directory, such as a worktree's
 * link to the main clone's .cache, is not read through), a file by its content; '' for what is not there.
 */
function digest(path) {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return '';
  const h = createHash('sha256');
  if (st.isSymbolicLink()) return h.update(`link\0${readlinkSync(path)}`).digest('hex');
  return st.isFile() ? h.update(readFileSync(path)).digest('hex') : '';
}

/** Each file of the tree (tracked, or new and not ignored) with its content's digest; null where git cannot list it. */
let tree;
function treeDigests() {
  if (tree !== undefined) return tree;
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: repo,
    encoding: 'utf8',
  });
  tree =
    listed.status === 0
      ? new Map(
          listed.stdout
            .split('\0')
            .filter(Boolean)
            .map((f) => [f, digest(join(repo, f))]),
        )
      : null;
  return tree;
}

/**
 * What a check reads, as one hash: the checker's command line, Node.js's version, and the path and content of every
 * file of the tree that `reads` accepts, package-lock.json always among them (it pins the checker and every type it
 * reads). null where git cannot list the tree.
 */
function inputsHash(cmdArgs, reads) {
  const files = treeDigests();
  if (!files) return null;
  const hash = createHash('sha256').update(JSON.stringify([process.version, cmdArgs.slice(1)]));
  for (const f of [...files.keys()].filter((x) => reads(x) || x === 'package-lock.json').sort())
    hash.update(`\0${f}\0${files.get(f)}`);
  return hash.digest('hex');
}

/**
 * Runs the checks side by side, each one's output printed whole when it ends; resolves with the first failure's
 * status. A check whose inputs hash as they did when it last passed here (`.cache/checks/NAME`) is not run again:
 * it would read the same files and pass. A fresh clone has no such record, so CI runs every check.
 */
async function checks(list) {
  const statuses = await Promise.all(
    list.map(
      ([name, cmd, cmdArgs, reads]) =>
        new Promise((resolve) => {
          const t = Date.now();
          const record = join(repo, '.cache', 'checks', name);
          const inputs = reads ? inputsHash(cmdArgs, reads) : null;
          if (inputs && existsSync(record) && readFileSync(record, 'utf8') === inputs) {
            phases.push(`${name} as at its last pass`);
            resolve(0);
            return;
          }
          const group = fileGroup(`check-${name}`);
          const child = spawnIn(group, cmd, cmdArgs, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
          let output = '';
          child.stdout.on('data', (d) => (output += d));
          child.stderr.on('data', (d) => (output += d));
          child.on('close', (code) => {
            phases.push(`${name} ${seconds(Date.now() - t)}`);
            if (group) checkCpu += cpuSeconds(group);
            if (code === 0 && inputs) {
              mkdirSync(dirname(record), { recursive: true });
              writeFileSync(record, inputs);
            } else rmSync(record, { force: true });
            if (output.trim() || code !== 0)
              process.stdout.write(`\n── ${name}${code === 0 ? '' : ' FAILED'}\n${output}`);
            resolve(code ?? 1);
          });
        }),
    ),
  );
  return statuses.find((x) => x !== 0) ?? 0;
}

/** A quick file may not import what only a booting proof needs; the PATH guard (below) catches the rest at run time. */
function quickImports() {
  const problems = [];
  for (const f of present.filter((x) => FILES[x][1] === null)) {
    const text = readFileSync(join(repo, 'test', f), 'utf8');
    for (const m of BOOTING_MODULES)
      if (text.includes(`from '${m}'`)) problems.push(`test/${f} is in the quick tier but imports ${m}`);
  }
  return problems;
}

/**
 * For the quick tier: a directory first on PATH whose systemd-nspawn, unshare and nsenter refuse to run, and
 * whose qemu-system-x86_64 runs only what boots nothing (--version, help, -machine none, a machine held stopped
 * with -S). A refusal is logged with the test file that asked, and fails the run even if the test expected a
 * failure.
 */
function quickGuard(dir) {
  const log = join(dir, 'refused.log');
  const who = `f=; p=$$; while [ "$p" -gt 1 ] 2>/dev/null; do f=$(tr '\\0' '\\n' < /proc/$p/cmdline 2>/dev/null | grep -m1 -E '\\.test\\.tsx?$'); [ -n "$f" ] && break; p=$(awk '/^PPid:/ {print $2}' /proc/$p/status 2>/dev/null); done`;
  const refuse = (what) =>
    `${who}\necho "\${f:-a test}: ${what}: $0 $*" >> '${log}'\necho "$0: the quick tier boots no QEMU, container or VM; declare this file's tier in scripts/test.mjs" >&2\nexit 97\n`;
  for (const tool of ['systemd-nspawn', 'unshare', 'nsenter'])
    writeFileSync(join(dir, tool), `#!/bin/sh\n${refuse('starts namespaces or a container')}`, { mode: 0o755 });
  const real = spawnSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).stdout.trim();
  if (real)
    writeFileSync(
      join(dir, 'qemu-system-x86_64'),
      `#!/bin/sh
prev=
for a in "$@"; do
  case "$a" in --version|-version|-S|help) exec '${real}' "$@";; esac
  case "$prev $a" in '-machine none'|'-machine none,'*|'-M none'|'-machine help'|'-cpu help'|'-device help') exec '${real}' "$@";; esac
  prev=$a
done
${refuse('boots QEMU')}`,
      { mode: 0o755 },
    );
  return log;
}

/**
 * Each test file runs in a cgroup of its own, in the hierarchy that counts CPU time (cgroup v1's cpuacct, or
 * cgroup v2), so that its CPU seconds count everything it started (QEMU, containers, VMs, Ansible) and so that a
 * process it left running when it ended is found. Without such a hierarchy (not root, none mounted) the files run
 * all the same, and the summary says their CPU was not counted and why.
 */
let accounting = { why: 'the run ended before any test file' };

function openAccounting() {
  const v1 = '/sys/fs/cgroup/cpuacct';
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
  for (const [base, file] of [
    [v1, 'cpuacct.usage'],
    [v2, 'cpu.stat'],
  ]) {
    if (!existsSync(join(base, 'cgroup.procs'))) continue;
    // A run stopped by a signal leaves its groups behind: empty ones, as its files' processes died with it.
    for (const stale of readdirSync(base).filter((d) => /^qemu-harden-test-\d+$/.test(d)))
      if (!existsSync(`/proc/${stale.slice(17)}`)) removeGroups(join(base, stale));
    const dir = join(base, `qemu-harden-test-${process.pid}`);
    try {
      mkdirSync(dir);
    } catch (e) {
      return { why: `no cgroup could be made in ${base}: ${e.code ?? e.message}` };
    }
    return { dir, file };
  }
  return { why: 'no cgroup hierarchy that counts CPU (cpuacct or cgroup v2) is mounted' };
}

/** A cgroup for one file, or null when CPU is not counted. */
function fileGroup(name) {
  if (!accounting.dir) return null;
  const dir = join(accounting.dir, name.replace(/[^A-Za-z0-9.-]/g, '_'));
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Starts cmd in the cgroup (when there is one): a shell joins it and then becomes cmd, so nothing cmd starts runs
 * outside it.
 */
function spawnIn(group, cmd, args, options) {
  return group
    ? spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', group, cmd, ...args], options)
    : spawn(cmd, args, options);
}

/** CPU seconds of everything that ran in the cgroup. */
function cpuSeconds(dir) {
  const text = readFileSync(join(dir, accounting.file), 'utf8');
  if (accounting.file === 'cpuacct.usage') return Number(text) / 1e9;
  return Number(/^usage_usec (\d+)$/m.exec(text)[1]) / 1e6;
}

function groupProcs(dir) {
  return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

/**
 * The processes a file left running once its own process ended: each with its command line, after giving them 10
 * seconds to end by themselves (a helper that exits when its parent's pipe closes). What remains is killed, so it
 * does not run on into the next file or past the run.
 */
async function leftRunning(dir) {
  for (let i = 0; i < 40 && groupProcs(dir).length; i++) await new Promise((r) => setTimeout(r, 250));
  return groupProcs(dir).map((pid) => {
    let cmd;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      process.kill(pid, 'SIGKILL');
    } catch {
      cmd ??= '(gone)';
    }
    return `${pid} ${cmd.slice(0, 200)}`;
  });
}

function removeGroups(dir) {
  for (const d of readdirSync(dir, { withFileTypes: true }))
    if (d.isDirectory())
      try {
        rmdirSync(join(dir, d.name));
      } catch {
        // A process that could not be killed holds it; the summary named it.
      }
  try {
    rmdirSync(dir);
  } catch {
    // As above.
  }
}

/** Runs one test file in its own process; resolves with its output, wall time, exit status and test events. */
function runFile(file, env, scratch) {
  const events = join(scratch, `${file}.jsonl`);
  const t = Date.now();
  const group = fileGroup(file);
  const command = [
    process.execPath,
    ...(FILES[file]?.[1] === null ? ['--max-opt=2'] : []),
    '--import',
    'tsx',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    `--test-reporter=${join(repo, 'scripts/test-events.mjs')}`,
    `--test-reporter-destination=${events}`,
    join('test', file),
  ];
  const child = spawnIn(group, command[0], command.slice(1), { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const caches = [];
  const take = (chunk) => {
    const text = chunk.toString();
    output += text;
    for (const line of text.split('\n'))
      if (line.startsWith(CACHE_NOTICE)) {
        caches.push(`test/${file}: ${line.slice(CACHE_NOTICE.length).trim()}`);
        console.log(`${line} (test/${file})`);
      }
  };
  child.stdout.on('data', take);
  child.stderr.on('data', take);
  return new Promise((resolve) => {
    child.on('close', async (code, signal) => {
      const ms = Date.now() - t;
      const left = group ? await leftRunning(group) : [];
      const cpu = group ? cpuSeconds(group) : null;
      const tests = existsSync(events)
        ? readFileSync(events, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l))
        : [];
      if (left.length)
        output += `\n${file} left ${left.length} process(es) running when it ended (now killed):\n${left.map((l) => `  ${l}`).join('\n')}\n`;
      resolve({
        file,
        ms,
        cpu,
        left,
        ok: code === 0 && left.length === 0,
        status: left.length && code === 0 ? 'processes left running' : (signal ?? code),
        output,
        tests,
        caches,
      });
    });
  });
}

/**
 * Runs the files, the longest first, up to `slots` at a time, and the files of CORES only while the cores they keep
 * busy fit in `cores` (one that asks for more starts when none of them runs). A file that must wait lets a later one
 * start first. A TCG guest that waits its turn for a core does not only take longer: the same work cost it up to
 * two thirds more CPU seconds (docs/testing.md, "The suite's budget").
 */
function runFiles(list, slots, cores, env) {
  const scratch = mkdtempSync(join(tmpdir(), 'qh-test-run-'));
  const queue = [...list];
  const done = [];
  let busy = 0;
  let running = 0;
  return new Promise((resolve) => {
    const startWhatFits = () => {
      for (let i = 0; i < queue.length && running < slots;) {
        const f = queue[i];
        const need = CORES[f] ?? 0;
        if (need > 0 && busy > 0 && busy + need > cores) {
          i++;
          continue;
        }
        queue.splice(i, 1);
        busy += need;
        running++;
        if (list.length > 1) console.log(`… test/${f} started`);
        void runFile(f, env, scratch).then((r) => {
          process.stdout.write(
            `\n── test/${f} (${[seconds(r.ms), cpuText(r.cpu), r.ok ? 'passed' : `FAILED, ${statusText(r)}`].filter(Boolean).join(', ')})\n${r.output}`,
          );
          done.push(r);
          busy -= need;
          running--;
          if (queue.length) startWhatFits();
          else if (running === 0) {
            rmSync(scratch, { recursive: true, force: true });
            resolve(done);
          }
        });
      }
    };
    if (queue.length) startWhatFits();
    else resolve(done);
  });
}

/** A test is "not run" only with a reason that says so; any other skip, and any todo, is a test that passed silently. */
function silentPasses(results) {
  const out = [];
  for (const r of results)
    for (const t of r.tests) {
      if (t.todo !== undefined) out.push(`test/${r.file} › ${t.name}: marked todo (${t.todo})`);
      else if (t.skip !== undefined && !t.skip.startsWith('not run: ') && !t.skip.includes('does not match pattern'))
        out.push(`test/${r.file} › ${t.name}: skipped without "not run: <reason>" (${t.skip})`);
    }
  return out;
}

/**
 * A failed test's message as the summary prints it, indented under its name: whole when short, else its first and
 * last lines (an assertion that carries a program's output ends with where the program stopped) and, between them,
 * the first lines that speak of an error or a failure; each line cut to 240 characters. A run's record keeps the
 * summary, so the summary alone must say why.
 */
function failureLines(message) {
  if (!message) return [];
  const all = message.trimEnd().split('\n');
  const [head, tail, marked] = [6, 24, 12];
  let kept = all;
  if (all.length > head + tail + 1) {
    const middle = all.slice(head, -tail).filter((l) => /\b(fatal|failed|error)\b/i.test(l));
    kept = [
      ...all.slice(0, head),
      `… ${all.length - head - tail} lines, ${Math.min(middle.length, marked)} of them shown …`,
      ...middle.slice(0, marked),
      ...all.slice(-tail),
    ];
  }
  return kept.map((l) => `      ${l.length > 240 ? `${l.slice(0, 240)}…` : l}`.trimEnd());
}

/** Why a file failed, as the summary prints it: its exit status or signal, or what it left running. */
const statusText = (r) => (typeof r.status === 'number' ? `exit ${r.status}` : r.status);

/** CPU seconds as the summary prints them. */
const cpuText = (cpu) => (cpu === null ? '' : `${Math.round(cpu)} CPU s`);

function summary(results, testsMs) {
  const counted = accounting.dir !== undefined;
  const lines = [
    '',
    `Per-file wall times, slowest first (${concurrency} at a time, on ${cores} cores), ` +
      (counted
        ? 'and the CPU seconds of all each file ran (its processes, containers and VMs):'
        : `CPU not counted (${accounting.why}):`),
  ];
  for (const r of [...results].sort((a, b) => b.ms - a.ms))
    lines.push(
      `  ${seconds(r.ms).padStart(7)}  ${cpuText(r.cpu).padStart(10)}  test/${r.file}${r.ok ? '' : `  FAILED (${statusText(r)})`}`,
    );
  const sum = results.reduce((s, r) => s + r.ms, 0);
  const cpu = results.reduce((s, r) => s + (r.cpu ?? 0), 0);
  lines.push(
    `  ${seconds(testsMs).padStart(7)}  ${(counted ? cpuText(cpu) : '').padStart(10)}  all test files (${seconds(sum)} of test-file time in all)`,
  );
  if (counted)
    lines.push(
      `  ${cpuText(cpu + checkCpu)} with the build and the checks: on ${cores} cores no run is shorter than ${seconds(((cpu + checkCpu) / cores) * 1000)}`,
    );
  const notRun = results.flatMap((r) =>
    r.tests
      .filter((t) => t.skip?.startsWith('not run: '))
      .map((t) => `  test/${r.file} › ${t.name}: ${t.skip.slice(9)}`),
  );
  lines.push('', notRun.length ? `Not run (${notRun.length}), with the reason:` : 'Not run: none.', ...notRun);
  const caches = results.flatMap((r) => r.caches);
  if (caches.length)
    lines.push('', 'Caches built in this run (the next run reuses them):', ...caches.map((c) => `  ${c}`));
  const failed = results.flatMap((r) =>
    r.ok
      ? []
      : [
          `  test/${r.file} (${statusText(r)})`,
          ...r.left.map((l) => `    left running: ${l}`),
          ...r.tests.filter((t) => !t.passed && !t.suite).flatMap((t) => [`    ✖ ${t.name}`, ...failureLines(t.error)]),
        ],
  );
  if (failed.length) lines.push('', 'Failed:', ...failed);
  console.log(lines.join('\n'));
}

const cores = Number(process.env.QEMU_HARDEN_TEST_CORES) || availableParallelism();
const concurrency = Number(process.env.QEMU_HARDEN_TEST_CONCURRENCY) || Math.max(2, cores + 1);
let status = 0;
const problems = quickImports();
if (problems.length) {
  console.error(problems.join('\n'));
  status = 1;
}
const node = (name, script, ...rest) => [name, process.execPath, [join(repo, script), ...rest]];
const code = (f) => /\.(ts|tsx|mts|cts|js|mjs|cjs|json)$/.test(f);
const layers = (f) =>
  /^(src|steps)\//.test(f) || ['.dependency-cruiser.cjs', 'tsconfig.json', 'package.json'].includes(f);
// Each checker keeps its own cache in .cache/, keyed by the files' contents (dependency-cruiser's also by its options,
// eslint's and tsc's also by their configuration), so a run rechecks only what changed since the last; a fresh
// clone, as CI has, checks everything. Each also names the files it reads (code: sources, scripts, configuration and
// JSON; prettier: every file), and is not started at all while those are as they were at its last pass (checks()):
// a checker's start (TypeScript's compiler, loaded twice) costs more than its cached check.
const checkList = [
  [
    ...node(
      'typecheck',
      'node_modules/typescript/bin/tsc',
      '--noEmit',
      '--incremental',
      '--tsBuildInfoFile',
      '.cache/tsc/tsbuildinfo',
    ),
    code,
  ],
  [
    ...node(
      'layering',
      'node_modules/dependency-cruiser/bin/dependency-cruise.mjs',
      'src',
      'steps',
      '--output-type',
      'err',
      '--cache',
      '.cache/depcruise',
    ),
    layers,
  ],
  [
    ...node(
      'formatting',
      'node_modules/prettier/bin/prettier.cjs',
      '--check',
      '--log-level=warn',
      '--cache',
      '--cache-location',
      '.cache/prettier/cache',
      '.',
    ),
    () => true,
  ],
  [
    ...node(
      'lint',
      'node_modules/eslint/bin/eslint.js',
      '--cache',
      '--cache-strategy',
      'content',
      '--cache-location',
      '.cache/eslint/',
      '.',
    ),
    code,
  ],
];
accounting = openAccounting();
if (status === 0) status = await checks([node('build', 'scripts/build.mjs')]);
// The full run starts no test before the checks pass. The quick tier runs them beside the test files: on two cores
// the checks' CPU would otherwise be seconds in which no test runs.
let checking = Promise.resolve(0);
if (status === 0 && quick) checking = checks(checkList);
else if (status === 0) status = await checks(checkList);
if (status === 0) {
  const env = { ...process.env, FORCE_COLOR: '0' };
  let guardDir;
  let refusedLog;
  if (quick && !named.length) {
    guardDir = mkdtempSync(join(tmpdir(), 'qh-quick-guard-'));
    refusedLog = quickGuard(guardDir);
    env.PATH = `${guardDir}:${env.PATH}`;
  }
  const t = Date.now();
  const results = await runFiles(files, concurrency, cores, env);
  const testsMs = Date.now() - t;
  phases.push(`${quick && !named.length ? 'quick tier' : 'tests'} (${files.length} files) ${seconds(testsMs)}`);
  summary(results, testsMs);
  if (results.some((r) => !r.ok)) status = 1;
  const silent = silentPasses(results);
  if (silent.length) {
    console.log(
      [
        '',
        'Tests that passed without running (give the reason as "not run: …", or run them):',
        ...silent.map((s) => `  ${s}`),
      ].join('\n'),
    );
    status = 1;
  }
  if (refusedLog && existsSync(refusedLog)) {
    console.log(
      [
        '',
        'Quick-tier files that tried to boot something:',
        ...readFileSync(refusedLog, 'utf8')
          .trim()
          .split('\n')
          .map((l) => `  ${l}`),
      ].join('\n'),
    );
    status = 1;
  }
  if (guardDir) rmSync(guardDir, { recursive: true, force: true });
}
status ||= await checking;
if (accounting.dir) removeGroups(accounting.dir);
console.log(
  `\nsuite wall time: ${seconds(Date.now() - started)} (${phases.join(', ')})${status === 0 ? '' : ' — FAILED'}`,
);
process.exit(status);
