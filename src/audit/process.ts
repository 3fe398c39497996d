// Checks on each QEMU process itself: who it runs as, what the kernel lets it do (capabilities, no_new_privs,
// seccomp on every thread), QEMU's own -sandbox, its AppArmor label, its cgroup limits, the accelerator, and
// whether guests share a user.
import { readText } from '../procfs.js';
import { finding, type AuditCheck, type Finding, type QemuProcess } from './types.js';
import { plural } from '../words.js';

export const CGROUP_ROOT = '/sys/fs/cgroup';

const statusLine = (p: QemuProcess, key: string) =>
  `/proc/${p.pid}/status: ${key}:\t${p.status.get(key) ?? '(missing)'}`;

/**
 * A check that judges each QEMU process on its own: `evidence` gives what was read for a process that falls
 * short, or undefined for one that does not; every such process gets one finding.
 */
function eachProcess(
  name: string,
  severity: Finding['severity'],
  evidence: (p: QemuProcess) => string | undefined,
  why: string | ((p: QemuProcess) => string),
  bundle: string,
  answer: string | null,
): AuditCheck {
  return {
    name,
    tool: null,
    debianPackage: null,
    run: (view) =>
      view.processes.flatMap((p) => {
        const e = evidence(p);
        return e === undefined
          ? []
          : [finding(name, severity, p, e, typeof why === 'string' ? why : why(p), bundle, answer)];
      }),
  };
}

const root = eachProcess(
  'process.root',
  'high',
  (p) => (p.uids.some((u) => u === 0) ? statusLine(p, 'Uid') : undefined),
  'QEMU must run as an unprivileged user: a guest that takes over device emulation acts as this process, and as root it owns the whole host.',
  'Each guest runs as its own system user (qemu-NAME) created by sysusers.d, with device access through groups.',
  null,
);

const capabilities = eachProcess(
  'process.capabilities',
  'high',
  (p) => (/[1-9a-f]/i.test(p.status.get('CapEff') ?? '0') ? statusLine(p, 'CapEff') : undefined),
  'Capabilities are privileges the guest does not have; least privilege says QEMU should hold nothing the guest could not use itself.',
  'The unit empties CapabilityBoundingSet= and AmbientCapabilities=: QEMU runs with no capabilities at all.',
  null,
);

const noNewPrivs = eachProcess(
  'process.no-new-privs',
  'medium',
  (p) => (p.status.get('NoNewPrivs') !== '1' ? statusLine(p, 'NoNewPrivs') : undefined),
  'Without no_new_privs a compromised QEMU can execute a setuid program or a file with capabilities and gain privileges the guest never had.',
  'The unit sets NoNewPrivileges=yes.',
  null,
);

const seccomp = eachProcess(
  'process.seccomp',
  'high',
  (p) => {
    const open = p.threadSeccomp.filter(([, v]) => v !== '2');
    if (!open.length) return undefined;
    const [tid, v] = open[0]!;
    return `/proc/${p.pid}/task/${tid}/status: Seccomp:\t${v}${open.length > 1 ? ` (and ${open.length - 1} more of ${p.threadSeccomp.length} threads)` : ''}`;
  },
  'A thread without a seccomp filter can make every host system call: a guest that escapes into it reaches the whole kernel attack surface.',
  'QEMU runs with -sandbox on and every sub-option denied, inside the unit’s own SystemCallFilter=: every thread is filtered.',
  'guests.N.isolation.sandbox',
);

/** -sandbox sub-options: answers field, risk id, QEMU's own default, and what allowing them leaves open. */
const SUB = [
  [
    'obsolete',
    'obsolete',
    'sandbox-obsolete',
    'deny',
    'old system calls QEMU never needs stay reachable, more host kernel code for a guest that escapes into QEMU',
  ],
  [
    'elevateprivileges',
    'elevatePrivileges',
    'sandbox-elevateprivileges',
    'allow',
    'a guest that escapes into QEMU may call setuid, setgid and their relatives and change the user it acts as',
  ],
  [
    'spawn',
    'spawn',
    'sandbox-spawn',
    'allow',
    'a guest that escapes into QEMU may fork and execute other programs (a shell, helpers) with QEMU’s access',
  ],
  [
    'resourcecontrol',
    'resourceControl',
    'sandbox-resourcecontrol',
    'allow',
    'a guest that escapes into QEMU may raise its scheduling priority and CPU affinity at the expense of other guests',
  ],
] as const;

