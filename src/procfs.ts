// Reading a live host through /proc and /sys, as `status` and `audit` both need it: files the kernel makes up
// when they are read (a process's status, threads, label, cgroup, descriptors, socket tables), read here
// directly, each bounded in size and count. What a process or a user can stall (a command line, a path the
// process names) is read by sidecar.ts instead, in a process of its own with a deadline. Unreadable files come
// back as undefined, or as the error for the caller to report as unseen. Nothing here writes anything.
import { closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';

export const PROC = '/proc';

/** A file's text, or undefined when it cannot be read (any file, not only under /proc). */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** How much of each kind of file is read at most. Beyond it a read is cut and says so. */
export const LIMITS = {
  /** A command line: QEMU's own never come near it (libvirt's longest in its test corpus are a few KiB). */
  cmdline: 256 * 1024,
  /** /proc/PID/status, a cgroup file, an attribute. */
  small: 64 * 1024,
  /** A network namespace's socket table (/proc/PID/net/tcp, unix, ...). */
  table: 8 * 1024 * 1024,
  /** Threads whose seccomp mode is read, and open files listed, per process. */
  threads: 4096,
  fds: 8192,
};

export interface Bounded {
  text: string;
  /** More was there than was read. */
  truncated: boolean;
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * At most `max` bytes of a small file the kernel or the administrator writes: one under /proc or /sys, whose
 * contents the kernel makes up when it is read (never another process's I/O), or the host's own configuration
 * (/etc/login.defs). Undefined when it cannot be read (the process has exited, no permission).
 */
export function readSmall(path: string, max = LIMITS.small): Bounded | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    const buf = Buffer.allocUnsafe(Math.min(max + 1, 1 << 16));
    for (;;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, max + 1 - total), null);
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
      total += n;
      if (total > max) break;
    }
    return { text: Buffer.concat(chunks).subarray(0, max).toString('utf8'), truncated: total > max };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
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

/**
 * Every thread's Seccomp line as [tid, value], for at most LIMITS.threads threads (`more` says there were more);
 * throws when the task directory cannot be read. `dir` is the process's /proc directory.
 */
export function threadSeccomp(dir: string): { threads: [number, string][]; more: boolean } {
  const tids = readdirSync(`${dir}/task`);
  const threads: [number, string][] = [];
  for (const tid of tids.slice(0, LIMITS.threads)) {
    const m = /^Seccomp:\s*(\d+)$/m.exec(readSmall(`${dir}/task/${tid}/status`)?.text ?? '');
    if (m) threads.push([Number(tid), m[1]!]);
  }
  return { threads, more: tids.length > LIMITS.threads };
}

/**
 * A process's security attribute file (/proc/PID/attr/...), as a confinement backend reads its label: the text,
 * null where the file is there but no security module answers it (EINVAL: the module is not active), undefined
 * where the kernel has no such file (ENOENT). Any other error is thrown, for the caller to report as unseen.
 */
export function procAttr(file: string): string | null | undefined {
  let fd: number;
  try {
    fd = openSync(file, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EINVAL') return null;
    throw e;
  }
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, null);
    return buf.subarray(0, n).toString('utf8').replace(/\0/g, '').trim();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EINVAL') return null;
    throw e;
  } finally {
    closeSync(fd);
  }
}

/**
 * What the process holds open: socket inodes apart, every other target as readlink gives it, for at most
 * LIMITS.fds descriptors (`more` says there were more). Throws when the fd directory cannot be read (another
 * user's process, as a normal user).
 */
export function openFds(dir: string): { files: string[]; sockets: number[]; more: boolean } {
  const files: string[] = [];
  const sockets: number[] = [];
  const fds = readdirSync(`${dir}/fd`);
  for (const fd of fds.slice(0, LIMITS.fds)) {
    let target: string;
    try {
      target = readlinkSync(`${dir}/fd/${fd}`);
    } catch {
      continue;
    }
    const s = /^socket:\[(\d+)\]$/.exec(target);
    if (s) sockets.push(Number(s[1]));
    else files.push(target);
  }
  return { files, sockets, more: fds.length > LIMITS.fds };
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
  address: string;
  port: number;
  inode: number;
  loopback: boolean;
  wildcard: boolean;
}

