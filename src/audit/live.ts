// The one reader of live QEMU processes, for `audit` and `status` alike: which processes are QEMU (whatever
// started them), and for each its command line, credentials and owner, every thread's seccomp mode, its label
// from each confinement backend, its cgroup and limits, its open files and listening sockets; then what stat says
// about every path the command lines name, and the backing file each qcow2 image's header names. The guests'
// helpers (a TPM emulator, swtpm: the kinds of src/helpers/, known by their program) are read the same way, but for
// their sockets, and with what stat says of the state their command line names. A process is known by its
// pid and the time it started: its /proc directory is held open while it is read and must show the start time
// seen before its command line was read, so a process that exits and a new one given its pid are never mixed
// up. Reads are bounded in size (procfs.ts), and those a process or user can stall (command lines, the paths
// they name) also in time (sidecar.ts); what could not be read (another user's process, as a normal user; a read
// that took too long) is recorded as unseen, never guessed. Nothing here writes anything.
import { closeSync, constants, openSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CONFINEMENT } from '../confine/index.js';
import { cgroupPath, LIMITS, NetTables, openFds, PROC, readSmall, statusFields, threadSeccomp } from '../procfs.js';
import { HELPERS } from '../helpers/index.js';
import type { HelperKind } from '../helpers/helper.js';
import { isLate, Sidecar } from '../sidecar.js';
import { guestLabel, isQemuBinary, parseCommandLine, QEMU_PROGRAM } from './cmdline.js';
import { BACKING_DEPTH, localDisks, qcow2Backing } from './files.js';
import { ownerContext, ownerOf } from './owner.js';
import {
  kernelLogOnce,
  type CgroupFacts,
  type FileFacts,
  type HelperProcess,
  type HostView,
  type Limit,
  type LiveProcess,
  type QemuProcess,
  type Unseen,
} from './types.js';

/** The kind of helper a program is, by its file name, or undefined. */
const helperOf = (argv0: string): HelperKind | undefined =>
  HELPERS.find((h) => h.live.program.test(argv0.slice(argv0.lastIndexOf('/') + 1)));

export const CGROUP_ROOT = '/sys/fs/cgroup';

/**
 * Disks per process whose files are judged; past it they are listed as unseen. An ordinary user's process gets
 * fewer: its own disks are its user's business, and its command line must not crowd out the system's guests.
 */
export const DISKS_JUDGED = { system: 256, ordinary: 16 };

const O_PATH = 0o10000000;

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

export interface ReadOptions {
  proc?: string;
  cgroupRoot?: string;
  /** Read only the processes whose /proc/PID/cgroup lines pass (status: the installed guests' units). */
  select?: (cgroupLines: string[]) => boolean;
}

/** Find every QEMU process and read what the checks need. */
export async function readHost(opts: ReadOptions = {}): Promise<HostView> {
  const proc = opts.proc ?? PROC;
  const base = opts.cgroupRoot ?? CGROUP_ROOT;
  const reader = new Sidecar();
  try {
    const deadline = await reader.started();
    return await readWith(reader, proc, base, deadline, opts);
  } finally {
    await reader.close();
  }
}

