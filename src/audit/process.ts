// Checks on each QEMU process itself: who it runs as, what the kernel lets it do (capabilities, no_new_privs,
// seccomp on every thread), QEMU's own -sandbox, its cgroup limits, the accelerator, the options QEMU has removed
// since, and whether guests share a user; its label is judged by each confinement backend's own checks
// (src/confine/). Each judges the facts live.ts read against the process's expectation: QEMU's security
// documentation for `audit`, the installed unit for `status`.
import { CONFINEMENT } from '../confine/index.js';
import { describeRemoval, removedOption } from '../releases.js';
import { isOn, optsOrJson } from './cmdline.js';
import type { Expectation } from './expect.js';
import {
  eachProcess,
  finding,
  type AuditCheck,
  type Finding,
  type Judged,
  type LiveProcess,
  type QemuProcess,
} from './types.js';
import { plural } from '../words.js';

const statusLine = (p: LiveProcess, key: string) =>
  `/proc/${p.pid}/status: ${key}:\t${p.status.get(key) ?? '(missing)'}`;

// What is wrong with a process, QEMU or helper (src/audit/helpers.ts judges the helpers with these), against what
// it is held to: undefined when nothing is.

export const judgeRoot = (p: LiveProcess): Judged | undefined =>
  p.uids.some((u) => u === 0) ? { summary: 'runs as root', evidence: statusLine(p, 'Uid') } : undefined;

export function judgeUser(p: LiveProcess, want: Expectation): Judged | undefined {
  const u = want.user;
  if (!u || u.uid === null || !p.uids.length || p.uids.some((x) => x === 0) || p.uids.every((x) => x === u.uid))
    return undefined;
  return { summary: `runs as uid ${p.uids.join('/')}, not ${u.name} (${u.uid})`, evidence: statusLine(p, 'Uid') };
}

export function judgeCapabilities(p: LiveProcess, want: Expectation): Judged | undefined {
  const capEff = p.status.get('CapEff') ?? '0';
  return want.noCapabilities && /[1-9a-f]/i.test(capEff)
    ? { summary: `holds capabilities (CapEff ${capEff})`, evidence: statusLine(p, 'CapEff') }
    : undefined;
}

export const judgeNoNewPrivs = (p: LiveProcess, want: Expectation): Judged | undefined =>
  want.noNewPrivs && p.status.has('NoNewPrivs') && p.status.get('NoNewPrivs') !== '1'
    ? { summary: 'NoNewPrivs is off', evidence: statusLine(p, 'NoNewPrivs') }
    : undefined;

export function judgeSeccomp(p: LiveProcess, want: Expectation): Judged | undefined {
  const open = p.threadSeccomp.filter(([, v]) => v !== '2');
  if (!want.seccomp || !open.length) return undefined;
  const [tid, v] = open[0]!;
  const tids = open.slice(0, 8).map(([t]) => t);
  return {
    summary: `threads without a seccomp filter: ${tids.join(', ')}${open.length > tids.length ? ` and ${open.length - tids.length} more` : ''}`,
    evidence: `/proc/${p.pid}/task/${tid}/status: Seccomp:\t${v}${open.length > 1 ? ` (and ${open.length - 1} more of ${p.threadSeccomp.length} threads)` : ''}`,
  };
}

const root = eachProcess(
  'process.root',
  'high',
  'process',
  judgeRoot,
  'QEMU must run as an unprivileged user: a guest that takes over device emulation acts as this process, and as root it owns the whole host.',
  'Each guest runs as its own system user (qemu-NAME) created by sysusers.d, with device access through groups.',
  null,
);

const user = eachProcess(
  'process.user',
  'high',
  'process',
  judgeUser,
  (_p, want) =>
    `The installed unit runs this guest as ${want.user?.name}, its own user; as another user it reaches what that user reaches, another guest's files included.`,
  'Each guest runs as its own system user (qemu-NAME) created by sysusers.d, with device access through groups.',
  null,
);

const capabilities = eachProcess(
  'process.capabilities',
  'high',
  'process',
  judgeCapabilities,
  'Capabilities are privileges the guest does not have; least privilege says QEMU should hold nothing the guest could not use itself.',
  'The unit empties CapabilityBoundingSet= and AmbientCapabilities=: QEMU runs with no capabilities at all.',
  null,
);

const noNewPrivs = eachProcess(
  'process.no-new-privs',
  'medium',
  'process',
  judgeNoNewPrivs,
  'Without no_new_privs a compromised QEMU can execute a setuid program or a file with capabilities and gain privileges the guest never had.',
  'The unit sets NoNewPrivileges=yes.',
  null,
);

