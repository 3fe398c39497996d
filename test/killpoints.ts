// SIGKILL aimed at one system call of a program, by the file it touches. strace without -f follows the main
// thread alone, and `-P PATH` restricts tracing, and so the counting of `--inject=…:when=N`, to the calls that
// touch PATH: the N-th write to a bundle file is the same call in every run, whatever libuv's and V8's wake-ups
// (writes to pipes and eventfds, whose number depends on timing) do around it. A count over all the calls of a
// system call is not: the wake-ups shift it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { requireTool } from './helpers.js';

/**
 * One traced call: its system call, the files it names (every path argument, and the file behind every descriptor
 * argument), the ones of those that `strace -P` compares with its paths, and strace's line.
 */
export interface Call {
  syscall: string;
  paths: string[];
  matched: string[];
  line: string;
}

/** Where a kill is aimed: the nth call of syscall that `strace -P path` matches, counted from the program's start. */
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

/**
 * Which arguments of a call `strace -P` compares with its paths, one letter per argument (strace's pathtrace.c,
 * pathtrace_match_set): `p` a path, compared as the string the program passed; `f` a descriptor, compared as the
 * file it refers to (`AT_FDCWD` is none); `-` neither. Only these arguments count: rename(2) is matched by its
 * first path alone, so a kill aimed at its destination would never come. The second list holds every argument
 * that names a file, for the landing check.
 */
const ARGS: Record<string, [matched: string, named: string]> = {
  mkdir: ['p', 'p'],
  rename: ['p', 'pp'],
  unlink: ['p', 'p'],
  rmdir: ['p', 'p'],
  link: ['pp', 'pp'],
  openat: ['fp', 'fp'],
  statx: ['fp', 'fp'],
  unlinkat: ['fp', 'fp'],
  renameat: ['fpfp', 'fpfp'],
  renameat2: ['fpfp', 'fpfp'],
  linkat: ['fpfp', 'fpfp'],
  write: ['f', 'f'],
  fsync: ['f', 'f'],
};

/** The arguments of a line strace wrote with -y, split at the commas outside quotes, brackets and `<file>`. */
function splitArgs(args: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let from = 0;
  for (let i = 0; i < args.length; i++) {
    const ch = args[i]!;
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if ('<{[('.includes(ch)) depth++;
    else if ('>}])'.includes(ch)) depth--;
    else if (ch === ',' && depth === 0) {
      out.push(args.slice(from, i).trim());
      from = i + 1;
    }
  }
  out.push(args.slice(from).trim());
  return out;
}

/** The file an argument names as `kind` says: a quoted path, or the file strace showed behind a descriptor. */
function fileOf(kind: string | undefined, arg: string | undefined): string | undefined {
  if (arg === undefined) return undefined;
  if (kind === 'p') return /^"((?:[^"\\]|\\.)*)"/.exec(arg)?.[1]!.replace(/\\(.)/g, '$1');
  if (kind === 'f') return /^\d+<(\/[^>]*)>$/.exec(arg)?.[1];
  return undefined;
}

function readCalls(log: string): Call[] {
  const calls: Call[] = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const syscall = /^([a-z0-9_]+)\(/.exec(line)?.[1];
    if (!syscall) continue;
    const kinds = ARGS[syscall];
    assert.ok(kinds, `killpoints does not know which arguments strace -P matches for ${syscall}: add it to ARGS`);
    const args = splitArgs(line.slice(syscall.length + 1).replace(/\) += .*$/, ''));
    const files = (letters: string) =>
      [...letters].map((k, i) => fileOf(k, args[i])).filter((f): f is string => f !== undefined);
    calls.push({ syscall, matched: files(kinds[0]), paths: files(kinds[1]), line });
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
 * strace -P matches it by, the one fewest earlier calls of the same system call matched, and how many calls it is
 * counting calls[i] itself. A call that strace matches by no file cannot be aimed at this way.
 */
export function aimAt(calls: Call[], i: number): Aim {
  const target = calls[i]!;
  assert.ok(
    target.matched.length > 0,
    `strace -P matches this call by no file, so no kill can aim at it: ${target.line}`,
  );
  const aims = target.matched.map((path) => ({
    syscall: target.syscall,
    path,
    nth: calls.slice(0, i + 1).filter((c) => c.syscall === target.syscall && c.matched.includes(path)).length,
  }));
  return aims.reduce((a, b) => (b.nth < a.nth ? b : a));
}

/**
 * Runs argv under strace with SIGKILL injected as the aimed call enters the kernel (it never runs). Fails unless
 * the program died of that SIGKILL exactly at the aim: the last traced call is the aim's nth of its system call
 * matched by its path, and it names the same files as `expected` (the call of the full trace aimed at).
 */
export function killAt(argv: string[], aim: Aim, expected: Call, opts: RunOptions): Traced {
  const r = strace(
    ['-P', aim.path, '-e', `trace=${aim.syscall}`, '-e', `inject=${aim.syscall}:signal=KILL:when=${aim.nth}`],
    argv,
    opts,
  );
  const where = `${expected.line} (aimed at ${aim.syscall} #${aim.nth} of ${aim.path})`;
  assert.equal(r.signal ?? r.status, 'SIGKILL', `the program was killed at ${where}: ${r.stderr}`);
  const seen = r.calls.filter((c) => c.syscall === aim.syscall && c.matched.includes(aim.path));
  assert.equal(
    seen.length,
    aim.nth,
    `the kill came at the aimed call: ${where}; traced:\n${seen.map((c) => c.line).join('\n')}`,
  );
  assert.deepEqual(seen.at(-1)!.paths, expected.paths, `the kill landed on ${seen.at(-1)!.line}, aimed at ${where}`);
  return r;
}
