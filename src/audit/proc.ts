// Reading a live host through /proc: which processes are QEMU (whatever started them), and for each its
// credentials, every thread's seccomp mode, its AppArmor label, its cgroup, its open files and its listening
// sockets. Nothing here writes anything. What cannot be read (another user's process, as a normal user) is
// recorded as unseen, never guessed.
import { readdirSync } from 'node:fs';
import { apparmorLabel, NetTables, openFds, PROC, readText, statusFields, threadSeccomp } from '../procfs.js';
import { guestLabel, isQemuBinary, parseCommandLine } from './cmdline.js';
import type { HostView, QemuProcess, TcpListener, Unseen } from './types.js';

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

/** Find every QEMU process and read what the checks need. */
export function readHost(proc = PROC): HostView {
  const unseen: Unseen[] = [];
  const processes: QemuProcess[] = [];
  const net = new NetTables(proc);
  const root = process.getuid?.() === 0;
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const raw = readText(`${proc}/${pid}/cmdline`);
    if (!raw) continue;
    const argv = raw.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    if (!argv.length || !isQemuBinary(argv[0]!)) continue;
    const statusText = readText(`${proc}/${pid}/status`);
    if (statusText === undefined) continue;
    const cmd = parseCommandLine(argv);
    const guest = guestLabel(cmd, pid);
    const status = statusFields(statusText);
    const uids = (status.get('Uid') ?? '').split(/\s+/).map(Number);

    let seccomp: [number, string][] = [];
    try {
      seccomp = threadSeccomp(proc, pid);
    } catch (e) {
      unseen.push({ what: `${guest} (pid ${pid}): its threads`, reason: `${proc}/${pid}/task: ${errCode(e)}` });
    }

    let label: string | undefined;
    try {
      label = apparmorLabel(proc, pid);
    } catch (e) {
      unseen.push({
        what: `${guest} (pid ${pid}): its AppArmor label`,
        reason: `${proc}/${pid}/attr/current: ${errCode(e)}`,
      });
    }

    let fds: { files: string[]; sockets: number[] } | undefined;
    try {
      fds = openFds(proc, pid);
    } catch (e) {
      unseen.push({
        what: `${guest} (pid ${pid}): its open files and sockets, so its listeners are judged from the command line alone and /dev/kvm use is not confirmed`,
        reason: `${proc}/${pid}/fd: ${errCode(e)}`,
      });
    }

    let listeners: TcpListener[] | undefined;
    const unixPaths = new Set<string>();
    if (fds) {
      const inet = net.listeners(pid);
      if (inet)
        listeners = fds.sockets
          .map((i) => inet.get(i))
          .filter((l): l is TcpListener => !!l && l.proto.startsWith('tcp'));
      else
        unseen.push({ what: `${guest} (pid ${pid}): its TCP sockets`, reason: `${proc}/${pid}/net/tcp: unreadable` });
      const unix = net.unixSockets(pid);
      for (const i of fds.sockets) {
        const path = unix.get(i)?.path;
        if (path?.startsWith('/')) unixPaths.add(path);
      }
    }

    processes.push({
      pid,
      guest,
      argv,
      cmd,
      status,
      uids,
      threadSeccomp: seccomp,
      apparmorLabel: label,
      cgroupLines: (readText(`${proc}/${pid}/cgroup`) ?? '').split('\n').filter(Boolean),
      openFiles: fds?.files,
      listeners,
      unixSockets: [...unixPaths],
    });
  }
  processes.sort((a, b) => a.pid - b.pid);
  return { root, processes, unseen };
}