const seccomp = eachProcess(
  'process.seccomp',
  'high',
  'process',
  judgeSeccomp,
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

/** Whether QEMU's seccomp sandbox is on: QEMU reads `enable` as a boolean, and anything but on, yes, true or y
 * is not on (off, no, false and n turn it off; any other value keeps QEMU from starting at all). */
export const sandboxOn = (p: QemuProcess) => isOn(p.cmd.sandbox?.opts.get('enable'));

const sandbox: AuditCheck = {
  name: 'process.sandbox',
  tool: null,
  debianPackage: null,
  judges: 'command line',
  run: (view) =>
    view.processes.flatMap((p): Finding[] => {
      const sb = p.cmd.sandbox;
      if (!sb || !sandboxOn(p)) {
        return [
          finding(
            'process.sandbox',
            'high',
            p,
            sb ? `QEMU's seccomp sandbox is off (-sandbox ${sb.raw})` : 'runs without -sandbox',
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
            `-sandbox ${opt}=${value}${sb.opts.has(opt) ? '' : ' (QEMU’s default)'}`,
            `-sandbox ${sb.raw}${sb.opts.has(opt) ? '' : ` (${opt} not given: QEMU's default is ${qemuDefault})`}`,
            `Weaker than the sandbox can be: ${why}.`,
            `The bundle denies ${opt} unless the answers accept the risk "${risk}" with a reason.`,
            `guests.N.isolation.sandbox.${field}`,
          ),
        ];
      });
    }),
};

const cgroup: AuditCheck = {
  name: 'process.cgroup',
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view, expect) => {
    const out: Finding[] = [];
    // Processes whose cgroup has no memory or pids controller are reported once, for the host, by
    // host.cgroup-controllers: their limits cannot be judged.
    const judged = view.processes.filter((p) => p.cgroup && !p.cgroup.noController);
    for (const p of judged) {
      const f = p.cgroup!;
      const want = expect(p);
      for (const [kind, limit, wanted, own] of [
        ['memory', f.memory, want.memory, f.own.memoryMax],
        ['pids', f.pids, want.pids, f.own.pidsMax],
      ] as const) {
        const name = `process.cgroup-${kind}`;
        const file = kind === 'memory' ? 'memory.max' : 'pids.max';
        const bundle =
          kind === 'memory'
            ? 'Each guest’s unit has its own MemoryMax= (guest RAM plus overhead) and MemorySwapMax=0.'
            : 'Each guest’s unit has its own TasksMax=.';
        const answer = kind === 'memory' ? 'guests.N.limits.memoryMaxMiB' : 'guests.N.limits.tasksMax';
        if (wanted === undefined) continue;
        if (wanted !== 'own') {
          if (own === null || own === wanted) continue;
          out.push(
            finding(
              name,
              'medium',
              p,
              `${file} is ${own}, not ${wanted}`,
              `${f.path ?? '?'}/${file}: ${own}`,
              `The installed unit limits this guest's ${kind === 'memory' ? 'memory' : 'tasks'} to ${wanted}; the limit the kernel applies is another, so the guest is held to something other than what was installed.`,
              bundle,
              answer,
            ),
          );
          continue;
        }
        const sharedWith = limit.group
          ? judged.filter(
              (o) => o.pid !== p.pid && (kind === 'memory' ? o.cgroup!.memory : o.cgroup!.pids).group === limit.group,
            )
          : [];
        if (limit.file && !sharedWith.length) continue;
        out.push(
          finding(
            name,
            'medium',
            p,
            limit.file
              ? `${kind} limit shared with ${sharedWith.map((o) => o.guest).join(', ')}`
              : `no ${kind === 'memory' ? 'memory' : 'task'} limit`,
            limit.file ? `${limit.file} (shared with ${sharedWith.map((o) => o.guest).join(', ')})` : limit.read,
            limit.file
              ? `Guest isolation includes resource limits each guest cannot exceed; a ${kind} limit shared by several guests lets one of them starve the others.`
              : `Guest isolation includes resource limits each guest cannot exceed; without a ${kind === 'memory' ? 'memory' : 'task'} limit a guest that takes over QEMU can exhaust the host's ${kind === 'memory' ? 'memory' : 'process table'}.`,
            bundle,
            answer,
          ),
        );
      }
    }
    return out;
  },
};

