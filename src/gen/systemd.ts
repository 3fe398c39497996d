// systemd units: one service per guest, its helper units (src/helpers/) and tap helper when it has them, and the
// slice they all live in. Each hardening line carries a comment saying what it takes away, so the bundle teaches
// as it is read. QEMU's unit and every helper unit share one hardening block (`hardening`): a helper differs from
// QEMU only where its record says so.
import { GENERATED } from '../bundle-layout.js';
import { CONFINEMENT } from '../confine/index.js';
import { systemdBindWord, systemdExecWord, systemdPathWord, systemdText, systemdUnitPath } from '../escape.js';
import { guestFence } from '../fence.js';
import * as G from '../guest.js';
import type { HelperKind } from '../helpers/helper.js';
import { helpersOf } from '../helpers/index.js';
import type { Answers, Guest } from '../model.js';
import { USER_NET_DENY } from '../identity.js';
import { underDir } from '../places.js';
import { RELEASES, systemdHas, type Release } from '../releases.js';
import { tlsDirs, tlsReaders } from '../rules.js';
import * as L from './logrotate.js';
import { CREDENTIALS_DIR, qemuArgs } from './qemu.js';

type Line = string | [comment: string, ...settings: string[]];

function render(sections: [string, Line[]][]): string {
  const out: string[] = [GENERATED];
  for (const [name, lines] of sections) {
    out.push('', `[${name}]`);
    for (const l of lines) {
      if (typeof l === 'string') out.push(l);
      else {
        const [comment, ...settings] = l;
        out.push(`# ${comment}`, ...settings);
      }
    }
  }
  return out.join('\n') + '\n';
}

