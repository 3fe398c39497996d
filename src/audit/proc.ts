// Reading a live host through /proc: which processes are QEMU (whatever started them), and for each its
// credentials, every thread's seccomp mode, its AppArmor label, its cgroup, its open files and its listening
// sockets. Nothing here writes anything. What cannot be read (another user's process, as a normal user) is
// recorded as unseen, never guessed.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { guestLabel, isQemuBinary, parseCommandLine } from './cmdline.js';
import type { HostView, QemuProcess, TcpListener, Unseen } from './types.js';

export const PROC = '/proc';

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

function statusMap(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

/** The kernel's hex address in /proc/net/tcp{,6} (32-bit words in host byte order) as text. */
export function hexAddress(hex: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < hex.length; i += 8) {
    const w = hex.slice(i, i + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(w.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255) return bytes.slice(12).join('.');
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

/** Listening TCP sockets of one network namespace (read once per namespace), by socket inode. */
export function tcpListeners(netDir: string, key: string, cache: Map<string, Map<number, TcpListener>>): Map<number, TcpListener> | undefined {
  const cached = cache.get(key);
  if (cached) return cached;
  const out = new Map<number, TcpListener>();
  let any = false;
  for (const file of ['tcp', 'tcp6']) {
    const text = read(`${netDir}/${file}`);
    if (text === undefined) continue;
    any = true;
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      const [addrHex, portHex] = f[1]!.split(':');
      const address = hexAddress(addrHex!);
      const inode = Number(f[9]);
      out.set(inode, {
        line: `${netDir}/${file}: ${line.trim()}`,
        address,
        port: parseInt(portHex!, 16),
        inode,
        loopback: address.startsWith('127.') || address === '::1',
        wildcard: address === '0.0.0.0' || address === '::',
      });
    }
  }
  if (!any) return undefined;
  cache.set(key, out);
  return out;
}

function unixSockets(netDir: string, key: string, cache: Map<string, Map<number, string>>): Map<number, string> {
  const cached = cache.get(key);
  if (cached) return cached;
  const out = new Map<number, string>();
  for (const line of (read(`${netDir}/unix`) ?? '').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[7]!.startsWith('/')) out.set(Number(f[6]), f.slice(7).join(' '));
  }
  cache.set(key, out);
  return out;
}

/** Find every QEMU process and read what the checks need. */
export function readHost(proc = PROC): HostView {
  const unseen: Unseen[] = [];
  const processes: QemuProcess[] = [];
  const tcpCache = new Map<string, Map<number, TcpListener>>();
  const unixCache = new Map<string, Map<number, string>>();
  const root = process.getuid?.() === 0;
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const raw = read(`${proc}/${pid}/cmdline`);
    if (!raw) continue;
    const argv = raw.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    if (!argv.length || !isQemuBinary(argv[0]!)) continue;
    const statusText = read(`${proc}/${pid}/status`);
    if (statusText === undefined) continue;
    const cmd = parseCommandLine(argv);
    const guest = guestLabel(cmd, pid);
    const status = statusMap(statusText);
    const uids = (status.get('Uid') ?? '').split(/\s+/).map(Number);

    const threadSeccomp: [number, string][] = [];
    try {
      for (const tid of readdirSync(`${proc}/${pid}/task`)) {
        const t = read(`${proc}/${pid}/task/${tid}/status`);
        const m = t && /^Seccomp:\s*(\d+)$/m.exec(t);
        if (m) threadSeccomp.push([Number(tid), m[1]!]);
      }
    } catch (e) {
      unseen.push({ what: `${guest} (pid ${pid}): its threads`, reason: `${proc}/${pid}/task: ${errCode(e)}` });
    }

    let apparmorLabel: string | undefined;
    try {
      apparmorLabel = readFileSync(`${proc}/${pid}/attr/current`, 'utf8').replace(/\0/g, '').trim();
    } catch (e) {
      const code = errCode(e);
      if (code !== 'EINVAL' && code !== 'ENOENT') unseen.push({ what: `${guest} (pid ${pid}): its AppArmor label`, reason: `${proc}/${pid}/attr/current: ${code}` });
    }

    let openFiles: string[] | undefined;
    const socketInodes: number[] = [];
    try {
      openFiles = [];
      for (const fd of readdirSync(`${proc}/${pid}/fd`)) {
        let target: string;
        try {
          target = readlinkSync(`${proc}/${pid}/fd/${fd}`);
        } catch {
          continue;
        }
        const s = /^socket:\[(\d+)\]$/.exec(target);
        if (s) socketInodes.push(Number(s[1]));
        else openFiles.push(target);
      }
    } catch (e) {
      openFiles = undefined;
      unseen.push({
        what: `${guest} (pid ${pid}): its open files and sockets, so its listeners are judged from the command line alone and /dev/kvm use is not confirmed`,
        reason: `${proc}/${pid}/fd: ${errCode(e)}`,
      });
    }

    const netDir = `${proc}/${pid}/net`;
    let netNs = netDir;
    try {
      netNs = readlinkSync(`${proc}/${pid}/ns/net`);
    } catch {
      // the namespace link is unreadable: the process's own tables are read, without sharing
    }
    let listeners: TcpListener[] | undefined;
    const unixPaths: string[] = [];
    if (openFiles !== undefined) {
      const tcp = tcpListeners(netDir, netNs, tcpCache);
      if (tcp) listeners = socketInodes.map((i) => tcp.get(i)).filter((l): l is TcpListener => !!l);
      else unseen.push({ what: `${guest} (pid ${pid}): its TCP sockets`, reason: `${netDir}/tcp: unreadable` });
      const unix = unixSockets(netDir, netNs, unixCache);
      for (const i of socketInodes) {
        const p = unix.get(i);
        if (p) unixPaths.push(p);
      }
    }

    processes.push({
      pid,
      guest,
      argv,
      cmd,
      status,
      uids,
      threadSeccomp,
      apparmorLabel,
      cgroupLines: (read(`${proc}/${pid}/cgroup`) ?? '').split('\n').filter(Boolean),
      openFiles,
      listeners,
      unixSockets: [...new Set(unixPaths)],
    });
  }
  processes.sort((a, b) => a.pid - b.pid);
  return { root, processes, unseen };
}
