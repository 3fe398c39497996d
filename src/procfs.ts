// Reading one live process through /proc, as `status` and `audit` both need it: its status lines, every
// thread's seccomp mode, its AppArmor label, its cgroup, what it holds open, and the sockets it listens on
// (looked up in its own network namespace's tables, each namespace read once). Nothing here writes anything.
// Unreadable files come back as undefined, or as the error for the caller to report as unseen.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export const PROC = '/proc';

/** A file's text, or undefined when it cannot be read (any file, not only under /proc). */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The lines of /proc/PID/status (or a thread's), by key. */
export function statusFields(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

/** Every thread's Seccomp line as [tid, value]; throws when the task directory cannot be read. */
export function threadSeccomp(proc: string, pid: number): [number, string][] {
  const out: [number, string][] = [];
  for (const tid of readdirSync(`${proc}/${pid}/task`)) {
    const m = /^Seccomp:\s*(\d+)$/m.exec(readText(`${proc}/${pid}/task/${tid}/status`) ?? '');
    if (m) out.push([Number(tid), m[1]!]);
  }
  return out;
}

/**
 * The AppArmor label, e.g. "qemu-harden-alpha (enforce)": AppArmor's own attribute file where the kernel has
 * one, else the LSM-wide one. Undefined where no LSM answers (EINVAL, ENOENT); any other error is thrown.
 */
export function apparmorLabel(proc: string, pid: number): string | undefined {
  for (const file of [`${proc}/${pid}/attr/apparmor/current`, `${proc}/${pid}/attr/current`]) {
    try {
      return readFileSync(file, 'utf8').replace(/\0/g, '').trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'ENOENT') throw e;
    }
  }
  return undefined;
}

/** The label split into profile and mode ("enforce", "complain"; null for "unconfined" and the like). */
export function splitLabel(label: string): { label: string; mode: string | null } {
  const m = /^(.*?)(?: \((\w+)\))?$/.exec(label)!;
  return { label: m[1]!, mode: m[2] ?? null };
}

/** What the process holds open: socket inodes apart, every other target as readlink gives it. Throws when
 * the fd directory cannot be read (another user's process, as a normal user). */
export function openFds(proc: string, pid: number): { files: string[]; sockets: number[] } {
  const files: string[] = [];
  const sockets: number[] = [];
  for (const fd of readdirSync(`${proc}/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`${proc}/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const s = /^socket:\[(\d+)\]$/.exec(target);
    if (s) sockets.push(Number(s[1]));
    else files.push(target);
  }
  return { files, sockets };
}

/** The cgroup v2 path of the process; on a hybrid host, where the unified hierarchy holds no service, systemd's own. */
export function cgroupPath(lines: string[]): string | null {
  const line =
    lines.find((l) => l.startsWith('0::') && l !== '0::/') ?? lines.find((l) => l.includes(':name=systemd:'));
  return line ? line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1) : null;
}

/** The kernel's hex address in /proc/net/{tcp,udp}{,6} (32-bit words in host byte order) as text. */
export function hexAddress(hex: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < hex.length; i += 8) {
    const w = hex.slice(i, i + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(w.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255)
    return bytes.slice(12).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
  }
  const hexes = groups.map((g) => g.toString(16));
  if (best < 0) return hexes.join(':');
  return `${hexes.slice(0, best).join(':')}::${hexes.slice(best + bestLen).join(':')}`;
}

export interface InetListener {
  proto: 'tcp' | 'tcp6' | 'udp' | 'udp6';
  /** The table line, as read, prefixed by the file it came from. */
  line: string;
  address: string;
  port: number;
  inode: number;
  loopback: boolean;
  wildcard: boolean;
}

export interface UnixSocket {
  /** The bound path, "@name" for an abstract socket, or undefined for an unnamed one. */
  path: string | undefined;
  listening: boolean;
}

/**
 * The socket tables of the network namespaces the processes are in, each read once however many processes
 * share it. A process's sockets are its socket inodes looked up in them.
 */
export class NetTables {
  private readonly inet = new Map<string, Map<number, InetListener> | undefined>();
  private readonly unix = new Map<string, Map<number, UnixSocket>>();

  constructor(private readonly proc = PROC) {}

  private namespace(pid: number): string {
    try {
      return readlinkSync(`${this.proc}/${pid}/ns/net`);
    } catch {
      // The namespace link is unreadable: the process's own tables are read, without sharing.
      return `${this.proc}/${pid}/net`;
    }
  }

  /** Listening TCP sockets and bound UDP ones, by inode; undefined when the tables cannot be read. */
  listeners(pid: number): Map<number, InetListener> | undefined {
    const key = this.namespace(pid);
    if (this.inet.has(key)) return this.inet.get(key);
    const netDir = `${this.proc}/${pid}/net`;
    const out = new Map<number, InetListener>();
    let any = false;
    for (const proto of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
      const text = readText(`${netDir}/${proto}`);
      if (text === undefined) continue;
      any = true;
      for (const line of text.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        // TCP state 0A is LISTEN; a bound UDP socket (state 07) is what listening means for UDP.
        if (f.length < 10 || f[3] !== (proto.startsWith('tcp') ? '0A' : '07')) continue;
        const [addrHex, portHex] = f[1]!.split(':');
        const address = hexAddress(addrHex!);
        const inode = Number(f[9]);
        out.set(inode, {
          proto,
          line: `${netDir}/${proto}: ${line.trim()}`,
          address,
          port: parseInt(portHex!, 16),
          inode,
          loopback: address.startsWith('127.') || address === '::1',
          wildcard: address === '0.0.0.0' || address === '::',
        });
      }
    }
    this.inet.set(key, any ? out : undefined);
    return any ? out : undefined;
  }

  /** Unix sockets by inode, with their path and whether they listen (the __SO_ACCEPTCON flag, 0x10000). */
  unixSockets(pid: number): Map<number, UnixSocket> {
    const key = this.namespace(pid);
    const cached = this.unix.get(key);
    if (cached) return cached;
    const out = new Map<number, UnixSocket>();
    for (const line of (readText(`${this.proc}/${pid}/net/unix`) ?? '').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 7) continue;
      out.set(Number(f[6]), {
        path: f.length > 7 ? f.slice(7).join(' ') : undefined,
        listening: (parseInt(f[3]!, 16) & 0x10000) !== 0,
      });
    }
    this.unix.set(key, out);
    return out;
  }
}