async function readWith(
  reader: Sidecar,
  proc: string,
  base: string,
  deadline: number,
  opts: ReadOptions,
): Promise<HostView> {
  const unseen: Unseen[] = [];
  const net = new NetTables();
  const { users, ranges } = ownerContext('/');
  const root = process.getuid?.() === 0;

  // Every process, known by its pid and its start time: a pid can be given to a new process once the old one
  // has exited, a start time tells them apart.
  const candidates: { pid: number; start: string }[] = [];
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue;
    const start = startTime(`${proc}/${entry}`);
    if (start === undefined) continue;
    if (opts.select && !opts.select((readSmall(`${proc}/${entry}/cgroup`)?.text ?? '').split('\n').filter(Boolean)))
      continue;
    candidates.push({ pid: Number(entry), start });
  }

  const cmdlines = await Promise.all(
    candidates.map((c) => reader.cmdline(`${proc}/${c.pid}/cmdline`, LIMITS.cmdline, QEMU_PROGRAM)),
  );

  const processes: QemuProcess[] = [];
  const helpers: HelperProcess[] = [];
  const unread: HostView['unread'] = [];
  for (const [i, { pid, start }] of candidates.entries()) {
    const raw = cmdlines[i]!;
    if ('error' in raw) {
      if (isLate(raw)) {
        unseen.push({
          what: `pid ${pid}: whether it is QEMU (its command line)`,
          reason: `${proc}/${pid}/cmdline: ${raw.error}`,
        });
        unread.push({ pid, cgroupLines: (readSmall(`${proc}/${pid}/cgroup`)?.text ?? '').split('\n').filter(Boolean) });
      }
      continue;
    }
    const argv = raw.ok.text.split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    if (!argv.length) continue;
    const helper = isQemuBinary(argv[0]!) ? undefined : helperOf(argv[0]!);
    if (!helper && !isQemuBinary(argv[0]!)) continue;
    // Its /proc directory is held open while it is read, and is the process whose command line was read only if
    // it started when that one did; every read through it fails once that process is gone.
    let fd: number;
    try {
      fd = openSync(`${proc}/${pid}`, O_PATH | constants.O_DIRECTORY);
    } catch {
      continue;
    }
    try {
      const dir = `/proc/self/fd/${fd}`;
      if (startTime(dir) !== start) continue;
      const read = { pid, dir, argv, truncated: raw.ok.truncated, base, users, ranges, unseen, deadline };
      if (helper) {
        const h = readHelper(read, helper);
        if (h) helpers.push(h);
      } else {
        const p = readProcess(read, net);
        if (p) processes.push(p);
      }
    } finally {
      closeSync(fd);
    }
  }
  for (const file of net.truncated)
    unseen.push({
      what: `the sockets past the first ${LIMITS.table / 1024 / 1024} MiB of a socket table`,
      reason: `${file}: longer than that`,
    });
  processes.sort((a, b) => a.pid - b.pid);
  helpers.sort((a, b) => a.pid - b.pid);
  const files = await readFiles(processes, helpers, unseen, reader);
  // Whether the kernel enforces each confinement backend: each backend's probe, read once for the whole view.
  const confinement = new Map(CONFINEMENT.map((b) => [b.id, b.probe()]));
  return { root, confinement, kernelLog: kernelLogOnce(), processes, helpers, unseen, files, unread };
}

/** One process to read: its /proc directory (held open), its command line, and what every read shares. */
interface ToRead {
  pid: number;
  dir: string;
  argv: string[];
  truncated: boolean;
  base: string;
  users: Parameters<typeof ownerOf>[1];
  ranges: Parameters<typeof ownerOf>[2];
  unseen: Unseen[];
  deadline: number;
}

/**
 * What every judged process is read for, QEMU or helper: its credentials and owner, every thread's seccomp mode,
 * its label from each confinement backend and its cgroup with its limits. Undefined when it exited while it was read.
 */
