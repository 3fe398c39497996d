// A helper unit: a process of one guest's that QEMU talks to over a unix socket, run in a unit of its own beside
// QEMU's. It runs as the guest's own user, in the same sandbox as QEMU's unit (one block, src/gen/systemd.ts,
// with the differences its record names), under an AppArmor profile of its own that the unit sets. It is ready
// before QEMU starts, in one of two ways (`readiness`): systemd listens on its socket (a socket unit) before the
// helper or QEMU starts and hands the socket to the helper, so the helper needs no write access where its socket
// lives; or the helper binds its socket itself, in a directory of its own, and forks into the background only once
// it listens, so systemd starts QEMU only then. Either way QEMU never races the helper's start. The helper starts
// before QEMU and stops with it.
//
// A kind of helper is one record (HelperKind); src/helpers/index.ts lists them, and rules.ts says which guests
// run it (runsHelper: the names a helper takes must be unique, and rules.ts checks them). Units, QEMU's arguments,
// the AppArmor profile, the fence and the bundle's README all read the record, and so do `audit` and `status`,
// which know a running helper by it: a new helper is a new record, not another mechanism. docs/architecture.md
// ("A helper unit") says how to add one.
import type { Guest } from '../model.js';
import type * as N from '../names.js';

/** One rule of a helper's AppArmor profile for a path: what it may do there, and why. */
export interface HelperPathRule {
  path: string;
  /** AppArmor permissions (`r`, `rwk`, `mr`, `ix`, ...). */
  perms: string;
  why: string;
  /** Appended unescaped, for rules meaning a whole directory ("/", "/**"). */
  glob?: string;
}

export interface HelperKind {
  kind: N.HelperKind;
  /** What it is, for the unit's Description= and the README: "TPM 2.0 emulator (swtpm)". */
  title: string;
  /** The unit's Documentation=. */
  documentation: string;
  binary: string;
  /** The arguments after the binary. The socket systemd listens on is file descriptor 3. */
  args(g: Guest): string[];
  /**
   * How it is ready before QEMU starts. `socket`: systemd listens on `socket` (a socket unit) and hands it over as
   * file descriptor 3. `forks`: it binds `socket` itself, in a runtime directory of its own (the socket's directory,
   * which only it may write), and its first process exits once the socket listens (Type=forking).
   */
  readiness: 'socket' | 'forks';
  /** The socket QEMU connects to, in the guest's runtime directory. */
  socket(g: Guest): string;
  /**
   * Directories the helper keeps its state in, under the guest's state directory: systemd makes them, owned by
   * the guest's user, mode 0700. They are the helper's alone: QEMU's unit and profile do not reach them.
   */
  stateDirs(g: Guest): string[];
  /**
   * Host paths outside the guest's directories that the helper serves (virtiofsd: its shared folder), writable or
   * not: its unit puts them back inside the fence between guests, and its profile admits exactly them.
   */
  ownPaths?(g: Guest): { path: string; writable: boolean }[];
  /**
   * First-start set-up, run as the guest's user by ExecStartPre= before the helper: each command does nothing
   * when its work is already done.
   */
  setup(g: Guest): { why: string; argv: string[] }[];
  /** QEMU's arguments that connect it to the helper's socket. */
  qemuArgs(g: Guest): string[];
  /** How its unit differs from QEMU's sandbox. */
  sandbox: {
    /** Whether the helper installs a seccomp filter of its own (the unit then allows the seccomp system call). */
    ownSeccomp: boolean;
    memoryMaxMiB: number;
    tasksMax: number;
    /** What a core dump of it would give away (the unit sets LimitCORE=0). */
    coreHolds: string;
    /** The exposure systemd-analyze security may give the unit (verify's exposure check). */
    exposureTarget: number;
    /**
     * The network it speaks: none (an empty network namespace, unix sockets only), or the host's IP on the guest's
     * behalf (passt), with the host's loopback and link-local addresses denied as QEMU's slirp has them denied.
     */
    network: 'none' | 'host-ip';
    /**
     * What it needs to build a sandbox of its own, where it does (passt unshares a user namespace and an empty
     * mount namespace it pivots into): the namespace types the unit then lets it create, the system calls it adds
     * back to the unit's filter, and why.
     */
    selfSandbox?: { namespaces: string[]; syscalls: string[]; why: string };
    /** It logs to the system logger once it has forked: journald's syslog socket is bound into its empty /run. */
    syslog?: boolean;
    /** Why it reads /proc/sys, if it does: the unit then leaves it visible (read-only), not only /proc/PID. */
    readsProcSys?: string;
  };
  /**
   * Its AppArmor profile beyond the binary, what every process needs and its own directories. Without
   * `capabilities` the profile denies every capability; with them it allows those, which the helper holds only in
   * the user namespace it makes for its own sandbox.
   */
  apparmor(g: Guest): {
    paths: HelperPathRule[];
    rules: { rule: string; why: string }[];
    capabilities?: { names: string[]; why: string };
  };
  /**
   * A paragraph for the bundle's README: what the helper does for the guest and how it is confined. `mac` is what
   * confines it, in its backend's words (ReadmeWords.helper), or none.
   */
  readme(g: Guest, mac: string): string;
  /** How `audit` and `status` know a running helper of this kind, whoever started it (src/audit/live.ts). */
  live: LiveHelper;
}

/** A running helper as its command line shows it: read by audit and status, judged by src/audit/helpers.ts. */
export interface LiveHelper {
  /** Its program's file name. */
  program: RegExp;
  /** Its own seccomp filter, as its command line asks for it: on, or the words that turn it off. */
  ownSeccomp(argv: string[]): { on: true } | { on: false; evidence: string };
  /**
   * The state it keeps, as its command line names it: the path given and the file in it that holds the state (the
   * same path for a file); null when it keeps state its command line does not locate; undefined when it keeps none.
   */
  state(argv: string[]): { path: string; file: string } | null | undefined;
  /** The host folders it serves its guest, as its command line names them (virtiofsd's shared directory). */
  serves?(argv: string[]): { path: string; readOnly: boolean }[];
}

/** The last value of a long option on a helper's command line (getopt_long, clap: `--name VALUE` or `--name=VALUE`). */
export function longOption(argv: string[], name: string): string | undefined {
  let value: string | undefined;
  argv.forEach((a, i) => {
    if (a === `--${name}`) value = argv[i + 1];
    else if (a.startsWith(`--${name}=`)) value = a.slice(name.length + 3);
  });
  return value;
}
