import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXIT, internalErrorMessage, main } from '../src/cli.js';
import { DEBUG_EXIT_DEVICE, DEBUG_EXIT_STATUS, writeBootDisk } from './bootdisk.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(REPO, 'dist', 'qemu-harden.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run a command as the binary does (src/bin.ts): main() with the arguments and the same terminal, one that is not a
 * terminal and has no one to answer a question. It runs in this process, one command at a time, with the working
 * directory, the environment and the script path (`process.argv[1]`, from which the commands it prints are written)
 * set as the binary's own process would have them, and all three put back after. A Node.js process per command
 * cost the quick tier more CPU than the commands themselves. Tests of what only a process of its own shows (the
 * modules it loads, signals, its exit) run the binary with cliProcess() or spawn BIN themselves.
 */
export function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const result = inProcess.then(() => cliHere(args, opts));
  inProcess = result.catch(() => undefined);
  return result;
}

let inProcess: Promise<unknown> = Promise.resolve();

/** How long a command may take before its test fails: it only ends a run that hangs. */
const CLI_DEADLINE_MS = 300_000;

class Hung extends Error {}

async function cliHere(args: string[], opts: { cwd?: string; env?: Record<string, string> }): Promise<CliResult> {
  const cwd = process.cwd();
  const script = process.argv[1];
  const env = { ...process.env };
  let stdout = '';
  let stderr = '';
  let timer: NodeJS.Timeout | undefined;
  try {
    process.chdir(opts.cwd ?? REPO);
    process.argv[1] = BIN;
    Object.assign(process.env, opts.env);
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Hung(`qemu-harden ${args.join(' ')} did not finish in ${CLI_DEADLINE_MS / 1000} s`)),
        CLI_DEADLINE_MS,
      );
    });
    const io = {
      out: (s: string) => void (stdout += s),
      err: (s: string) => void (stderr += s),
      isTTY: false,
      isRoot: process.getuid?.() === 0,
    };
    let code: number;
    try {
      code = await Promise.race([main(args, io), deadline]);
    } catch (e) {
      if (e instanceof Hung) throw e;
      stderr += internalErrorMessage(e, args);
      code = EXIT.internal;
    }
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
    process.chdir(cwd);
    process.argv[1] = script!;
    for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
    Object.assign(process.env, env);
  }
}

/** Run the built binary in a process of its own, as a user would, without a terminal. The deadline only ends a run
 * that hangs. */
export function cliProcess(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: CLI_DEADLINE_MS,
  });
  return {
    code: r.status ?? -1,
    stdout: r.stdout,
    stderr: r.error ? `${r.stderr}\n${r.error.message}` : r.stderr,
  };
}

/** Writes answers to dir/answers.json and generates its bundle into dir/bundle, which it returns; fails unless generate exits 0. */
export async function generateBundle(dir: string, answers: unknown): Promise<string> {
  const answersFile = join(dir, 'answers.json');
  writeFileSync(answersFile, JSON.stringify(answers));
  const bundle = join(dir, 'bundle');
  const gen = await cli(['generate', '--answers', answersFile, '--out', bundle]);
  assert.equal(gen.code, 0, gen.stderr);
  return bundle;
}

/**
 * Directories removed when the test file's process exits. That is after every `after` hook has run, so a
 * directory outlives what used it: node:test runs a test's or suite's `after` hooks in the order they were
 * registered, and a directory made first would otherwise go while the container or QEMU that uses it still runs.
 */
const madeDirs: string[] = [];
process.on('exit', () => {
  for (const path of madeDirs.reverse()) rmSync(path, { recursive: true, force: true });
});

/** A temporary directory, removed when the test file's process exits (`t` names the test or suite it is for). */
export function tempDir(_t: { after(fn: () => void): void }, prefix = 'qh-test-'): string {
  const path = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.push(path);
  return path;
}

/**
 * A temporary directory for guest files (disk images, kernels) that answers may name: not under /tmp, /var/tmp or
 * /home, which every guest unit hides from QEMU (PrivateTmp=, ProtectHome=) and the schema therefore refuses.
 */
export function guestFilesDir(_t: { after(fn: () => void): void }, prefix = 'qh-test-'): string {
  const path = mkdtempSync(join('/var/lib', prefix));
  madeDirs.push(path);
  return path;
}

