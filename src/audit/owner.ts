// Who a process runs as, and whether an ordinary user of the host could have started it so. A process any of
// whose uids belongs to an ordinary user (UID_MIN..UID_MAX of /etc/login.defs), to a subordinate range that
// /etc/subuid hands a user for user namespaces, or to no range the administrator reserves, was started by
// someone other than the administrator, and what its command line names was chosen by them.
import { readPasswd, userOf, type PasswdEntry } from '../passwd.js';
import { readSmall } from '../procfs.js';
import type { Owner } from './types.js';

export interface UidRanges {
  /** UID_MIN and UID_MAX of /etc/login.defs (1000 and 60000 when it does not say). */
  userMin: number;
  userMax: number;
  /** [first, count] of every range in /etc/subuid. */
  subordinate: [number, number][];
}

/** The host's uid ranges, from ROOT's /etc/login.defs and /etc/subuid. */
export function uidRanges(root = '/'): UidRanges {
  const defs = readSmall(`${root.replace(/\/$/, '')}/etc/login.defs`)?.text ?? '';
  const num = (key: string, fallback: number) => {
    const m = new RegExp(`^\\s*${key}\\s+(\\d+)\\s*$`, 'm').exec(defs);
    return m ? Number(m[1]) : fallback;
  };
  const subordinate: [number, number][] = [];
  for (const line of (readSmall(`${root.replace(/\/$/, '')}/etc/subuid`)?.text ?? '').split('\n')) {
    const m = /^[^:#]+:(\d+):(\d+)$/.exec(line.trim());
    if (m) subordinate.push([Number(m[1]), Number(m[2])]);
  }
  return { userMin: num('UID_MIN', 1000), userMax: num('UID_MAX', 60000), subordinate };
}

/**
 * A uid only the administrator hands out: a system uid below UID_MIN, or one above UID_MAX that is neither in a
 * subordinate range of /etc/subuid nor past 65535 (where user namespaces of containers map their users).
 */
export function isSystemUid(uid: number, r: UidRanges): boolean {
  if (!Number.isInteger(uid) || uid < 0) return false;
  if (uid < r.userMin) return true;
  if (uid <= r.userMax || uid > 65535) return false;
  return !r.subordinate.some(([first, count]) => uid >= first && uid < first + count);
}

const ids = (v: string | undefined) =>
  (v ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((x) => (/^\d+$/.test(x) ? Number(x) : NaN));

/** The owner of a process, from the Uid:, Gid: and Groups: lines of its /proc/PID/status. */
export function ownerOf(status: Map<string, string>, users: PasswdEntry[], ranges: UidRanges): Owner {
  const uids = ids(status.get('Uid'));
  const euid = uids[1];
  return {
    uids,
    gids: ids(status.get('Gid')),
    groups: ids(status.get('Groups')),
    user: euid === undefined ? null : (userOf(users, euid) ?? null),
    system: uids.length === 4 && uids.every((u) => isSystemUid(u, ranges)),
  };
}

/** Everything ownerOf needs from the host, read once. */
export function ownerContext(root = '/'): { users: PasswdEntry[]; ranges: UidRanges } {
  return { users: readPasswd(root), ranges: uidRanges(root) };
}

/** "user alice (uid 1000)", or "uid 4242" when the uid has no name, as the audit prints an owner. */
export function ownerText(uid: number | null | undefined, user: string | null): string {
  if (uid === null || uid === undefined || Number.isNaN(uid)) return 'uid ?';
  return user === null ? `uid ${uid}` : `user ${user} (uid ${uid})`;
}
