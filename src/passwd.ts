import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** A user of an /etc/passwd file: the fields qemu-harden reads. */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

/** The users in ROOT's /etc/passwd ('/' for this host); none when the file cannot be read. */
export function readPasswd(root = '/'): PasswdEntry[] {
  let text: string;
  try {
    text = readFileSync(join(root, 'etc/passwd'), 'utf8');
  } catch {
    return [];
  }
  return parsePasswd(text);
}

/** The users of an /etc/passwd text. */
export function parsePasswd(text: string): PasswdEntry[] {
  return text.split('\n').flatMap((line) => {
    const [name, , uid, gid] = line.split(':');
    if (!name || uid === undefined || gid === undefined || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) return [];
    return [{ name, uid: Number(uid), gid: Number(gid) }];
  });
}

export const uidOf = (users: PasswdEntry[], name: string): number | undefined =>
  users.find((u) => u.name === name)?.uid;

export const userOf = (users: PasswdEntry[], uid: number): string | undefined => users.find((u) => u.uid === uid)?.name;