function readLive(
  { pid, dir, argv, truncated, base, users, ranges, unseen, deadline }: ToRead,
  guest: string,
): { live: LiveProcess; late: boolean } | undefined {
  const who = `${guest} (pid ${pid})`;
  const statusText = readSmall(`${dir}/status`)?.text;
  if (statusText === undefined) {
    unseen.push({ what: `${who}: anything but its command line`, reason: 'it exited while it was read' });
    return undefined;
  }
  if (truncated)
    unseen.push({
      what: `${who}: its command line past the first ${LIMITS.cmdline / 1024} KiB, so only its beginning is judged`,
      reason: `/proc/${pid}/cmdline: longer than that`,
    });
  const late = Date.now() >= deadline;
  if (late)
    unseen.push({
      what: `${who}: its threads, label, cgroup, files and sockets`,
      reason: 'not read: the time for reading this host was used up',
    });
  const status = statusFields(statusText);
  const owner = ownerOf(status, users, ranges);

  let seccomp: [number, string][] = [];
  if (!late)
    try {
      const t = threadSeccomp(dir);
      seccomp = t.threads;
      if (t.more)
        unseen.push({
          what: `${who}: the seccomp mode of its threads past the first ${LIMITS.threads}`,
          reason: `/proc/${pid}/task: more threads than that`,
        });
    } catch (e) {
      unseen.push({ what: `${who}: its threads`, reason: `/proc/${pid}/task: ${errCode(e)}` });
    }

  const labels: Record<string, string> = {};
  if (!late)
    for (const b of CONFINEMENT)
      try {
        const label = b.processLabel(dir);
        if (label !== undefined) labels[b.id] = label;
      } catch (e) {
        unseen.push({ what: `${who}: its ${b.name} label`, reason: `/proc/${pid}/attr: ${errCode(e)}` });
      }

  const cgroupLines = late ? [] : (readSmall(`${dir}/cgroup`)?.text ?? '').split('\n').filter(Boolean);
  return {
    late,
    live: {
      pid,
      guest,
      argv,
      argvTruncated: truncated,
      status,
      uids: owner.uids,
      owner,
      threadSeccomp: seccomp,
      labels,
      cgroupLines,
      cgroup: late ? undefined : cgroupFacts(pid, cgroupLines, base),
    },
  };
}

/** A helper of a guest's QEMU (src/helpers/): what every process is read for, and what its command line says. */
function readHelper(read: ToRead, kind: HelperKind): HelperProcess | undefined {
  const r = readLive(read, kind.binary.slice(kind.binary.lastIndexOf('/') + 1));
  if (!r) return undefined;
  const state = kind.live.state(read.argv);
  if (state === null)
    read.unseen.push({
      what: `${r.live.guest} (pid ${read.pid}): where it keeps its state, so the state's modes are not judged`,
      reason: `/proc/${read.pid}/cmdline: no state named on it (it takes the place from its environment)`,
    });
  return {
    ...r.live,
    kind: kind.kind,
    ownSeccomp: kind.live.ownSeccomp(read.argv),
    state: state ?? undefined,
    serves: kind.live.serves?.(read.argv) ?? [],
  };
}

function readProcess(read: ToRead, net: NetTables): QemuProcess | undefined {
  const { pid, dir, argv, unseen } = read;
  const cmd = parseCommandLine(argv);
  const guest = guestLabel(cmd, pid);
  const who = `${guest} (pid ${pid})`;
  const r = readLive(read, guest);
  if (!r) return undefined;
  const late = r.late;
  for (const u of cmd.unread)
    unseen.push({ what: `${who}: its ${u.option} option, so it is not judged`, reason: u.reason });

  let fds: ReturnType<typeof openFds> | undefined;
  if (!late)
    try {
      fds = openFds(dir);
      if (fds.more)
        unseen.push({
          what: `${who}: its open files and sockets past the first ${LIMITS.fds}`,
          reason: `/proc/${pid}/fd: more descriptors than that`,
        });
    } catch (e) {
      unseen.push({
        what: `${who}: its open files and sockets, so its listeners are judged from the command line alone and /dev/kvm use is not confirmed`,
        reason: `/proc/${pid}/fd: ${errCode(e)}`,
      });
    }

  let listeners: QemuProcess['listeners'];
  const unixSockets: QemuProcess['unixSockets'] = [];
  if (fds) {
    const inet = net.listeners(dir);
    if (inet) listeners = fds.sockets.map((i) => inet.get(i)).filter((l) => l !== undefined);
    else unseen.push({ what: `${who}: its TCP sockets`, reason: `/proc/${pid}/net/tcp: unreadable` });
    const unix = net.unixSockets(dir);
    const seen = new Set<number>();
    for (const i of fds.sockets) {
      const u = unix.get(i);
      if (u?.path !== undefined && !seen.has(i)) {
        seen.add(i);
        unixSockets.push(u);
      }
    }
  }

  return {
    ...r.live,
    cmd,
    openFiles: fds?.files,
    listeners,
    unixSockets,
  };
}