const sandbox: AuditCheck = {
  name: 'process.sandbox',
  tool: null,
  debianPackage: null,
  run: (view) =>
    view.processes.flatMap((p): Finding[] => {
      const sb = p.cmd.sandbox;
      const enable = sb?.opts.get('enable');
      if (!sb || enable === 'off' || enable === 'false') {
        return [
          finding(
            'process.sandbox',
            'high',
            p,
            sb ? `-sandbox ${sb.raw}` : `/proc/${p.pid}/cmdline: no -sandbox option`,
            'QEMU’s seccomp sandbox takes away the system calls QEMU does not need; without it a guest that escapes into QEMU can call every system call, the whole host kernel attack surface.',
            'QEMU runs with -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny.',
            'guests.N.isolation.sandbox.enabled',
          ),
        ];
      }
      return SUB.flatMap(([opt, field, risk, qemuDefault, why]) => {
        const value = sb.opts.get(opt) ?? qemuDefault;
        if (value === 'deny') return [];
        return [
          finding(
            `process.sandbox-${opt}`,
            'medium',
            p,
            `-sandbox ${sb.raw}${sb.opts.has(opt) ? '' : ` (${opt} not given: QEMU's default is ${qemuDefault})`}`,
            `Weaker than the sandbox can be: ${why}.`,
            `The bundle denies ${opt} unless the answers accept the risk "${risk}" with a reason.`,
            `guests.N.isolation.sandbox.${field}`,
          ),
        ];
      });
    }),
};

const apparmor = eachProcess(
  'process.apparmor',
  'medium',
  (p) => {
    const label = p.apparmorLabel;
    return label === 'unconfined' || /\(complain\)$/.test(label ?? '')
      ? `/proc/${p.pid}/attr/current: ${label}`
      : undefined;
  },
  (p) =>
    p.apparmorLabel === 'unconfined'
      ? 'Mandatory access control is what keeps a compromised QEMU away from host files and other guests’ images that plain file permissions leave open.'
      : 'A profile in complain mode only logs: it keeps nothing from a compromised QEMU.',
  'Each guest gets its own enforced AppArmor profile that allows only its own disks, sockets and devices.',
  'guests.N.isolation.apparmor',
);

const readTrim = (path: string) => readText(path)?.trim();

const UNLIMITED_V1 = 2n ** 62n;

interface Limit {
  /** The cgroup file that holds a finite limit, or undefined. */
  file: string | undefined;
  /** The cgroup (controller-relative path) that holds it. */
  group: string | undefined;
  /** What was read, for evidence. */
  read: string;
}

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

export interface CgroupFacts {
  memory: Limit;
  pids: Limit;
  /** Set when the service manager placed the process in its own cgroup but the controller did not follow. */
  noController: string | undefined;
}

export function cgroupFacts(p: QemuProcess, base = CGROUP_ROOT): CgroupFacts {
  const lines = p.cgroupLines.map((l) => l.split(':'));
  const v1 = (ctrl: string) =>
    lines
      .find((f) => f[1]!.split(',').includes(ctrl))
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
        : { file: undefined, group: undefined, read: `/proc/${p.pid}/cgroup: no memory controller` };
    const pids =
      pidsPath !== undefined
        ? nearestLimit(`${base}/pids`, pidsPath, 'pids.max', (v) => v !== 'max')
        : { file: undefined, group: undefined, read: `/proc/${p.pid}/cgroup: no pids controller` };
    const orphan = managed !== undefined && managed !== '/' && (memPath === '/' || pidsPath === '/');
    return {
      memory,
      pids,
      noController: orphan
        ? `/proc/${p.pid}/cgroup: ${p.cgroupLines.filter((l) => /:(name=systemd|memory|pids):/.test(l)).join(' | ')}`
        : undefined,
    };
  }
  const path = unified ?? '/';
  const own = `${base}${path === '/' ? '' : path}`;
  const noController =
    readTrim(`${own}/memory.max`) === undefined && path !== '/'
      ? `/proc/${p.pid}/cgroup: 0::${path}; ${own}/memory.max does not exist`
      : undefined;
  return {
    memory: nearestLimit(base, path, 'memory.max', (v) => v !== 'max'),
    pids: nearestLimit(base, path, 'pids.max', (v) => v !== 'max'),
    noController,
  };
}

