// What every audit check shares: the facts read from /proc once, the shape of a finding, and the shape of a
// check itself (data plus one function), the same shape the bundle checks use.
import type { InetListener } from '../procfs.js';
import { redact, type QemuCommandLine } from './cmdline.js';

export type Severity = 'high' | 'medium' | 'low' | 'info';

export interface Finding {
  /** The check that found it, e.g. "process.root". */
  check: string;
  severity: Severity;
  /** The guest's name from -name (or "pid N" when it has none); null for a finding about the host. */
  guest: string | null;
  pid: number | null;
  /** The exact line (or file and value) that was read; secrets on a command line are redacted. */
  evidence: string;
  /** Why it matters, in the terms of QEMU's security documentation. */
  why: string;
  /** What a qemu-harden bundle does instead. */
  bundle: string;
  /** The answers field that decides it in a bundle, when there is one. */
  answer: string | null;
}

/** Something the audit could not read, and what it could therefore not check. */
export interface Unseen {
  what: string;
  reason: string;
}

/** A listening TCP socket as /proc/PID/net/tcp{,6} shows it. */
export type TcpListener = InetListener;

export interface QemuProcess {
  pid: number;
  /** -name guest=…, or "pid N". */
  guest: string;
  argv: string[];
  cmd: QemuCommandLine;
  /** The lines of /proc/PID/status that the checks use, by key. */
  status: Map<string, string>;
  uids: number[];
  /** Every thread's Seccomp line: [tid, value]. */
  threadSeccomp: [number, string][];
  /** /proc/PID/attr/current, or undefined when unreadable. */
  apparmorLabel: string | undefined;
  /** /proc/PID/cgroup lines. */
  cgroupLines: string[];
  /** Paths the process holds open (readlink of /proc/PID/fd/*), or undefined when unreadable. */
  openFiles: string[] | undefined;
  /** TCP sockets this process listens on (its own network namespace), or undefined when unreadable. */
  listeners: TcpListener[] | undefined;
  /** Unix socket paths this process listens on (from /proc/PID/net/unix through its fds). */
  unixSockets: string[];
}

export interface HostView {
  /** Is the audit running as root (full view)? */
  root: boolean;
  processes: QemuProcess[];
  unseen: Unseen[];
}

export interface AuditCheck {
  name: string;
  /** A program the check runs, or null when it only reads /proc, /sys and files. */
  tool: string | null;
  /** The Debian package that brings the tool. */
  debianPackage: string | null;
  /** The findings; what the check itself could not read it adds to view.unseen. */
  run(view: HostView): Finding[];
}

export function finding(
  check: string,
  severity: Severity,
  p: QemuProcess | null,
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
    evidence: redact(evidence),
    why,
    bundle,
    answer,
  };
}
