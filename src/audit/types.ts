// The one model of a live QEMU that `audit` and `status` both judge (after systemd's analyze-security.c, which
// gathers one SecurityInfo and runs one assessor table over it): the facts read from /proc, /sys and the files
// a command line names, read once by live.ts; what the process is held to (expect.ts: QEMU's security
// documentation for `audit`, the installed unit for `status`); and the shape of a finding and of a check.
import { readKernelLog, type InetListener, type KernelLog, type UnixSocket } from '../procfs.js';
import type { FileFact, Within } from '../sidecar.js';
import { redact } from '../qemuargs.js';
import type { QemuCommandLine } from './cmdline.js';
import type { Expectation } from './expect.js';
import type * as N from '../names.js';

export type Severity = 'high' | 'medium' | 'low' | 'info';

/** What the kernel says of a confinement backend, read by the backend's probe: whether it enforces it, and what
 * was read, for evidence. */
export interface Probe {
  enforced: boolean;
  /** The file and what it held: "/sys/module/apparmor/parameters/enabled: Y". */
  evidence: string;
}

export interface Finding {
  /** The check that found it, e.g. "process.root". */
  check: string;
  severity: Severity;
  /** The guest's name from -name (or "pid N" when it has none); null for a finding about the host. */
  guest: string | null;
  pid: number | null;
  /** What is wrong, in one line: "holds capabilities (CapEff 0000000000000400)". */
  summary: string;
  /** The exact line (or file and value) that was read; secrets on a command line are redacted. */
  evidence: string;
  /** Why it matters, in the terms of QEMU's security documentation. */
  why: string;
  /** What a qemu-harden bundle does instead. */
  bundle: string;
  /** The answers field that decides it in a bundle, when there is one. */
  answer: string | null;
}

/** Something that could not be read, and what could therefore not be checked. */
export interface Unseen {
  what: string;
  reason: string;
}

/** Who a process runs as, and whether only the host's administrator could have started it so. */
export interface Owner {
  /** Real, effective, saved and file-system uid, as /proc/PID/status gives them. */
  uids: number[];
  gids: number[];
  /** Supplementary groups. */
  groups: number[];
  /** The effective uid's name in /etc/passwd, or null when it has none there. */
  user: string | null;
  /**
   * Every uid is a system uid (below the host's UID_MIN, or above UID_MAX and outside every subordinate range
   * of /etc/subuid): no ordinary user of the host could have started the process as it runs.
   */
  system: boolean;
}

/** The cgroup limit nearest to a process: the file that holds a finite one, and the cgroup it belongs to. */
export interface Limit {
  file: string | undefined;
  group: string | undefined;
  /** What was read, for evidence. */
  read: string;
}

export interface CgroupFacts {
  /** The cgroup v2 path, or systemd's own on a hybrid host. */
  path: string | null;
  memory: Limit;
  pids: Limit;
  /** Set when the service manager placed the process in its own cgroup but the controller did not follow. */
  noController: string | undefined;
  /** memory.max, cpu.max and pids.max of the process's own cgroup, as read (null where absent). */
  own: { memoryMax: string | null; cpuMax: string | null; pidsMax: string | null };
}

/** What the reader reads of every live process it judges, a QEMU or one of a guest's helpers. */
export interface LiveProcess {
  pid: number;
  /** How a finding names it: a QEMU's -name guest=… (or "pid N"), a helper's program ("swtpm"). */
  guest: string;
  argv: string[];
  /** The command line was longer than procfs's LIMITS.cmdline: argv holds its beginning only. */
  argvTruncated: boolean;
  /** The lines of /proc/PID/status that the checks use, by key. */
  status: Map<string, string>;
  uids: number[];
  owner: Owner;
  /** Every thread's Seccomp line: [tid, value]. */
  threadSeccomp: [number, string][];
  /** Its raw label from each confinement backend that gives one, by the backend's id (src/confine/). */
  labels: Record<string, string>;
  /** /proc/PID/cgroup lines. */
  cgroupLines: string[];
  /** Its cgroup's limits, read from /sys/fs/cgroup; undefined for a command line judged on its own. */
  cgroup: CgroupFacts | undefined;
}

export interface QemuProcess extends LiveProcess {
  cmd: QemuCommandLine;
  /** Paths the process holds open (readlink of /proc/PID/fd/*), or undefined when unreadable. */
  openFiles: string[] | undefined;
  /** TCP sockets it listens on and UDP sockets it has bound (its own network namespace), or undefined. */
  listeners: InetListener[] | undefined;
  /** The unix sockets it holds with a path or an abstract name (from /proc/PID/net/unix through its fds). */
  unixSockets: UnixSocket[];
}

/**
 * A helper of a guest's QEMU found by its program (src/helpers/: a TPM emulator, swtpm), whoever started it:
 * qemu-harden's helper unit, libvirt or Proxmox.
 */
