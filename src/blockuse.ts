// What of this kernel's own storage a block device holds: file systems mounted from it, swap on it, and the
// devices the kernel built on it (its partitions; device-mapper, LVM, md and bcache devices listed in its
// holders), followed down to what they hold in turn. Read from the kernel's own accounts, as lsblk reads them:
// /proc/self/mountinfo (and /proc/1/mountinfo, the host's namespace when this process has one of its own),
// /proc/swaps and /sys/dev/block. No program is run and nothing is opened but those files.
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

/** A device number as the kernel writes it in sysfs and mountinfo: "major:minor". */
export type DevNumber = string;

/** The device number of a block device node, or undefined when the path is not one. */
export function blockDevNumber(path: string): DevNumber | undefined {
  try {
    const st = statSync(path, { bigint: true });
    if (!st.isBlockDevice()) return undefined;
    return devNumber(st.rdev);
  } catch {
    return undefined;
  }
}

/** glibc's major()/minor(): 12 bits of major above the low 8 bits of minor, the rest in the high bits. */
function devNumber(dev: bigint): DevNumber {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** One use the host makes of the device or of a device built on it. */
export interface StorageUse {
  /** The device that is used: the device itself, or a partition or holder of it, by its kernel name. */
  device: string;
  /** How that device sits on the one asked about: empty for itself, else e.g. ["loop3p1"] or ["dm-0 (vg-root)"]. */
  via: string[];
  kind: 'mount' | 'swap' | 'holder';
  /** For a mount: where, and the file system type. */
  mountpoint?: string;
  fstype?: string;
}

interface Node {
  dev: DevNumber;
  name: string;
  via: string[];
  /** How the last step of `via` was reached: the device itself, a partition, or a holder. */
  step: 'self' | 'partition' | 'holder';
}

const read = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};

const list = (dir: string) => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

/** mountinfo and /proc/swaps escape space, tab, newline and backslash as octal (\040). */
const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

/** A device-mapper device's own name (vg-lv for LVM), when it has one. */
function label(sysDir: string, name: string): string {
  const dm = read(join(sysDir, 'dm', 'name')).trim();
  return dm ? `${name} (${dm})` : name;
}

/** The device, its partitions, and every device built on any of them, with the way to each. */
function devicesOn(dev: DevNumber, sys: string): Node[] {
  let top: string;
  try {
    top = realpathSync(join(sys, 'dev', 'block', dev));
  } catch {
    return [];
  }
  const out: Node[] = [];
  const seen = new Set<string>();
  const visit = (dir: string, via: string[], step: Node['step']) => {
    if (seen.has(dir) || out.length > 4096) return;
    seen.add(dir);
    const name = basename(dir);
    const number = read(join(dir, 'dev')).trim();
    if (number) out.push({ dev: number, name, via, step });
    for (const e of list(dir))
      if (read(join(dir, e, 'partition')).trim() !== '') visit(join(dir, e), [...via, e], 'partition');
    for (const h of list(join(dir, 'holders'))) {
      let real: string;
      try {
        real = realpathSync(join(dir, 'holders', h));
      } catch {
        continue;
      }
      visit(real, [...via, label(real, h)], 'holder');
    }
  };
  visit(top, [], 'self');
  return out;
}

/**
 * Every use the host makes of the block device numbered `dev` or of a device built on it. `proc` and `sys` are
 * where this kernel's /proc and /sys are mounted; an empty list means the kernel knows no use of it.
 */
export function storageUses(dev: DevNumber, proc = '/proc', sys = '/sys'): StorageUse[] {
  const nodes = devicesOn(dev, sys);
  if (nodes.length === 0) return [];
  const byDev = new Map(nodes.map((n) => [n.dev, n]));
  const uses: StorageUse[] = [];
  const seen = new Set<string>();
  const add = (n: Node, use: Omit<StorageUse, 'device' | 'via'>) => {
    const key = `${n.dev} ${use.kind} ${use.mountpoint ?? ''}`;
    if (seen.has(key)) return;
    seen.add(key);
    uses.push({ device: n.name, via: n.via, ...use });
  };
  for (const file of ['self/mountinfo', '1/mountinfo'])
    for (const line of read(join(proc, file)).split('\n')) {
      // id parent major:minor root mountpoint options [optional fields] - fstype source super-options
      const [left, right] = line.split(' - ');
      if (!left || !right) continue;
      const f = left.split(' ');
      const [fstype, source] = right.split(' ');
      // A file system on several devices (btrfs) reports an anonymous device number; its source names the device.
      const n =
        byDev.get(f[2] ?? '') ??
        (source?.startsWith('/dev/') ? byDev.get(blockDevNumber(unescape(source)) ?? '') : undefined);
      if (n) add(n, { kind: 'mount', mountpoint: unescape(f[4] ?? ''), fstype: fstype ?? '' });
    }
  for (const line of read(join(proc, 'swaps')).split('\n').slice(1)) {
    const file = line.split(/\s+/)[0];
    const n = file ? byDev.get(blockDevNumber(unescape(file)) ?? '') : undefined;
    if (n) add(n, { kind: 'swap' });
  }
  // A device the kernel built on this one is a use of it even when nothing of it is mounted: an LVM volume may be
  // another guest's disk, an md array a member short.
  const prefix = (a: string[], b: string[]) => a.every((v, i) => b[i] === v);
  for (const n of nodes)
    if (n.step === 'holder' && !uses.some((u) => prefix(n.via, u.via) || prefix(u.via, n.via)))
      add(n, { kind: 'holder' });
  return uses;
}
