// SIGKILL aimed at one system call of a program, by the file it touches. strace without -f follows the main
// thread alone, and `-P PATH` restricts tracing, and so the counting of `--inject=…:when=N`, to the calls that
// touch PATH: the N-th write to a bundle file is the same call in every run, whatever libuv's and V8's wake-ups
// (writes to pipes and eventfds, whose number depends on timing) do around it. A count over all the calls of a
// system call is not: the wake-ups shift it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { requireTool } from './helpers.js';

/** One traced call: its system call, the files it touches as strace's -P sees them, and strace's line. */
export interface Call {
  syscall: string;
  paths: string[];
  line: string;
}

/** Where a kill is aimed: the nth call of syscall that touches path, counted from the program's start. */
export interface Aim {
  syscall: string;
  path: string;
  nth: number;
}

export interface Traced {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  calls: Call[];
}

export interface RunOptions {
  /** Where strace writes its log; read back into `calls`. */
  log: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** System calls whose arguments name files by path: every quoted argument of theirs is a path. */
const BY_PATH = new Set([
  'open',
  'openat',
  'creat',
  'mkdir',
  'mkdirat',
  'rename',
  'renameat',
  'renameat2',
  'unlink',
  'unlinkat',
  'rmdir',
  'link',
  'linkat',
  'symlink',
  'symlinkat',
  'chmod',
  'fchmodat',
  'chown',
  'fchownat',
  'truncate',
]);

/** The paths of a call that `strace -P` matches it by: rename(2) and link(2) by their first alone (strace 6.1). */
const matchedBy = (c: Call) => (c.syscall === 'rename' || c.syscall === 'link' ? c.paths.slice(0, 1) : c.paths);

/** The files a call touches, read from a line strace wrote with -y: path arguments, or the file of its descriptor. */
function pathsOf(syscall: string, line: string): string[] {
  const args = line.slice(syscall.length + 1).replace(/\) += .*$/, '');
  if (BY_PATH.has(syscall)) return [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));
  const fd = /^\d+<([^>]*)>/.exec(args)?.[1];
  return fd?.startsWith('/') ? [fd] : [];
}

function readCalls(log: string): Call[] {
  const calls: Call[] = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const syscall = /^([a-z0-9_]+)\(/.exec(line)?.[1];
    if (syscall) calls.push({ syscall, paths: pathsOf(syscall, line), line });
  }
  return calls;
}

function strace(args: string[], argv: string[], opts: RunOptions): Traced {
  const r = spawnSync(requireTool('strace', 'strace'), ['-qq', '-y', '-o', opts.log, ...args, '--', ...argv], {
    cwd: opts.cwd,
    env: opts.env,
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(r.error, undefined, `strace ${argv.join(' ')}: ${r.error?.message}`);
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, calls: readCalls(opts.log) };
}

/**
 * Runs argv under strace, recording its main thread's calls of `syscalls` in order, each with the files it touches;
 * with `paths`, only the calls that touch one of them.
 */
export function traceCalls(argv: string[], syscalls: string[], opts: RunOptions & { paths?: string[] }): Traced {
  return strace([...(opts.paths ?? []).flatMap((p) => ['-P', p]), '-e', `trace=${syscalls.join(',')}`], argv, opts);
}

/**
 * The aim at calls[i] of a full trace (traceCalls, with calls[i]'s system call among those traced): of the files
 * strace -P matches it by, the one fewest earlier calls of the same system call were matched by, and how many
 * calls it is counting calls[i] itself. A call that touches no file cannot be aimed at this way.
 */
export function aimAt(calls: Call[], i: number): Aim {
  const target = calls[i]!;
  const paths = matchedBy(target);
  assert.ok(paths.length > 0, `a call that touches no file cannot be aimed at by path: ${target.line}`);
  const aims = paths.map((path) => ({
    syscall: target.syscall,
    path,
    nth: calls.slice(0, i + 1).filter((c) => c.syscall === target.syscall && matchedBy(c).includes(path)).length,
  }));
  return aims.reduce((a, b) => (b.nth < a.nth ? b : a));
}

/**
 * Runs argv under strace with SIGKILL injected as the aimed call enters the kernel (it never runs). Fails unless
 * the program died of that SIGKILL exactly at the aim: the last traced call is the aim's nth of its system call
 * touching its path, and it touches the same files as `expected` (the call of the full trace aimed at).
 */
export function killAt(argv: string[], aim: Aim, expected: Call, opts: RunOptions): Traced {
  const r = strace(
    ['-P', aim.path, '-e', `trace=${aim.syscall}`, '-e', `inject=${aim.syscall}:signal=KILL:when=${aim.nth}`],
    argv,
    opts,
  );
  const where = `${expected.line} (aimed at ${aim.syscall} #${aim.nth} of ${aim.path})`;
  assert.equal(r.signal ?? r.status, 'SIGKILL', `the program was killed at ${where}: ${r.stderr}`);
  const seen = r.calls.filter((c) => c.syscall === aim.syscall && matchedBy(c).includes(aim.path));
  assert.equal(
    seen.length,
    aim.nth,
    `the kill came at the aimed call: ${where}; traced:\n${seen.map((c) => c.line).join('\n')}`,
  );
  assert.deepEqual(seen.at(-1)!.paths, expected.paths, `the kill landed on ${seen.at(-1)!.line}, aimed at ${where}`);
  return r;
}