const cgroup: AuditCheck = {
  name: 'process.cgroup',
  tool: null,
  debianPackage: null,
  run: (view) => {
    const facts = new Map(view.processes.map((p) => [p.pid, cgroupFacts(p)]));
    const out: Finding[] = [];
    const orphans = view.processes.filter((p) => facts.get(p.pid)!.noController);
    if (orphans.length)
      out.push(
        finding(
          'host.cgroup-controllers',
          'medium',
          null,
          `${facts.get(orphans[0]!.pid)!.noController}${orphans.length > 1 ? ` (and ${plural(orphans.length - 1, 'more QEMU process', 'more QEMU processes')})` : ''}`,
          'Resource limits are part of guest isolation: a guest must not be able to exceed them. Here the service manager put QEMU in its own cgroup, but the memory and pids controllers are not available to it, so no limit it is given is enforced.',
          'The bundle’s units set MemoryMax= and TasksMax=; they take effect only where systemd has the memory and pids controllers (cgroup v2, or v1 with them mounted for systemd).',
          null,
        ),
      );
    for (const p of view.processes) {
      const f = facts.get(p.pid)!;
      if (f.noController) continue;
      for (const [kind, limit] of [
        ['memory', f.memory],
        ['pids', f.pids],
      ] as const) {
        const sharedWith = limit.group
          ? view.processes.filter(
              (o) =>
                o.pid !== p.pid &&
                !facts.get(o.pid)!.noController &&
                (kind === 'memory' ? facts.get(o.pid)!.memory : facts.get(o.pid)!.pids).group === limit.group,
            )
          : [];
        if (limit.file && !sharedWith.length) continue;
        out.push(
          finding(
            `process.cgroup-${kind}`,
            'medium',
            p,
            limit.file ? `${limit.file} (shared with ${sharedWith.map((o) => o.guest).join(', ')})` : limit.read,
            limit.file
              ? `Guest isolation includes resource limits each guest cannot exceed; a ${kind} limit shared by several guests lets one of them starve the others.`
              : `Guest isolation includes resource limits each guest cannot exceed; without a ${kind === 'memory' ? 'memory' : 'task'} limit a guest that takes over QEMU can exhaust the host's ${kind === 'memory' ? 'memory' : 'process table'}.`,
            kind === 'memory'
              ? 'Each guest’s unit has its own MemoryMax= (guest RAM plus overhead) and MemorySwapMax=0.'
              : 'Each guest’s unit has its own TasksMax=.',
            kind === 'memory' ? 'guests.N.limits.memoryMaxMiB' : 'guests.N.limits.tasksMax',
          ),
        );
      }
    }
    return out;
  },
};

/** Does this process run guest code under TCG? Its open files say for certain; the command line otherwise. */
export function acceleratorOf(p: QemuProcess): { accel: 'kvm' | 'tcg'; evidence: string } {
  if (p.openFiles) {
    const kvm = p.openFiles.find((f) => f === '/dev/kvm' || f === 'anon_inode:kvm-vm');
    return kvm
      ? { accel: 'kvm', evidence: `/proc/${p.pid}/fd: ${kvm}` }
      : {
          accel: 'tcg',
          evidence: `/proc/${p.pid}/fd: no /dev/kvm open${p.cmd.accel.length ? ` (-accel ${p.cmd.accel.join(':')})` : ''}`,
        };
  }
  const first = p.cmd.accel[0];
  return first === 'kvm'
    ? { accel: 'kvm', evidence: `-accel ${first}` }
    : {
        accel: 'tcg',
        evidence: first ? `-accel ${first}` : 'no -accel, -enable-kvm or machine accel= option (QEMU defaults to TCG)',
      };
}

const tcg = eachProcess(
  'process.tcg',
  'info',
  (p) => {
    const a = acceleratorOf(p);
    return a.accel === 'kvm' ? undefined : a.evidence;
  },
  'Under TCG QEMU gives no isolation guarantee: its code generator and the device emulation used with it were not written to resist a malicious guest, and QEMU does not treat such bugs as security bugs. Everything around this process is a best-effort fence.',
  'The bundle uses KVM unless the answers choose the emulation use case and accept the risk "emulation".',
  'useCase',
);

const sharedUid: AuditCheck = {
  name: 'process.shared-uid',
  tool: null,
  debianPackage: null,
  run: (view) => {
    const byUid = new Map<number, QemuProcess[]>();
    for (const p of view.processes) {
      const euid = p.uids[1];
      if (euid === undefined || euid === 0) continue;
      byUid.set(euid, [...(byUid.get(euid) ?? []), p]);
    }
    return [...byUid.values()]
      .filter((ps) => ps.length > 1)
      .flatMap((ps) => {
        // libvirt runs every guest as one user but gives each its own enforced profile: then only the profiles
        // keep the guests apart, which is weaker than separate users, but not nothing.
        const labels = ps.map((p) => p.apparmorLabel ?? '');
        const ownProfiles =
          labels.every((l) => l !== '' && l !== 'unconfined' && !/\(complain\)$/.test(l)) &&
          new Set(labels).size === labels.length;
        return ps.map((p) =>
          finding(
            'process.shared-uid',
            ownProfiles ? 'medium' : 'high',
            p,
            `${statusLine(p, 'Uid')} (also the user of ${ps
              .filter((o) => o !== p)
              .map((o) => `${o.guest} (pid ${o.pid})`)
              .join(', ')})`,
            ownProfiles
              ? 'Each QEMU should reach only its own guest’s resources; these guests share a user and only their AppArmor profiles keep them apart, so one profile mistake lets an escape reach the other guests’ files and processes.'
              : 'Each QEMU should reach only its own guest’s resources; guests under one user can read each other’s images and signal each other’s QEMU, so one escape reaches all of them.',
            'Each guest gets its own system user; no two guests share one.',
            null,
          ),
        );
      });
  },
};

export const processChecks: AuditCheck[] = [
  root,
  capabilities,
  noNewPrivs,
  seccomp,
  sandbox,
  apparmor,
  cgroup,
  tcg,
  sharedUid,
];