export interface HelperProcess extends LiveProcess {
  kind: N.HelperKind;
  /** Its own seccomp filter as its command line asks for it: "on", or what turns it off (`--seccomp action=none`). */
  ownSeccomp: { on: true } | { on: false; evidence: string };
  /** Its state as its command line names it (a directory and the file in it that holds the state, or a file);
   * undefined when it names none. */
  state: { path: string; file: string } | undefined;
  /** The host folders it serves its guest, as its command line names them (virtiofsd's shared directory). */
  serves: { path: string; readOnly: boolean }[];
}

/** What stat says about each path the command lines name (disks, sockets, their directories), and the qcow2
 * backing file named in each image's header: read once, within the time allowed, by live.ts. */
export interface FileFacts {
  stat: Map<string, Within<FileFact>>;
  /** The backing file a qcow2 header names: undefined for none, or why it was not read. */
  backing: Map<string, Within<string | undefined>>;
}

export interface HostView {
  /** Is the audit running as root (full view)? */
  root: boolean;
  /** Whether the kernel enforces each confinement backend, by the backend's id: its probe, read once with the host;
   * empty where the host's confinement was not read (command lines judged on their own). */
  confinement: ReadonlyMap<string, Probe>;
  /** The kernel log, read once when a check first asks for it. */
  kernelLog(): KernelLog;
  processes: QemuProcess[];
  /** The guests' helper processes (swtpm), read as QEMU's are. */
  helpers: HelperProcess[];
  unseen: Unseen[];
  files: FileFacts;
  /** Processes whose command line was not read in time, so whether they are QEMU is not known, with their
   * /proc/PID/cgroup lines (status asks whose unit they are in). */
  unread: { pid: number; cgroupLines: string[] }[];
}

/** Each process's expectation: what audit holds a QEMU or a helper to, or its installed unit's (status). */
export type Expect = (p: LiveProcess) => Expectation;

export interface AuditCheck {
  name: string;
  /** A program the check runs, or null when it only judges what live.ts read. */
  tool: string | null;
  /** The Debian package that brings the tool. */
  debianPackage: string | null;
  /** What it judges: "process" facts, the "command line" alone (so an installed unit's too), or the "host". */
  judges: 'process' | 'command line' | 'host';
  /** The findings; what the check itself could not judge it adds to view.unseen. Reads nothing. */
  run(view: HostView, expect: Expect): Finding[];
}

export function finding(
  check: string,
  severity: Severity,
  p: LiveProcess | null,
  summary: string,
  evidence: string,
  why: string,
  bundle: string,
  answer: string | null,
): Finding {
  return {
    check,
    severity,
    guest: p ? p.guest : null,
    pid: p ? p.pid : null,
    summary: redact(summary),
    evidence: redact(evidence),
    why,
    bundle,
    answer,
  };
}

export const noFiles = (): FileFacts => ({ stat: new Map(), backing: new Map() });

/** The kernel log, read at most once, when first asked for. */
export function kernelLogOnce(): () => KernelLog {
  let log: KernelLog | undefined;
  return () => (log ??= readKernelLog());
}

/** A view of these processes alone, with nothing read of their files: for command lines judged on their own. */
export const viewOf = (
  processes: QemuProcess[],
  root = true,
  confinement: ReadonlyMap<string, Probe> = new Map(),
): HostView => ({
  root,
  confinement,
  kernelLog: kernelLogOnce(),
  processes,
  helpers: [],
  unseen: [],
  files: noFiles(),
  unread: [],
});

/**
 * A process known by its command line alone (from a corpus file, a preset, or an installed unit's ExecStart):
 * no status, threads, label, cgroup, files or sockets were read, so only command-line checks say anything.
 */
export function commandLineOnly(pid: number, argv: string[], cmd: QemuCommandLine, guest: string): QemuProcess {
  return {
    pid,
    guest,
    argv,
    argvTruncated: false,
    cmd,
    status: new Map(),
    uids: [],
    owner: { uids: [], gids: [], groups: [], user: null, system: true },
    threadSeccomp: [],
    labels: {},
    cgroupLines: [],
    cgroup: undefined,
    openFiles: undefined,
    listeners: undefined,
    unixSockets: [],
  };
}

export interface Judged {
  summary: string;
  evidence: string;
}

/**
 * A check that judges each QEMU process on its own: `judge` gives what is wrong and what was read for a process
 * that falls short of its expectation, or undefined for one that does not; every such process gets one finding.
 */
export function eachProcess(
  name: string,
  severity: Severity,
  judges: AuditCheck['judges'],
  judge: (p: QemuProcess, want: Expectation) => Judged | undefined,
  why: string | ((p: QemuProcess, want: Expectation) => string),
  bundle: string,
  answer: string | null,
): AuditCheck {
  return {
    name,
    tool: null,
    debianPackage: null,
    judges,
    run: (view, expect) =>
      view.processes.flatMap((p) => {
        const want = expect(p);
        const j = judge(p, want);
        return j === undefined
          ? []
          : [
              finding(
                name,
                severity,
                p,
                j.summary,
                j.evidence,
                typeof why === 'string' ? why : why(p, want),
                bundle,
                answer,
              ),
            ];
      }),
  };
}