/** Field 22 of /proc/PID/stat, the time the process started (after its name, which may hold anything). */
function startTime(dir: string): string | undefined {
  const stat = readSmall(`${dir}/stat`, 4096)?.text;
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

const readTrim = (path: string) => readSmall(path)?.text.trim();

const UNLIMITED_V1 = 2n ** 62n;

/** The nearest finite limit at or above `path` in one hierarchy. */
function nearestLimit(base: string, path: string, file: string, finite: (v: string) => boolean): Limit {
  let cur = path;
  let first: string | undefined;
  for (;;) {
    const f = `${base}${cur === '/' ? '' : cur}/${file}`;
    const v = readTrim(f);
    if (first === undefined) first = `${f}: ${v ?? '(missing)'}`;
    if (v !== undefined && finite(v)) return { file: `${f}: ${v}`, group: cur, read: first };
    if (cur === '/' || cur === '') return { file: undefined, group: undefined, read: first };
    cur = cur.slice(0, cur.lastIndexOf('/')) || '/';
  }
}

/** A process's cgroup, its nearest memory and pids limits (v2, or v1's controllers), and its own limit files. */
function cgroupFacts(pid: number, cgroupLines: string[], base = CGROUP_ROOT): CgroupFacts {
  const lines = cgroupLines.map((l) => l.split(':'));
  const path = cgroupPath(cgroupLines);
  // A cgroup path comes from the process's own cgroup file: it never climbs out of the hierarchy.
  const safe = path !== null && !path.split('/').includes('..') ? path : null;
  const own = (f: string) => (safe ? (readTrim(`${base}${safe === '/' ? '' : safe}/${f}`) ?? null) : null);
  const ownLimits = { memoryMax: own('memory.max'), cpuMax: own('cpu.max'), pidsMax: own('pids.max') };
  const v1 = (ctrl: string) =>
    lines
      .find((f) => (f[1] ?? '').split(',').includes(ctrl))
      ?.slice(2)
      .join(':');
  const unified = lines
    .find((f) => f[0] === '0' && f[1] === '')
    ?.slice(2)
    .join(':');
  const managed = v1('name=systemd') ?? unified;
  const memPath = v1('memory');
  const pidsPath = v1('pids');
  if (memPath !== undefined || pidsPath !== undefined) {
    const memory =
      memPath !== undefined
        ? nearestLimit(
            `${base}/memory`,
            memPath,
            'memory.limit_in_bytes',
            (v) => /^\d+$/.test(v) && BigInt(v) < UNLIMITED_V1,
          )
        : { file: undefined, group: undefined, read: `/proc/${pid}/cgroup: no memory controller` };
    const pids =
      pidsPath !== undefined
        ? nearestLimit(`${base}/pids`, pidsPath, 'pids.max', (v) => v !== 'max')
        : { file: undefined, group: undefined, read: `/proc/${pid}/cgroup: no pids controller` };
    const orphan = managed !== undefined && managed !== '/' && (memPath === '/' || pidsPath === '/');
    return {
      path,
      memory,
      pids,
      noController: orphan
        ? `/proc/${pid}/cgroup: ${cgroupLines.filter((l) => /:(name=systemd|memory|pids):/.test(l)).join(' | ')}`
        : undefined,
      own: ownLimits,
    };
  }
  const v2 = unified ?? '/';
  const dir = `${base}${v2 === '/' ? '' : v2}`;
  const noController =
    readTrim(`${dir}/memory.max`) === undefined && v2 !== '/'
      ? `/proc/${pid}/cgroup: 0::${v2}; ${dir}/memory.max does not exist`
      : undefined;
  return {
    path,
    memory: nearestLimit(base, v2, 'memory.max', (v) => v !== 'max'),
    pids: nearestLimit(base, v2, 'pids.max', (v) => v !== 'max'),
    noController,
    own: ownLimits,
  };
}

const ancestors = (path: string) => {
  const out: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    out.push(d);
    if (d === '/') return out;
  }
};

