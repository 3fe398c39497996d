// The answers against the host a bundle runs on: what is really at each disk path there, and whether the host's
// own storage is on it; that each shared folder there is a directory. `generate`, `import` and `verify` ask it
// about this machine (root "/") where that machine can be seen; `apply` asks it about the target, always, with
// the target's root, before anything is installed.
// A path the target does not have is left alone: it is judged by its name alone in places.ts.
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { blockDevNumber, storageUses, type StorageUse } from './blockuse.js';
import { visible } from './escape.js';
import { tapDevice } from './identity.js';
import type { Answers } from './model.js';
import * as N from './names.js';
import { readPasswd, userOf } from './passwd.js';

/**
 * Where PATH of the tree at ROOT is on this machine, following symlinks as the tree's own system would (an
 * absolute target starts again at ROOT, ".." stops at ROOT); undefined when some part of it is missing.
 */
export function pathInRoot(root: string, path: string): string | undefined {
  if (root === '/') return path;
  const todo = path.split('/').filter(Boolean);
  const done: string[] = [];
  for (let links = 0; todo.length > 0;) {
    const part = todo.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = join(root, ...done, part);
    let st: Stats;
    try {
      st = lstatSync(here);
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++links > 40) return undefined;
    const target = readlinkSync(here);
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/').filter(Boolean));
  }
  return join(root, ...done);
}

/** One use of the host's storage in words: what holds it, through which device built on it. */
function describeUse(u: StorageUse): string {
  const who = u.via.length ? `${u.via.map(visible).join(' → ')} on it` : 'it';
  if (u.kind === 'mount') return `${who} is mounted on ${visible(u.mountpoint!)} (${visible(u.fstype!)})`;
  if (u.kind === 'swap') return `${who} is the host's swap`;
  return `${u.via.map(visible).join(' → ')} is built on it by the host's kernel (device-mapper, LVM, md or bcache)`;
}

/**
 * What of the host's own storage the block device at PATH (on this machine) holds, in words; empty when none.
 * A guest that writes such a device corrupts the host's file systems, its swap, or the volumes built on it.
 */
export function hostStorageOn(path: string): string[] {
  const dev = blockDevNumber(path);
  return dev ? storageUses(dev).map(describeUse) : [];
}

/**
 * Every problem the target at ROOT has with the answers' disks: a disk path that is a character device, a FIFO
 * or a directory there; a block device where the answers expect an image, or an image where they expect a block
 * device; a block device that holds the host's own storage (a mounted file system, swap, or a device built on
 * it). On the live host (root "/") also a tap name that is already another interface. Each names its field.
 */
export function targetProblems(root: string, a: Answers): string[] {
  const problems: string[] = [];
  // On this machine the messages are those `generate` always gave; on a tree they say where they looked.
  const inTree = root === '/' ? '' : ` in ${visible(root)}`;
  const here = root === '/' ? ' here' : inTree;
  a.guests.forEach((g, gi) =>
    g.disks.forEach((d, di) => {
      const field = `guests.${gi}.disks.${di}`;
      const at = pathInRoot(root, d.path);
      let st: Stats | undefined;
      try {
        st = at ? statSync(at) : undefined;
      } catch {
        st = undefined;
      }
      if (!st || !at) return;
      if (st.isCharacterDevice())
        problems.push(
          `${field}.path: ${d.path} is a character device${inTree}, not a disk; only block devices and image files can be disks`,
        );
      else if (st.isDirectory()) problems.push(`${field}.path: ${d.path} is a directory${inTree}, not a disk image`);
      else if (st.isFIFO() || st.isSocket())
        problems.push(`${field}.path: ${d.path} is a ${st.isFIFO() ? 'FIFO' : 'socket'}${inTree}, not a disk image`);
      else if (st.isBlockDevice() && !d.blockDevice)
        problems.push(
          `${field}.blockDevice: ${d.path} is a block device${here}; set blockDevice to true to pass it deliberately`,
        );
      else if (d.blockDevice && !st.isBlockDevice())
        problems.push(`${field}.blockDevice: ${d.path} is not a block device${here}`);
      if (st.isBlockDevice()) {
        const held = hostStorageOn(at);
        if (held.length)
          problems.push(
            `${field}.path: ${d.path} holds the host's own storage, which no guest may write or read: ${held.join('; ')}`,
          );
      }
    }),
  );
  a.guests.forEach((g, gi) =>
    g.shares.forEach((sh, si) => {
      const at = pathInRoot(root, sh.path);
      let st: Stats | undefined;
      try {
        st = at ? statSync(at) : undefined;
      } catch {
        st = undefined;
      }
      if (st && !st.isDirectory())
        problems.push(`guests.${gi}.shares.${si}.path: ${sh.path} is not a directory${inTree}; a shared folder is one`);
    }),
  );
  if (root === '/')
    a.guests.forEach((g, gi) => {
      const dev = tapDevice(g);
      if (!dev || g.network.mode !== 'tap' || !existsSync(`/sys/class/net/${dev}`)) return;
      let owner: string | undefined;
      try {
        owner = userOf(readPasswd(), Number(readFileSync(`/sys/class/net/${dev}/owner`, 'utf8').trim()));
      } catch {
        owner = undefined;
      }
      if (owner === N.userName(g.name)) return;
      problems.push(
        `guests.${gi}.network.${g.network.tapDevice ? 'tapDevice' : 'name'}: the network interface ${dev} already exists on this host and is not this guest's tap; the tap unit would delete it: choose another tapDevice`,
      );
    });
  return problems;
}