const cgroupControllers: AuditCheck = {
  name: 'host.cgroup-controllers',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: (view) => {
    const orphans = view.processes.filter((p) => p.cgroup?.noController);
    if (!orphans.length) return [];
    return [
      finding(
        'host.cgroup-controllers',
        'medium',
        null,
        'QEMU runs in cgroups without the memory and pids controllers: no limit is enforced',
        `${orphans[0]!.cgroup!.noController}${orphans.length > 1 ? ` (and ${plural(orphans.length - 1, 'more QEMU process', 'more QEMU processes')})` : ''}`,
        'Resource limits are part of guest isolation: a guest must not be able to exceed them. Here the service manager put QEMU in its own cgroup, but the memory and pids controllers are not available to it, so no limit it is given is enforced.',
        'The bundle’s units set MemoryMax= and TasksMax=; they take effect only where systemd has the memory and pids controllers (cgroup v2, or v1 with them mounted for systemd).',
        null,
      ),
    ];
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
  'command line',
  (p) => {
    const a = acceleratorOf(p);
    return a.accel === 'kvm' ? undefined : { summary: 'runs guest code under TCG', evidence: a.evidence };
  },
  'Under TCG QEMU gives no isolation guarantee: its code generator and the device emulation used with it were not written to resist a malicious guest, and QEMU does not treat such bugs as security bugs. Everything around this process is a best-effort fence.',
  'The bundle uses KVM unless the answers choose the emulation use case and accept the risk "emulation".',
  'useCase',
);

/**
 * Options that QEMU removed between Debian 12's QEMU and Debian 13's (src/releases.ts, the table `import` reads
 * too): the process runs today, but a newer QEMU refuses to start it as it is written.
 */
const removedOptions: AuditCheck = {
  name: 'process.removed-option',
  tool: null,
  debianPackage: null,
  judges: 'command line',
  run: (view) =>
    view.processes.flatMap((p) =>
      p.cmd.options.flatMap((o) => {
        const r = o.name && removedOption(o.name, (implied) => optsOrJson(o.value ?? '', implied).opts);
        if (!r) return [];
        return [
          finding(
            'process.removed-option',
            'low',
            p,
            `uses ${r.option}, which QEMU ${r.removedIn} removed; ${r.instead} replaces it`,
            `-${o.name}${o.value === undefined ? '' : ` ${o.value}`}`,
            `${describeRemoval(r)}. Once the host's QEMU is that new, this guest does not start as it is written: nothing that protects it is lost, but the guest is down until its command line is changed.`,
            r.bundle,
            r.answer ? `guests.N.${r.answer}` : null,
          ),
        ];
      }),
    ),
};

const sharedUid: AuditCheck = {
  name: 'process.shared-uid',
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view) => {
    const byUid = new Map<number, QemuProcess[]>();
    for (const p of view.processes) {
      const euid = p.uids[1];
      if (euid === undefined || euid === 0 || Number.isNaN(euid)) continue;
      byUid.set(euid, [...(byUid.get(euid) ?? []), p]);
    }
    return [...byUid.values()]
      .filter((ps) => ps.length > 1)
      .flatMap((ps) => {
        // libvirt runs every guest as one user but gives each its own enforced profile (or SELinux context):
        // then only the labels keep the guests apart, which is weaker than separate users, but not nothing.
        const apart = CONFINEMENT.find((b) => {
          const labels = ps.map((p) => p.labels[b.id]);
          return labels.every((l) => l !== undefined && b.enforces(l)) && new Set(labels).size === labels.length;
        });
        return ps.map((p) => {
          const others = ps.filter((o) => o !== p);
          const named = others.slice(0, 8).map((o) => `${o.guest} (pid ${o.pid})`);
          const list = `${named.join(', ')}${others.length > named.length ? ` and ${others.length - named.length} more` : ''}`;
          return finding(
            'process.shared-uid',
            apart ? 'medium' : 'high',
            p,
            `shares uid ${p.uids[1]} with ${list}`,
            `${statusLine(p, 'Uid')} (also the user of ${list})`,
            apart
              ? `Each QEMU should reach only its own guest’s resources; these guests share a user and only their ${apart.name} ${apart.noun}s keep them apart, so one ${apart.noun} mistake lets an escape reach the other guests’ files and processes.`
              : 'Each QEMU should reach only its own guest’s resources; guests under one user can read each other’s images and signal each other’s QEMU, so one escape reaches all of them.',
            'Each guest gets its own system user; no two guests share one.',
            null,
          );
        });
      });
  },
};

export const processChecks: AuditCheck[] = [
  root,
  user,
  capabilities,
  noNewPrivs,
  seccomp,
  sandbox,
  cgroup,
  cgroupControllers,
  tcg,
  removedOptions,
  sharedUid,
];
