// Whether a user can open paths, judged by the kernel with that user's own credentials rather than by
// reimplementing permission checks: a shell run through setpriv with exactly the user's uid, gid and groups
// asks access(2) (`test -r`, `-w`, `-x`) for each path, so every directory on the way, ownership, mode bits and
// POSIX ACLs count as they count for the user, and nothing is opened. `--answers-out` uses it for the paths of
// a guest rebuilt from a process an ordinary user started.
import { runSync, which } from '../tools.js';

export interface Credentials {
  uid: number;
  gid: number;
  groups: number[];
}

/** What the guest needs of a path: read it, read and write it, or list a directory and read everything in it. */
export type Need = 'read' | 'read-write' | 'directory';

// For each (need, path) pair: 1 when the user can, 0 when not. A directory's entries (hidden ones too) are
// listed by the shell itself, as the user, and each must be readable (a subdirectory searchable as well).
const SCRIPT = `
while [ $# -gt 1 ]; do
  need=$1 p=$2 ok=1
  shift 2
  case $need in
    read) [ -r "$p" ] || ok=0 ;;
    read-write) { [ -r "$p" ] && [ -w "$p" ]; } || ok=0 ;;
    directory)
      if [ -d "$p" ] && [ -r "$p" ] && [ -x "$p" ]; then
        for f in "$p"/* "$p"/.[!.]* "$p"/..?*; do
          [ -e "$f" ] || [ -L "$f" ] || continue
          [ -r "$f" ] || ok=0
          if [ -d "$f" ] && [ ! -x "$f" ]; then ok=0; fi
        done
      else
        ok=0
      fi ;;
    *) ok=0 ;;
  esac
  printf %s "$ok"
done
`;

/**
 * For each ask, whether the user can open the path as needed; or why it could not be judged (not root, no
 * setpriv, or the check did not finish). Only root can take another user's credentials.
 */
export function userCanOpen(
  who: Credentials,
  asks: { path: string; need: Need }[],
): { ok: boolean[] } | { error: string } {
  if (!asks.length) return { ok: [] };
  if (process.getuid?.() !== 0) return { error: `only root can check paths with uid ${who.uid}'s credentials` };
  const setpriv = which('setpriv');
  const sh = which('sh');
  if (!setpriv || !sh) return { error: 'setpriv or sh not found (Debian package util-linux, dash)' };
  const r = runSync(
    setpriv,
    [
      `--reuid=${who.uid}`,
      `--regid=${who.gid}`,
      who.groups.length ? `--groups=${who.groups.join(',')}` : '--clear-groups',
      '--',
      sh,
      '-c',
      SCRIPT,
      'sh',
      ...asks.flatMap((a) => [a.need, a.path]),
    ],
    10_000,
  );
  if (r.exitCode !== 0 || r.stdout.length !== asks.length || /[^01]/.test(r.stdout))
    return {
      error: `the check as uid ${who.uid} did not finish (exit ${r.exitCode}${r.timedOut ? ', timed out' : ''}${r.stderr ? `: ${r.stderr.trim().split('\n')[0]}` : ''})`,
    };
  return { ok: [...r.stdout].map((c) => c === '1') };
}