/** A listener as `ss` would show it: "0.0.0.0:5907 tcp LISTEN", "[::]:5930 tcp6 LISTEN", "0.0.0.0:69 udp UNCONN". */
export function listenerText(l: InetListener): string {
  const host = l.address.includes(':') ? `[${l.address}]` : l.address;
  return `${host}:${l.port} ${l.proto} ${l.proto.startsWith('tcp') ? 'LISTEN' : 'UNCONN'}`;
}

export interface UnixSocket {
  inode: number;
  /** The bound path, "@name" for an abstract socket, or undefined for an unnamed one. */
  path: string | undefined;
  listening: boolean;
}

/**
 * The socket tables of the network namespaces the processes are in, each read once however many processes
 * share it. A process's sockets are its socket inodes looked up in them. A table longer than LIMITS.table is
 * read that far, and named in `truncated`.
 */
export class NetTables {
  private readonly inet = new Map<string, Map<number, InetListener> | undefined>();
  private readonly unix = new Map<string, Map<number, UnixSocket>>();
  readonly truncated = new Set<string>();

  /** `dir` is a process's /proc directory. */
  private namespace(dir: string): string {
    try {
      return readlinkSync(`${dir}/ns/net`);
    } catch {
      // The namespace link is unreadable: the process's own tables are read, without sharing.
      return `${dir}/net`;
    }
  }

  private table(file: string): string | undefined {
    const r = readSmall(file, LIMITS.table);
    if (r?.truncated) this.truncated.add(file);
    return r?.text;
  }

  /** Listening TCP sockets and bound UDP ones, by inode; undefined when the tables cannot be read. */
  listeners(dir: string): Map<number, InetListener> | undefined {
    const key = this.namespace(dir);
    if (this.inet.has(key)) return this.inet.get(key);
    const out = new Map<number, InetListener>();
    let any = false;
    for (const proto of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
      const text = this.table(`${dir}/net/${proto}`);
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

  /**
   * Unix sockets by inode, with their path and whether they listen (the __SO_ACCEPTCON flag, 0x10000). The
   * kernel prints a bound path as it is, newlines included, so a process can write lines of its own into this
   * table: an inode that appears on two lines is taken from neither.
   */
  unixSockets(dir: string): Map<number, UnixSocket> {
    const key = this.namespace(dir);
    const cached = this.unix.get(key);
    if (cached) return cached;
    const out = new Map<number, UnixSocket>();
    const twice = new Set<number>();
    for (const line of (this.table(`${dir}/net/unix`) ?? '').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 7 || !/^\d+$/.test(f[6]!)) continue;
      const inode = Number(f[6]);
      if (out.has(inode)) twice.add(inode);
      out.set(inode, {
        inode,
        path: f.length > 7 ? /^\s*(?:\S+\s+){7}(.*)$/.exec(line)![1] : undefined,
        listening: (parseInt(f[3]!, 16) & 0x10000) !== 0,
      });
    }
    for (const inode of twice) out.delete(inode);
    this.unix.set(key, out);
    return out;
  }
}

export const KMSG = '/dev/kmsg';

/** The kernel log's records, or why it could not be read. */
export type KernelLog = { lines: string[] } | { error: string };

/** Every record of the kernel log, read without blocking; the reason instead when it cannot be read. */
export function readKernelLog(path = KMSG): KernelLog {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return { error: `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  const lines: string[] = [];
  const buf = Buffer.alloc(8192);
  try {
    for (let i = 0; i < 1_000_000; i++) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue;
        if (code === 'EAGAIN') break;
        return { error: `${path}: ${code ?? (e as Error).message}` };
      }
      if (n === 0) break;
      const rec = buf.subarray(0, n).toString('utf8');
      const semi = rec.indexOf(';');
      lines.push((semi >= 0 ? rec.slice(semi + 1) : rec).split('\n')[0]!);
    }
  } finally {
    closeSync(fd);
  }
  return { lines };
}