/**
 * stat of every path the command lines name (local disks and the directories above them, unix sockets), then
 * the backing chain of every image not given as raw, read from the qcow2 headers as the backing check walks
 * it. All within the deadline; a path that took too long is listed as unseen.
 */
async function readFiles(
  processes: QemuProcess[],
  helpers: HelperProcess[],
  unseen: Unseen[],
  reader: Sidecar,
): Promise<FileFacts> {
  const files: FileFacts = { stat: new Map(), backing: new Map() };
  const owners = new Map<string, string>();
  const want = (path: string, who: string) => {
    if (!path.startsWith('/') || files.stat.has(path)) return;
    files.stat.set(path, { error: 'pending' });
    owners.set(path, who);
  };
  const chains: { who: string; path: string }[] = [];
  // The system's processes first: their paths are read first, and none of an ordinary user's can delay them.
  for (const p of [...processes].sort((a, b) => Number(b.owner.system) - Number(a.owner.system))) {
    const who = `${p.guest} (pid ${p.pid})`;
    const disks = localDisks(p);
    const judged = p.owner.system ? DISKS_JUDGED.system : DISKS_JUDGED.ordinary;
    if (disks.length > judged)
      unseen.push({
        what: `${who}: its disks past the first ${judged}, so their files are not judged`,
        reason: `${disks.length} disks on its command line`,
      });
    for (const d of disks.slice(0, judged)) {
      want(d.path, who);
      for (const a of ancestors(d.path)) want(a, who);
      if (d.format !== 'raw') chains.push({ who, path: d.path });
    }
    const vnc = p.cmd.vnc?.opts.get('display');
    for (const path of [
      ...p.cmd.chardevs.filter((c) => c.unixPath && c.tcp === undefined).map((c) => c.unixPath!),
      ...(vnc?.startsWith('unix:') ? [vnc.slice(5)] : []),
      ...p.unixSockets.map((u) => u.path!),
    ])
      want(path, who);
  }
  // A helper's state: the path its command line names, the file in it that holds the state, every directory above.
  for (const h of helpers)
    if (h.state) {
      const who = `${h.guest} (pid ${h.pid})`;
      want(h.state.path, who);
      want(h.state.file, who);
      for (const a of ancestors(h.state.file)) want(a, who);
    }
  const paths = [...files.stat.keys()];
  const stats = await Promise.all(paths.map((path) => reader.stat(path)));
  paths.forEach((path, i) => {
    const st = stats[i]!;
    files.stat.set(path, st);
    if (isLate(st))
      unseen.push({
        what: `${owners.get(path)}: ${path}, so its type, owner and mode are not judged`,
        reason: (st as { error: string }).error,
      });
  });

  // Only a regular file can hold a qcow2 header; a path whose stat said anything else, or nothing in time, is
  // not asked again.
  const regular = (path: string) => {
    const st = files.stat.get(path);
    return !st || ('ok' in st && st.ok.type === 'regular file');
  };
  await Promise.all(
    chains.map(async ({ who, path }) => {
      const home = dirname(path);
      let cur = path;
      for (let depth = 0; depth < BACKING_DEPTH && regular(cur); depth++) {
        let b = files.backing.get(cur);
        if (!b) {
          b = await qcow2Backing(cur, reader);
          files.backing.set(cur, b);
          if (isLate(b))
            unseen.push({
              what: `${who}: the qcow2 header of ${cur}, so its backing file is not judged`,
              reason: (b as { error: string }).error,
            });
        }
        if ('error' in b || b.ok === undefined || /^[a-z+]+:/.test(b.ok)) return;
        const full = resolve(dirname(cur), b.ok);
        if (!(full === home || full.startsWith(home + '/'))) return;
        cur = full;
      }
    }),
  );
  return files;
}