/**
 * Polls `check` until it returns something other than false, undefined or null, and returns that; fails naming
 * `what` (and what `detail` says then) once `timeoutMs` have passed. The default is generous: a wait ends as soon
 * as its thing happens, so only a failing run waits it out, and a 2-core machine at load 8 is slow.
 */
export async function waitUntil<T>(
  what: string,
  check: () => T | false | undefined | null | Promise<T | false | undefined | null>,
  opts: { timeoutMs?: number; everyMs?: number; detail?: () => string } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await check();
    if (r !== false && r !== undefined && r !== null) return r;
    if (Date.now() > until)
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting for ${what}${opts.detail ? `\n${opts.detail()}` : ''}`,
      );
    await new Promise((res) => setTimeout(res, opts.everyMs ?? 250));
  }
}

/**
 * SIGKILL to a child (to its whole process group when it leads one: spawned with `detached`), resolved once it
 * has exited, so what it held (image locks, ports, files) is free when the next step starts.
 */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
  await exited;
}

/** The line prefix by which a test says it is building a cache; scripts/test.mjs shows such lines as they come. */
export const CACHE_NOTICE = '[qemu-harden test cache]';

/** Says, on the test's standard error, that a cache is being built: why this run takes minutes longer. */
export function cacheNotice(text: string): void {
  process.stderr.write(`${CACHE_NOTICE} ${text}\n`);
}

/** Fails the test with the Debian package to install when a required program is missing. */
export function requireTool(name: string, pkg: string): string {
  try {
    return (
      execFileSync('sh', ['-c', `command -v ${name} || ls /usr/sbin/${name} /sbin/${name} 2>/dev/null | head -1`], {
        encoding: 'utf8',
      }).trim() || fail(name, pkg)
    );
  } catch {
    return fail(name, pkg);
  }
}

function fail(name: string, pkg: string): never {
  throw new Error(
    `${name} is required for this test and was not found: install the Debian package ${pkg} (bash scripts/install-test-deps.sh)`,
  );
}

/** The switch that makes the suite behave as on a machine without KVM, even where /dev/kvm works. */
export const NO_KVM_SWITCH = 'QEMU_HARDEN_TEST_NO_KVM';

let kvmAnswer: { works: boolean; why: string } | undefined;

/**
 * Whether KVM really runs a guest on this machine: /dev/kvm must exist and a one-sector guest must boot with
 * `-accel kvm` (a /dev/kvm that opens is not enough: nested setups can refuse to run a vCPU). Asked once per
 * test process. `why` says, for the tests that cannot run, what is missing.
 */
export function kvm(): { works: boolean; why: string } {
  if (kvmAnswer) return kvmAnswer;
  if (process.env[NO_KVM_SWITCH] === '1')
    kvmAnswer = { works: false, why: `${NO_KVM_SWITCH}=1 asks for the machine-without-KVM path` };
  else if (!existsSync('/dev/kvm')) kvmAnswer = { works: false, why: 'this machine has no /dev/kvm' };
  else {
    const dir = mkdtempSync(join(tmpdir(), 'qh-kvm-'));
    try {
      const disk = writeBootDisk(join(dir, 'boot.img'));
      const r = spawnSync(
        'qemu-system-x86_64',
        [
          '-accel',
          'kvm',
          '-cpu',
          'host,-arch-capabilities',
          '-m',
          '16',
          '-nodefaults',
          '-display',
          'none',
          '-drive',
          `file=${disk},format=raw`,
          '-device',
          DEBUG_EXIT_DEVICE,
        ],
        { encoding: 'utf8', timeout: 300_000 },
      );
      // A check that timed out proves nothing either way: KVM that works but is slow to answer on a loaded
      // machine must not turn the KVM proofs into "not run".
      if (r.error)
        throw new Error(`the KVM check (a one-sector guest under -accel kvm) did not finish: ${r.error.message}`);
      kvmAnswer =
        r.status === DEBUG_EXIT_STATUS
          ? { works: true, why: '' }
          : {
              works: false,
              why: `/dev/kvm exists but QEMU cannot run a guest with it (exit ${r.status}: ${(r.stderr ?? '').trim().split('\n')[0] ?? ''})`,
            };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return kvmAnswer;
}