/** One ExecStart= word; the credentials-directory marker becomes the `%d` specifier, everything else is escaped. */
function execWord(arg: string): string {
  if (!arg.includes(CREDENTIALS_DIR)) return systemdExecWord(arg);
  const word = arg
    .split(CREDENTIALS_DIR)
    .map((part) => systemdExecWord(part))
    .join('%d');
  if (/[\s"'\\]/.test(word))
    throw new Error(`systemd unit: a credentials path must be a plain word: ${JSON.stringify(word)}`);
  return word;
}

function execLine(argv: string[]): string {
  const words = argv.map(execWord);
  const lines: string[] = [];
  let cur = `ExecStart=${words[0]}`;
  for (const w of words.slice(1)) {
    if (w.startsWith('-') && cur.length > 0 && !cur.endsWith('\\')) {
      lines.push(`${cur} \\`);
      cur = `    ${w}`;
    } else cur += ` ${w}`;
  }
  lines.push(cur);
  return lines.join('\n');
}

/**
 * What ExecStop= runs: QMP system_powerdown through the stop FIFO, then wait for QEMU to exit (plain sh and
 * coreutils). Nothing to do when QEMU has already exited ($MAINPID unset). The wait reads the monitor's output
 * FIFO until its last writer, QEMU, has closed it: that holds in any PID namespace, where a wait on $MAINPID
 * would not (with PrivatePIDs= each command of the unit gets a namespace of its own, and QEMU is not in it).
 * The output FIFO is opened read-write first so that opening it for reading never blocks, and that writer is
 * dropped before the wait; the input FIFO is opened read-write so the write never blocks, even if QEMU exits
 * at that moment.
 */
function stopScript(g: Guest): string {
  const out = `${G.stopPipe(g)}.out`;
  return `[ -n "$MAINPID" ] || exit 0; exec 3<> ${out} 4< ${out} 3>&-; echo '{"execute":"qmp_capabilities"}{"execute":"system_powerdown"}' 1<> ${G.stopPipe(g)}.in && exec cat <&4 >/dev/null`;
}

/** The release the answers are for. */
const releaseOf = (a: Answers): Release => RELEASES[a.host.target];

/** /tmp and the cgroup tree: systemd 257 gives a unit a tmpfs of its own and a cgroup namespace, read-only. */
function privateTmp(r: Release): string {
  return systemdHas.v257(r) ? 'PrivateTmp=disconnected' : 'PrivateTmp=yes';
}
function protectControlGroups(r: Release): string {
  return systemdHas.v257(r) ? 'ProtectControlGroups=strict' : 'ProtectControlGroups=yes';
}

const tlsCache = new WeakMap<Answers, Set<string>>();

/** The TLS directories any guest reads. */
function allTls(a: Answers): Set<string> {
  let dirs = tlsCache.get(a);
  if (!dirs) tlsCache.set(a, (dirs = new Set(tlsReaders(a.guests).keys())));
  return dirs;
}

/** How one of a guest's units is sandboxed: QEMU's, or a helper's (src/helpers/). */
interface Sandbox {
  /** The program the comments name: "QEMU", "swtpm". */
  who: string;
  /** The release the bundle is for: systemd 257 has settings 252 lacks. */
  release: Release;
  /** QEMU's own unit, rather than a helper's: a helper gets no devices at all and its own socket from systemd. */
  qemu: boolean;
  devices: { path: string; access: 'r' | 'rw' }[];
  /** Paths writable besides the unit's own directories. */
  writable: string[];
  /** The fence between guests (fence.ts), for this unit's own paths. */
  fence: ReturnType<typeof guestFence>;
  /** Paths hidden one by one beyond the fence's. */
  hidden: string[];
  /** What is bound into the empty /run. */
  runBinds: { path: string; writable: boolean }[];
  /** What /run holds besides: for the comment that says so. */
  runHolds: string;
  /**
   * none: an empty network namespace. helper: the same, for a QEMU whose guest's network is a helper's (passt) it
   * reaches over a unix socket. tap, inet, user-mode: QEMU's own. host-ip: a helper speaking IP for the guest.
   */
  network: 'none' | 'helper' | 'tap' | 'inet' | 'user-mode' | 'host-ip';
  /** The program installs a seccomp filter of its own. */
  ownSeccomp: boolean;
  /** What the program needs to build a sandbox of its own (src/helpers/helper.ts). */
  selfSandbox?: { namespaces: string[]; syscalls: string[]; why: string };
  /** The program forks into the background (Type=forking): its first process must not be a PID namespace's init. */
  forks?: boolean;
  /** Why the program reads /proc/sys (then not hidden by ProcSubset=pid), if it does. */
  readsProcSys?: string;
  /** Under TCG QEMU writes the code it runs; everything else gets MemoryDenyWriteExecute=yes. */
  writesCode: boolean;
  memlockMiB?: number;
  /** What a core dump would give away. */
  coreHolds: string;
  /** The unit lines of each confinement backend that confines it. */
  confinement: [comment: string, ...settings: string[]][];
}

/** The hardening every unit of a guest shares, QEMU's and its helpers': identity aside, from capabilities to core dumps. */
function hardening(sb: Sandbox): Line[] {
  const { who, fence, release } = sb;
  const fenceTmpfs = fence.tmpfs.filter((d) => !underDir(d, '/run'));
  const hidden = [...new Set([...fence.inaccessible, ...sb.hidden])].sort();
  const out: Line[] = [
    [
      'No capabilities at all, and no way to gain any (setuid binaries, file capabilities).',
      'CapabilityBoundingSet=',
      'AmbientCapabilities=',
      'NoNewPrivileges=yes',
      'SecureBits=noroot-locked',
    ],
    [
      sb.qemu
        ? 'Devices: only what this guest uses. The standard pseudo devices (/dev/null, /dev/urandom, ...) stay.'
        : 'Devices: none but the standard pseudo devices (/dev/null, /dev/urandom, ...).',
      'DevicePolicy=closed',
      ...sb.devices.map((d) => `DeviceAllow=${systemdPathWord(d.path)} ${d.access}`),
      ...(sb.qemu ? [] : ['PrivateDevices=yes']),
    ],
    [
      sb.qemu
        ? 'The whole file system is read-only to QEMU; only this guest’s writable disks and shared folders are not.'
        : `The whole file system is read-only to ${who}; only its own directories are not.`,
      'ProtectSystem=strict',
      ...(sb.writable.length ? [`ReadWritePaths=${sb.writable.map(systemdPathWord).join(' ')}`] : []),
    ],
  ];
  if (fenceTmpfs.length)
    out.push([
      `Other guests’ disks, files and directories do not exist for this ${who}, whatever their modes: the directories holding them are empty here, and only this ${sb.qemu ? 'guest’s' : 'unit’s'} own files are put back.`,
      ...fenceTmpfs.map((d) => `TemporaryFileSystem=${d}:ro`),
      ...fence.bind.map((b) => `${b.writable ? 'BindPaths' : 'BindReadOnlyPaths'}=${systemdBindWord(b.path)}`),
    ]);
  if (hidden.length)
    out.push([
      'Other guests’ files and TLS directories that no fenced directory holds are hidden one by one.',
      ...hidden.map((p) => `InaccessiblePaths=-${systemdPathWord(p)}`),
    ]);
  out.push(
    [
      `No host sockets: /run (and /var/run) is an empty read-only tmpfs holding only ${sb.runHolds}, so the D-Bus system bus and other daemons’ sockets are not there to connect to; /dev/shm is empty too, and System V IPC and POSIX message queues are private.`,
      'TemporaryFileSystem=/run:ro',
      'TemporaryFileSystem=/dev/shm:ro',
      ...sb.runBinds.map((b) => `${b.writable ? 'BindPaths' : 'BindReadOnlyPaths'}=${systemdBindWord(b.path)}`),
      'PrivateIPC=yes',
    ],
    [
      systemdHas.v257(release)
        ? 'Home directories, /tmp of other services, mounts and the kernel’s knobs are out of reach. /tmp is a tmpfs of this unit’s own, not backed by the host’s, and the cgroup tree is its own subtree in a cgroup namespace, read-only.'
        : 'Home directories, /tmp of other services, mounts and the kernel’s knobs are out of reach.',
      'ProtectHome=yes',
      privateTmp(release),
      'PrivateMounts=yes',
      'ProtectKernelTunables=yes',
      'ProtectKernelModules=yes',
      'ProtectKernelLogs=yes',
      protectControlGroups(release),
      'ProtectClock=yes',
      'ProtectHostname=yes',
      'ProtectProc=invisible',
      ...(sb.readsProcSys ? [] : ['ProcSubset=pid']),
    ],
    ...(sb.readsProcSys ? [[`/proc/sys stays readable, read-only: ${sb.readsProcSys}.`] as Line] : []),
    [
      `Other users of the host are invisible; this ${who} has its own user namespace. (Not "identity": that maps every system user into it, and "yes" maps only root and this guest’s user.)`,
      'PrivateUsers=yes',
    ],
  );
  if (systemdHas.v257(release) && !sb.forks)
    out.push([
      `A PID namespace of its own: ${who} is its PID 1 and no other process of the host exists for it, even by number.`,
      'PrivatePIDs=yes',
    ]);
  if (sb.selfSandbox)
    out.push([
      `${who} makes namespaces only for a sandbox of its own: ${sb.selfSandbox.namespaces.join(', ')}; never a network or cgroup namespace.`,
      `RestrictNamespaces=${sb.selfSandbox.namespaces.join(' ')}`,
    ]);
  out.push([
    sb.selfSandbox
      ? 'No realtime scheduling, setuid files, personality changes or System V IPC left behind.'
      : 'No namespaces, realtime scheduling, setuid files, personality changes or System V IPC left behind.',
    ...(sb.selfSandbox ? [] : ['RestrictNamespaces=yes']),
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'RemoveIPC=yes',
    'KeyringMode=private',
  ]);
  switch (sb.network) {
    case 'none':
    case 'helper':
      out.push([
        sb.network === 'helper'
          ? 'No network of its own: QEMU reaches the guest’s network only through the unix socket of the guest’s user-mode network unit (passt), so it gets an empty network namespace and no IP socket.'
          : sb.qemu
            ? 'No network at all: the guest has no network device, so QEMU gets an empty network namespace.'
            : `No network at all: ${who} speaks only on its unix socket, in an empty network namespace.`,
        'PrivateNetwork=yes',
        'RestrictAddressFamilies=AF_UNIX',
        'IPAddressDeny=any',
      ]);
      break;
    case 'host-ip':
      out.push(
        [
          `${who} speaks IP for the guest from the host’s own network: IP sockets, netlink to read the host’s addresses and routes, and unix sockets.`,
          'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
        ],
        [
          `Whatever ${who} reaches, the guest reaches. The host’s loopback and link-local addresses (local services, other guests’ listeners, cloud metadata at 169.254.169.254) are denied, in both directions.`,
          `IPAddressDeny=${USER_NET_DENY.join(' ')}`,
        ],
      );
      break;
    case 'tap':
      out.push([
        'The tap device lives in the host namespace; QEMU itself needs only unix sockets and no IP.',
        'RestrictAddressFamilies=AF_UNIX AF_NETLINK',
        'IPAddressDeny=any',
      ]);
      break;
    case 'inet':
    case 'user-mode':
      out.push([
        sb.network === 'user-mode'
          ? 'QEMU speaks IP itself (slirp, the user-mode network inside QEMU: an accepted risk): only IP and unix sockets.'
          : 'QEMU speaks IP itself (a TLS listener): only IP and unix sockets.',
        'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
      ]);
      if (sb.network === 'user-mode')
        out.push([
          'slirp: whatever QEMU reaches, the guest reaches (10.0.2.2 is the host’s 127.0.0.1). The host’s loopback and link-local addresses (local services, other guests’ listeners, cloud metadata at 169.254.169.254) are denied.',
          `IPAddressDeny=${USER_NET_DENY.join(' ')}`,
        ]);
      break;
  }
  out.push([
    sb.ownSeccomp
      ? `System calls: native ABI only, the service set plus seccomp (${sb.qemu ? 'QEMU’s -sandbox' : `${who}’s own filter`} needs it), and nothing that mounts, loads modules, reboots or debugs.`
      : `System calls: native ABI only, the service set, and nothing that mounts, loads modules, reboots or debugs.`,
    'SystemCallArchitectures=native',
    `SystemCallFilter=@system-service${sb.ownSeccomp ? ' seccomp' : ''}`,
    'SystemCallFilter=~@clock @cpu-emulation @debug @module @mount @obsolete @privileged @raw-io @reboot @swap',
    'SystemCallErrorNumber=EPERM',
  ]);
  if (sb.selfSandbox)
    out.push([
      `Given back after that, only for ${who}’s own sandbox: ${sb.selfSandbox.why}.`,
      `SystemCallFilter=${sb.selfSandbox.syscalls.join(' ')}`,
    ]);
  if (sb.writesCode)
    out.push(['No MemoryDenyWriteExecute= here: under TCG QEMU writes the code it then runs (its translation cache).']);
  else
    out.push([
      sb.qemu
        ? 'Under KVM QEMU generates no code, so no memory may be both writable and executable (VFIO maps device memory read-write, never executable).'
        : `${who} generates no code, so no memory may be both writable and executable.`,
      'MemoryDenyWriteExecute=yes',
    ]);
  if (sb.memlockMiB) out.push(['VFIO pins all guest memory.', `LimitMEMLOCK=${sb.memlockMiB}M`]);
  out.push([`No core dumps: a dump of ${who} would hold ${sb.coreHolds}.`, 'LimitCORE=0']);
  if (sb.qemu && systemdHas.memoryKsm(release))
    out.push([
      'No kernel samepage merging for this process: a page shared with another guest is a timing side channel between them. QEMU’s mem-merge=off keeps its guest RAM out of KSM as well.',
      'MemoryKSM=no',
    ]);
  out.push(...sb.confinement);
  return out;
}

/** The user a guest's units run as, with only the groups they need. */
function identity(g: Guest, who: string, groups: string[]): Line {
  return [
    `Least privilege: ${who} runs as this guest’s own user, never root, with only the groups it needs.`,
    `User=${G.userName(g)}`,
    `Group=${G.userName(g)}`,
    ...(groups.length ? [`SupplementaryGroups=${groups.join(' ')}`] : []),
  ];
}

/**
 * The guest's unit. With `incoming`, the same QEMU started as a live-migration destination: `-incoming defer`
 * waits for QMP's migrate-incoming, and the unit conflicts with the normal one (they share directories and disks).
 */
export function guestService(a: Answers, g: Guest, opts: { incoming?: boolean } = {}): string {
  const incoming = opts.incoming === true;
  const release = releaseOf(a);
  const groups = [
    ...(a.useCase === 'virtualization' ? [a.host.kvmGroup] : []),
    ...(g.network.mode === 'tap' ? [a.host.netGroup] : []),
  ];
  const fence = guestFence(a, g);
  const bound = new Set(fence.bind.map((b) => b.path));
  const ownTls = new Set(tlsDirs(g));
  const ownPaths = [...ownTls, ...G.filesOf(g).map((f) => f.path), G.runtimeDir(g), G.stateDir(g), G.logsDir(g)];
  // Every guest's TLS directories but those that hold this guest's own (its own among them): read once per answers.
  const othersTls = [...allTls(a)].filter((d) => !ownPaths.some((p) => underDir(p, d)));
  const helpers = helpersOf(a, g);
  const inet = G.usesInet(g);
  const tap = g.network.mode === 'tap';

  const unit: Line[] = [
    `Description=${systemdText(`QEMU guest ${g.name}${g.description ? ` (${g.description})` : ''}${incoming ? ', as a live-migration destination' : ''}`)}`,
    'Documentation=man:qemu-system-x86_64(1) man:systemd.exec(5)',
  ];
  if (incoming)
    unit.push(['The same guest as the normal unit: only one of the two runs.', `Conflicts=${G.unitName(g)}`]);
  if (tap) unit.push(`Requires=${G.tapUnitName(g)}`, `After=${G.tapUnitName(g)}`);
  for (const h of helpers)
    unit.push([
      `The guest’s ${h.title} runs in a unit of its own, up before QEMU starts; it stops with QEMU.`,
      `Requires=${G.helperUnitName(g, h.kind)}`,
      `After=${G.helperUnitName(g, h.kind)}`,
    ]);
  if (inet) unit.push('After=network-online.target', 'Wants=network-online.target');

  const service: Line[] = [
    'Type=exec',
    ...(g.firmware.type === 'uefi'
      ? [
          [
            'The guest’s own UEFI variables: copied from the template on first start, by this guest’s user into its state directory, never overwritten.',
            `ExecStartPre=/bin/sh -c ${systemdExecWord('test -e "$1" || exec cp -- "$2" "$1"')} sh ${systemdExecWord(G.uefiVars(g))} ${systemdExecWord(g.firmware.varsTemplate)}`,
          ] as Line,
        ]
      : []),
    [
      'QEMU reads a second QMP monitor from a FIFO pair in its runtime directory, made fresh at each start.',
      `ExecStartPre=/usr/bin/rm -f ${systemdExecWord(`${G.stopPipe(g)}.in`)} ${systemdExecWord(`${G.stopPipe(g)}.out`)}`,
      `ExecStartPre=/usr/bin/mkfifo -m 0600 ${systemdExecWord(`${G.stopPipe(g)}.in`)} ${systemdExecWord(`${G.stopPipe(g)}.out`)}`,
    ],
    execLine([a.host.qemuBinary, ...qemuArgs(a, g), ...(incoming ? ['-incoming', 'defer'] : [])]),
    [
      g.acpi === false
        ? 'Stopping presses the ACPI power button (QMP system_powerdown), which this guest, having no ACPI, does not hear: after TimeoutStopSec QEMU gets SIGTERM and quits at once.'
        : 'Stopping presses the guest’s ACPI power button (QMP system_powerdown) and waits for QEMU to exit; a guest still running after TimeoutStopSec gets SIGTERM, and QEMU quits at once.',
      `ExecStop=/bin/sh -c ${systemdExecWord(stopScript(g))}`,
      'KillSignal=SIGTERM',
      'TimeoutStopSec=90',
    ] as Line,
    ...(incoming ? ['Restart=no'] : ['Restart=on-failure', 'RestartSec=5']),
    `Slice=${G.SLICE}`,
    identity(g, 'QEMU', groups),
    ...(g.display.mode === 'spice-tls' && g.display.passwordFile
      ? [
          [
            'The SPICE password: systemd reads the file as root and hands QEMU a private copy; it never appears on a command line.' as string,
            `LoadCredential=${G.SPICE_PASSWORD_CREDENTIAL}:${systemdPathWord(g.display.passwordFile)}`,
          ] as Line,
        ]
      : []),
    [
      'The guest’s sockets, state and logs: each directory belongs to this guest alone. The runtime directory is kept when the unit stops: the guest’s normal and migration-destination units share it, and one that is just ending must not remove it under the other.',
      'RuntimeDirectory=' + systemdPathWord(`qemu-harden/${g.name}`),
      'RuntimeDirectoryMode=0750',
      'RuntimeDirectoryPreserve=yes',
      'StateDirectory=' + systemdPathWord(`qemu-harden/${g.name}`),
      'StateDirectoryMode=0700',
      'LogsDirectory=' + systemdPathWord(`qemu-harden/${g.name}`),
      'LogsDirectoryMode=0750',
      'UMask=0077',
    ],
    ...hardening({
      who: 'QEMU',
      release,
      qemu: true,
      devices: G.devicesOf(a, g),
      writable: [
        ...g.disks.filter((d) => !d.readOnly && !d.blockDevice && !bound.has(d.path)).map((d) => d.path),
        ...G.qemuShares(a, g)
          .filter((sh) => sh.access === 'rw' && !bound.has(sh.path))
          .map((sh) => sh.path),
      ],
      fence,
      hidden: [
        ...othersTls,
        ...helpers.flatMap((h) => h.stateDirs(g)),
        // Served by virtiofsd, the guest's shared folders are not QEMU's to open.
        ...(G.shareTransport(a) === 'virtiofs' ? g.shares.map((sh) => sh.path) : []),
      ],
      runBinds: [
        { path: G.runtimeDir(g), writable: true },
        ...G.filesOf(g).map((f) => ({ path: f.path, writable: f.access === 'rw' })),
        ...[...ownTls].map((path) => ({ path, writable: false })),
      ].filter((b) => underDir(b.path, '/run') && !bound.has(b.path)),
      runHolds: 'this guest’s own directory',
      network: tap
        ? inet
          ? 'inet'
          : 'tap'
        : g.network.mode === 'user' && !G.usesPasst(g)
          ? 'user-mode'
          : inet
            ? 'inet'
            : G.usesPasst(g)
              ? 'helper'
              : 'none',
      ownSeccomp: true,
      writesCode: a.useCase !== 'virtualization',
      memlockMiB: g.passthrough.pci.length > 0 ? G.memoryMaxMiB(g) : undefined,
      coreHolds: 'the guest’s RAM',
      confinement: CONFINEMENT.filter((b) => b.confines(a, g)).map((b) => b.unitLines(g, a)),
    }),
  ];
  const l = g.limits;
  service.push([
    'Resource limits: the guest cannot take more than its share of the host.',
    `CPUWeight=${l.cpuWeight}`,
    `CPUQuota=${G.cpuQuotaPercent(g)}%`,
    ...(l.memoryHighMiB ? [`MemoryHigh=${l.memoryHighMiB}M`] : []),
    `MemoryMax=${G.memoryMaxMiB(g)}M`,
    'MemorySwapMax=0',
    `IOWeight=${l.ioWeight}`,
    ...l.ioBandwidth.flatMap((b) => [
      ...(b.readBytesPerSecond ? [`IOReadBandwidthMax=${systemdPathWord(b.device)} ${b.readBytesPerSecond}`] : []),
      ...(b.writeBytesPerSecond ? [`IOWriteBandwidthMax=${systemdPathWord(b.device)} ${b.writeBytesPerSecond}`] : []),
    ]),
    `TasksMax=${l.tasksMax}`,
  ]);

  return render([
    ['Unit', unit],
    ['Service', service],
    ...(incoming ? [] : [['Install', ['WantedBy=multi-user.target']] as [string, Line[]]]),
  ]);
}

/** The units a guest's helper stops with: QEMU's, and the migration destination's when the guest has one. */
function qemuUnitsOf(g: Guest): string[] {
  return [G.unitName(g), ...(g.migration?.enabled ? [G.incomingUnitName(g)] : [])];
}

/**
 * The socket systemd listens on for a guest's helper, owned by the guest's user: it exists before the helper and
 * QEMU start, so QEMU never connects before the helper is there, and it goes away when QEMU stops.
 */
export function helperSocket(g: Guest, h: HelperKind): string {
  const path = h.socket(g);
  return render([
    [
      'Unit',
      [
        `Description=${systemdText(`Socket of the ${h.title} of QEMU guest ${g.name}`)}`,
        'Documentation=man:systemd.socket(5)',
        ['Listening only while the guest runs: it stops with QEMU.', `PartOf=${qemuUnitsOf(g).join(' ')}`],
      ],
    ],
    [
      'Socket',
      [
        [
          'In the guest’s runtime directory, for the guest’s user alone: other guests’ users cannot connect, and their units do not see the directory.',
          `ListenStream=${systemdPathWord(path)}`,
          `SocketUser=${G.userName(g)}`,
          `SocketGroup=${G.userName(g)}`,
          'SocketMode=0600',
          'DirectoryMode=0755',
          'RemoveOnStop=yes',
        ],
        `Service=${G.helperUnitName(g, h.kind)}`,
      ],
    ],
  ]);
}

/** journald's syslog socket, for a helper that logs to the system logger once it has forked. */
const SYSLOG_SOCKET = '/run/systemd/journal/dev-log';

/** A guest's helper unit: the helper as the guest's user, in QEMU's sandbox with the differences its record names. */
export function helperService(a: Answers, g: Guest, h: HelperKind): string {
  const who = h.binary.slice(h.binary.lastIndexOf('/') + 1);
  const served = h.ownPaths?.(g) ?? [];
  const own = [...h.stateDirs(g).map((path) => ({ path, writable: true })), ...served];
  const fence = guestFence(a, g, own);
  const bound = new Set(fence.bind.map((b) => b.path));
  const othersTls = [...allTls(a)].filter((d) => !own.some((o) => underDir(o.path, d)));
  const stateRel = (p: string) => systemdPathWord(p.slice('/var/lib/'.length));
  const forks = h.readiness === 'forks';
  const runDir = h.socket(g).slice(0, h.socket(g).lastIndexOf('/'));
  const inet = h.sandbox.network === 'host-ip';
  const ready: Line = forks
    ? [
        `${who} binds its socket itself, in its own directory, and forks into the background once it listens: QEMU’s unit starts this one before itself, and starts only when it is ready.`,
        'Type=forking',
      ]
    : 'Type=exec';
  return render([
    [
      'Unit',
      [
        `Description=${systemdText(`${h.title} of QEMU guest ${g.name}`)}`,
        `Documentation=${h.documentation} man:systemd.exec(5)`,
        ...(forks
          ? []
          : [
              [
                'systemd listens on its socket first and hands it over; QEMU’s unit starts this one before itself.',
                `Requires=${G.helperSocketName(g, h.kind)}`,
                `After=${G.helperSocketName(g, h.kind)}`,
              ] as Line,
            ]),
        ...(inet
          ? [
              [
                `${who} reads the host’s addresses and routes when it starts: it starts once the network is up.`,
                'After=network-online.target',
                'Wants=network-online.target',
              ] as Line,
            ]
          : []),
        [
          'It stops with QEMU, and is not left running once no QEMU of this guest needs it.',
          `PartOf=${qemuUnitsOf(g).join(' ')}`,
          'StopWhenUnneeded=yes',
        ],
      ],
    ],
    [
      'Service',
      [
        ready,
        ...h.setup(g).map((s) => [s.why, `ExecStartPre=${s.argv.map(systemdExecWord).join(' ')}`] as Line),
        `ExecStart=${[h.binary, ...h.args(g)].map(execWord).join(' ')}`,
        `Slice=${G.SLICE}`,
        identity(g, who, []),
        ...(h.stateDirs(g).length
          ? [
              [
                `${who}’s state: its own directories in the guest’s state directory, for ${who} alone.`,
                `StateDirectory=${h.stateDirs(g).map(stateRel).join(' ')}`,
                'StateDirectoryMode=0700',
              ] as Line,
            ]
          : []),
        ...(forks
          ? [
              [
                `${who}’s socket: a directory of its own in the guest’s runtime directory, where QEMU connects, for ${who} alone to write.`,
                `RuntimeDirectory=${systemdPathWord(runDir.slice('/run/'.length))}`,
                'RuntimeDirectoryMode=0700',
              ] as Line,
            ]
          : []),
        'UMask=0077',
        ...hardening({
          who,
          release: releaseOf(a),
          qemu: false,
          devices: [],
          writable: served.filter((p) => p.writable && !bound.has(p.path)).map((p) => p.path),
          fence,
          hidden: othersTls,
          runBinds: forks
            ? [
                { path: runDir, writable: true },
                ...(h.sandbox.syslog ? [{ path: SYSLOG_SOCKET, writable: false }] : []),
              ]
            : [],
          runHolds: forks
            ? `${who}’s own directory${h.sandbox.syslog ? `, and journald’s syslog socket, to which ${who} logs once it has forked` : ''}`
            : `what systemd puts there itself (${who} gets its socket from systemd)`,
          network: inet ? 'host-ip' : 'none',
          ownSeccomp: h.sandbox.ownSeccomp,
          selfSandbox: h.sandbox.selfSandbox,
          readsProcSys: h.sandbox.readsProcSys,
          forks,
          writesCode: false,
          coreHolds: h.sandbox.coreHolds,
          confinement: CONFINEMENT.filter((b) => b.confines(a, g)).map((b) => b.helperUnitLines(g, h.kind, a)),
        }),
        [
          `Resource limits: ${who} needs little, and gets no more.`,
          `CPUWeight=${g.limits.cpuWeight}`,
          `MemoryMax=${h.sandbox.memoryMaxMiB}M`,
          'MemorySwapMax=0',
          `TasksMax=${h.sandbox.tasksMax}`,
        ],
      ],
    ],
  ]);
}

/** Creates the tap device, owned by the guest's user, so QEMU never needs CAP_NET_ADMIN or a helper. */
export function tapService(a: Answers, g: Guest): string | undefined {
  if (g.network.mode !== 'tap') return undefined;
  const release = releaseOf(a);
  const dev = G.tapDevice(g)!;
  const ip = '/usr/sbin/ip';
  const user = G.userName(g);
  const start = [
    `ExecStart=${ip} tuntap add dev ${systemdExecWord(dev)} mode tap user ${user} group ${user}${g.network.vhost ? ' vnet_hdr' : ''}`,
    ...(g.network.bridge
      ? [`ExecStart=${ip} link set dev ${systemdExecWord(dev)} master ${systemdExecWord(g.network.bridge)}`]
      : []),
    `ExecStart=${ip} link set dev ${systemdExecWord(dev)} up`,
  ];
  return render([
    [
      'Unit',
      [
        `Description=${systemdText(`Tap device ${dev} for QEMU guest ${g.name}`)}`,
        `Before=${G.unitName(g)}`,
        'After=network-pre.target',
        ...(g.network.bridge
          ? [`After=${systemdUnitPath(`/sys/subsystem/net/devices/${g.network.bridge}`)}.device`]
          : []),
      ],
    ],
    [
      'Service',
      [
        'Type=oneshot',
        'RemainAfterExit=yes',
        [
          'A tap left over from an unclean stop is removed first.',
          `ExecStartPre=-${ip} link delete dev ${systemdExecWord(dev)}`,
        ],
        ...start,
        `ExecStop=${ip} link delete dev ${systemdExecWord(dev)}`,
        [
          'Only the one capability creating network devices needs, and only the tun device.',
          'CapabilityBoundingSet=CAP_NET_ADMIN',
          'NoNewPrivileges=yes',
          'DevicePolicy=closed',
          'DeviceAllow=/dev/net/tun rw',
        ],
        [
          'Everything else this short-lived helper could touch is read-only or absent.',
          'ProtectSystem=strict',
          'ProtectHome=yes',
          privateTmp(release),
          'PrivateMounts=yes',
          'ProtectKernelTunables=yes',
          'ProtectKernelModules=yes',
          'ProtectKernelLogs=yes',
          protectControlGroups(release),
          'ProtectClock=yes',
          'ProtectHostname=yes',
          'ProtectProc=invisible',
          'ProcSubset=pid',
          'RestrictNamespaces=yes',
          'RestrictRealtime=yes',
          'RestrictSUIDSGID=yes',
          'LockPersonality=yes',
          'MemoryDenyWriteExecute=yes',
          'UMask=0077',
          'IPAddressDeny=any',
          'RestrictAddressFamilies=AF_NETLINK AF_UNIX',
          'SystemCallArchitectures=native',
          'SystemCallFilter=@system-service',
          'SystemCallFilter=~@privileged @resources',
          'SystemCallErrorNumber=EPERM',
        ],
      ],
    ],
  ]);
}

/** Rotates every guest's serial log: root only long enough to become each guest's user (logrotate's `su`). */
export function logrotateService(a: Answers): string {
  const release = releaseOf(a);
  return render([
    ['Unit', ['Description=Rotate the serial logs of qemu-harden guests', 'Documentation=man:logrotate(8)']],
    [
      'Service',
      [
        'Type=oneshot',
        `ExecStart=/usr/sbin/logrotate --state ${L.STATE_PATH} ${L.CONFIG_PATH}`,
        [
          'Becoming each guest’s user (su in the configuration) and reading its log directory are all it may do as root.',
          'CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_DAC_READ_SEARCH',
          'NoNewPrivileges=yes',
          'UMask=0077',
        ],
        [
          'Only the guests’ log directories and its own state file are writable; nothing else on the host.',
          'ProtectSystem=strict',
          'ReadWritePaths=/var/log/qemu-harden /var/lib/qemu-harden',
          'ProtectHome=yes',
          privateTmp(release),
          'PrivateDevices=yes',
          'PrivateNetwork=yes',
          'IPAddressDeny=any',
          'RestrictAddressFamilies=AF_UNIX',
          'PrivateMounts=yes',
          'ProtectKernelTunables=yes',
          'ProtectKernelModules=yes',
          'ProtectKernelLogs=yes',
          protectControlGroups(release),
          'ProtectClock=yes',
          'ProtectHostname=yes',
          'ProtectProc=invisible',
          'ProcSubset=pid',
          'RestrictNamespaces=yes',
          'RestrictRealtime=yes',
          'RestrictSUIDSGID=yes',
          'LockPersonality=yes',
          'MemoryDenyWriteExecute=yes',
          'RemoveIPC=yes',
          'SystemCallArchitectures=native',
          'SystemCallFilter=@system-service',
          'SystemCallFilter=~@resources',
          'SystemCallErrorNumber=EPERM',
        ],
      ],
    ],
  ]);
}

export function logrotateTimer(): string {
  return render([
    ['Unit', ['Description=Rotate the serial logs of qemu-harden guests every minute']],
    [
      'Timer',
      [
        [
          `A guest can fill its log quickly: it is checked every ${L.IN_WORDS.interval}, and rotated past ${L.IN_WORDS.size}.`,
          `OnActiveSec=${L.INTERVAL}`,
          `OnUnitActiveSec=${L.INTERVAL}`,
          'AccuracySec=5s',
        ],
      ],
    ],
    ['Install', ['WantedBy=timers.target']],
  ]);
}

export function slice(): string {
  return render([
    ['Unit', ['Description=QEMU guests managed by qemu-harden', 'Before=slices.target']],
    [
      'Slice',
      [
        [
          'Every guest gets an equal default share; per-guest limits are on each guest’s service.',
          'CPUAccounting=yes',
          'MemoryAccounting=yes',
          'IOAccounting=yes',
          'TasksAccounting=yes',
        ],
      ],
    ],
  ]);
}
