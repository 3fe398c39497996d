// Rules that span fields: the policy the seed's least-privilege principle asks for, and the risks a choice
// takes. Each rule reports against the answers path of the field at fault.
import type { z } from 'zod';
import type { Answers, Guest } from './model.js';

export type RiskId =
  | 'emulation'
  | 'machine-unsupported'
  | 'sandbox-off'
  | 'sandbox-obsolete'
  | 'sandbox-elevateprivileges'
  | 'sandbox-spawn'
  | 'sandbox-resourcecontrol'
  | 'apparmor-off'
  | 'pci-passthrough'
  | 'usb-passthrough'
  | 'migration-plaintext'
  | 'nbd-plaintext'
  | 'spice-no-password'
  | 'tls-shared';

export interface RiskInfo {
  title: string;
  why: string;
}

export const RISKS: Record<RiskId, RiskInfo> = {
  emulation: {
    title: 'Emulation (TCG) gives no isolation guarantee',
    why:
      'QEMU only treats bugs as security bugs in the virtualization (KVM) use case. Under TCG a malicious guest ' +
      'that finds a bug in the code generator or in device emulation is not a case QEMU defends against, so ' +
      'everything else in this bundle is a best-effort fence around a process the guest may control.',
  },
  'machine-unsupported': {
    title: 'Machine type outside the security-supported list',
    why:
      'QEMU promises guest isolation only for the machine types used for virtualization (pc and q35 families on ' +
      'x86). Other boards bring device models that were never written to resist a hostile guest.',
  },
  'sandbox-off': {
    title: 'QEMU seccomp sandbox disabled',
    why:
      'Without -sandbox a guest that takes over QEMU can call every system call the unit leaves open, ' +
      'which widens the host kernel attack surface it can reach.',
  },
  'sandbox-obsolete': {
    title: 'Obsolete system calls allowed',
    why: 'Old system calls QEMU does not need stay reachable from a compromised QEMU.',
  },
  'sandbox-elevateprivileges': {
    title: 'Privilege-changing system calls allowed',
    why: 'A compromised QEMU may call setuid/setgid and friends; systemd still blocks gaining capabilities.',
  },
  'sandbox-spawn': {
    title: 'QEMU may fork and exec',
    why: 'A compromised QEMU can start other programs (helpers, shells) with its own access.',
  },
  'sandbox-resourcecontrol': {
    title: 'QEMU may change scheduling and CPU affinity',
    why: 'A compromised QEMU can raise its own scheduling priority within the limits systemd sets.',
  },
  'apparmor-off': {
    title: 'No AppArmor profile for this guest',
    why:
      'Only the unit sandbox and file permissions keep a compromised QEMU away from host files; a file that is ' +
      'readable by the guest user by mistake is then readable by the guest.',
  },
  'pci-passthrough': {
    title: 'PCI device passed through',
    why:
      'The guest drives real hardware. A device can be buggy or hostile, can keep state across guests, and ' +
      'shares its IOMMU group with every other function in that group; all of them go to this guest.',
  },
  'usb-passthrough': {
    title: 'USB device passed through',
    why: 'The guest talks to a real USB device, and the host USB stack parses whatever that device answers.',
  },
  'migration-plaintext': {
    title: 'Live migration without TLS',
    why: 'Guest memory crosses the network unencrypted and an attacker on the path can feed QEMU a crafted stream.',
  },
  'nbd-plaintext': {
    title: 'NBD export without TLS',
    why: 'Disk contents cross the network unencrypted and any client that reaches the port can read them.',
  },
  'spice-no-password': {
    title: 'SPICE without a password',
    why:
      'spice-server never checks client certificates: TLS only encrypts. Without a password anyone who reaches ' +
      'the port gets the console, keyboard and mouse.',
  },
  'tls-shared': {
    title: 'Two guests share one TLS directory',
    why:
      'Each guest reads the other’s server key: a guest that takes over its QEMU can pose as the other guest’s ' +
      'display, migration or NBD endpoint.',
  },
};

export interface RequiredRisk {
  risk: RiskId;
  guest?: string;
}

const SUPPORTED_MACHINE = /^(pc|q35|pc-i440fx-\d+\.\d+|pc-q35-\d+\.\d+(\.\d+)?)$/;

export function isSecuritySupportedMachine(machine: string): boolean {
  return SUPPORTED_MACHINE.test(machine);
}

/** The risks these answers take, in a stable order: global first, then per guest in guest order. */
export function requiredRisks(a: Pick<Answers, 'useCase' | 'guests'>): RequiredRisk[] {
  const out: RequiredRisk[] = [];
  if (a.useCase === 'emulation') out.push({ risk: 'emulation' });
  for (const g of a.guests) {
    const add = (risk: RiskId) => out.push({ risk, guest: g.name });
    if (a.useCase === 'virtualization' && !isSecuritySupportedMachine(g.machine)) add('machine-unsupported');
    const sb = g.isolation.sandbox;
    if (!sb.enabled) add('sandbox-off');
    else {
      if (sb.obsolete === 'allow') add('sandbox-obsolete');
      if (sb.elevatePrivileges === 'allow') add('sandbox-elevateprivileges');
      if (sb.spawn === 'allow') add('sandbox-spawn');
      if (sb.resourceControl === 'allow') add('sandbox-resourcecontrol');
    }
    if (!g.isolation.apparmor) add('apparmor-off');
    if (g.passthrough.pci.length > 0) add('pci-passthrough');
    if (g.passthrough.usb.length > 0) add('usb-passthrough');
    if (g.migration?.enabled && !g.migration.tls) add('migration-plaintext');
    if (g.nbd?.enabled && !g.nbd.tls) add('nbd-plaintext');
    if (g.display.mode === 'spice-tls' && !g.display.passwordFile) add('spice-no-password');
    const mine = new Set(tlsDirs(g));
    if (a.guests.some((o) => o.name !== g.name && tlsDirs(o).some((d) => mine.has(d)))) add('tls-shared');
  }
  return out;
}

/** The TLS directories a guest reads (display, migration, NBD). */
export function tlsDirs(g: Guest): string[] {
  const out: string[] = [];
  if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls') out.push(g.display.tlsDir);
  for (const r of [g.migration, g.nbd]) if (r?.enabled && r.tls && r.tlsDir) out.push(r.tlsDir);
  return [...new Set(out)];
}

/** Addresses a guest on user-mode networking must not reach: the host's loopback and link-local ranges. */
export const USER_NET_DENY = ['127.0.0.0/8', '::1/128', '169.254.0.0/16', 'fe80::/10'];

function loopbackOrLinkLocal(addr: string): boolean {
  const a = addr.toLowerCase();
  return /^127\./.test(a) || /^169\.254\./.test(a) || a === '::1' || /^fe[89ab][0-9a-f]?:/.test(a) || /^::ffff:(127|169\.254)\./.test(a);
}

const riskKey = (r: { risk: string; guest?: string }) => `${r.risk}@${r.guest ?? ''}`;

export const SYSTEM_DIRS = ['/etc', '/usr', '/boot', '/proc', '/sys', '/dev', '/bin', '/sbin', '/lib', '/lib64', '/run'];

export function underDir(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir + '/');
}

export function defaultTapDevice(guestName: string): string {
  return `qh-${guestName}`.slice(0, 15).replace(/-+$/, '');
}

export function tapDevice(g: Guest): string | undefined {
  if (g.network.mode !== 'tap') return undefined;
  return g.network.tapDevice ?? defaultTapDevice(g.name);
}

type Ctx = z.core.$RefinementCtx<unknown>;

export function checkAnswers(a: Answers, ctx: Ctx): void {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: 'custom', path, message, input: undefined });

  const names = new Map<string, number>();
  const writers = new Map<string, string>();
  const readers = new Map<string, string[]>();
  const taps = new Map<string, string>();
  const pciAddr = new Map<string, string>();
  const pciGroup = new Map<number, string>();
  const usb = new Map<string, string>();
  const listeners = new Map<string, string>();

  a.guests.forEach((g, gi) => {
    const at = (...rest: (string | number)[]) => ['guests', gi, ...rest];
    const incoming = a.guests.findIndex((o) => o.migration?.enabled && `${o.name}-incoming` === g.name);
    if (incoming >= 0)
      issue(at('name'), `"${g.name}" would share its unit name with the migration destination unit of guests.${incoming}; choose another name`);
    const first = names.get(g.name);
    if (first !== undefined) issue(at('name'), `"${g.name}" is already the name of guests.${first}; names must be unique`);
    else names.set(g.name, gi);

    if (a.useCase === 'emulation' && g.cpu.model === 'host')
      issue(at('cpu', 'model'), '"host" needs KVM; the emulation use case runs under TCG (use "max" or a named model)');

    const seenInGuest = new Set<string>();
    g.disks.forEach((d, di) => {
      if (seenInGuest.has(d.path)) issue(at('disks', di, 'path'), `${d.path} is attached twice to this guest`);
      seenInGuest.add(d.path);
      if (d.blockDevice && !underDir(d.path, '/dev'))
        issue(at('disks', di, 'path'), 'is marked blockDevice but is not under /dev');
      if (!d.blockDevice && !d.readOnly) {
        const sys = SYSTEM_DIRS.find((s) => underDir(d.path, s));
        if (sys) issue(at('disks', di, 'path'), `is writable and under the system directory ${sys}; keep guest disks elsewhere (e.g. /srv or /var/lib)`);
      }
      if (d.blockDevice && d.format !== 'raw') issue(at('disks', di, 'format'), 'must be "raw" for a block device');
      const owner = writers.get(d.path);
      if (d.readOnly) {
        if (owner && owner !== g.name)
          issue(at('disks', di, 'path'), `is written by guest "${owner}"; a disk another guest writes cannot be shared`);
        readers.set(d.path, [...(readers.get(d.path) ?? []), g.name]);
      } else {
        if (owner && owner !== g.name)
          issue(at('disks', di, 'path'), `is already a writable disk of guest "${owner}"; one writable disk is never shared`);
        const others = (readers.get(d.path) ?? []).filter((n) => n !== g.name);
        if (others.length > 0)
          issue(at('disks', di, 'path'), `is read by guest "${others[0]}"; a disk another guest reads cannot be writable here`);
        writers.set(d.path, g.name);
      }
    });

    const tap = tapDevice(g);
    if (tap) {
      const other = taps.get(tap);
      if (other) issue(at('network', 'tapDevice'), `tap device "${tap}" is already used by guest "${other}"; set a unique network.tapDevice`);
      taps.set(tap, g.name);
    }

    g.passthrough.pci.forEach((p, pi) => {
      const byAddr = pciAddr.get(p.address);
      if (byAddr) issue(at('passthrough', 'pci', pi, 'address'), `${p.address} is already passed through to guest "${byAddr}"`);
      pciAddr.set(p.address, g.name);
      const byGroup = pciGroup.get(p.iommuGroup);
      if (byGroup && byGroup !== g.name)
        issue(at('passthrough', 'pci', pi, 'iommuGroup'), `IOMMU group ${p.iommuGroup} already belongs to guest "${byGroup}"; a group goes to one guest only`);
      pciGroup.set(p.iommuGroup, g.name);
    });
    g.passthrough.usb.forEach((u, ui) => {
      const key = `${u.vendorId}:${u.productId}`;
      const other = usb.get(key);
      if (other) issue(at('passthrough', 'usb', ui), `USB device ${key} is already passed through to guest "${other}"`);
      usb.set(key, g.name);
    });

    const listen = (path: (string | number)[], addr: string, port: number) => {
      if (g.network.mode === 'user' && loopbackOrLinkLocal(addr))
        issue(path.slice(0, -1).concat('listen'), `${addr} is a loopback or link-local address, which this guest’s unit denies (IPAddressDeny=) because it uses user-mode networking; listen on another address`);
      const key = `${addr}:${port}`;
      const other = listeners.get(key);
      if (other) issue(path, `${key} is already used by ${other}`);
      listeners.set(key, `guests.${gi} (${g.name})`);
    };
    if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls') listen(at('display', 'port'), g.display.listen, g.display.port);
    for (const kind of ['migration', 'nbd'] as const) {
      const r = g[kind];
      if (!r?.enabled) continue;
      listen(at(kind, 'port'), r.listen, r.port);
      if (r.tls && !r.tlsDir) issue(at(kind, 'tlsDir'), 'is required when tls is true');
    }

    const l = g.limits;
    if (l.memoryMaxMiB !== undefined && l.memoryMaxMiB < g.memoryMiB)
      issue(at('limits', 'memoryMaxMiB'), `must be at least memoryMiB (${g.memoryMiB}); QEMU needs the guest's RAM plus its own overhead`);
    if (l.memoryHighMiB !== undefined && l.memoryHighMiB < g.memoryMiB)
      issue(at('limits', 'memoryHighMiB'), `must be at least memoryMiB (${g.memoryMiB})`);
    l.ioBandwidth.forEach((b, bi) => {
      if (!underDir(b.device, '/dev')) issue(at('limits', 'ioBandwidth', bi, 'device'), 'must be a block device under /dev');
    });
  });

  const required = requiredRisks(a);
  const requiredKeys = new Set(required.map(riskKey));
  const acceptedKeys = new Set<string>();
  a.acceptedRisks.forEach((r, ri) => {
    const key = riskKey(r);
    if (acceptedKeys.has(key)) issue(['acceptedRisks', ri], `accepts "${r.risk}"${r.guest ? ` for guest "${r.guest}"` : ''} twice`);
    acceptedKeys.add(key);
    if (!(r.risk in RISKS)) issue(['acceptedRisks', ri, 'risk'], `"${r.risk}" is not a known risk (known: ${Object.keys(RISKS).join(', ')})`);
    else if (!requiredKeys.has(key))
      issue(['acceptedRisks', ri], `accepts "${r.risk}"${r.guest ? ` for guest "${r.guest}"` : ''}, but the answers do not take that risk; remove it`);
  });
  for (const r of required) {
    if (acceptedKeys.has(riskKey(r))) continue;
    const gi = r.guest === undefined ? -1 : a.guests.findIndex((g) => g.name === r.guest);
    issue(
      gi < 0 ? ['useCase'] : riskPath(r.risk, gi),
      `takes the risk "${r.risk}" (${RISKS[r.risk].title}); add {"risk": "${r.risk}"${r.guest ? `, "guest": "${r.guest}"` : ''}, "reason": "..."} to acceptedRisks`,
    );
  }
}

function riskPath(risk: RiskId, gi: number): (string | number)[] {
  const g = ['guests', gi];
  switch (risk) {
    case 'emulation':
      return ['useCase'];
    case 'machine-unsupported':
      return [...g, 'machine'];
    case 'sandbox-off':
      return [...g, 'isolation', 'sandbox', 'enabled'];
    case 'sandbox-obsolete':
      return [...g, 'isolation', 'sandbox', 'obsolete'];
    case 'sandbox-elevateprivileges':
      return [...g, 'isolation', 'sandbox', 'elevatePrivileges'];
    case 'sandbox-spawn':
      return [...g, 'isolation', 'sandbox', 'spawn'];
    case 'sandbox-resourcecontrol':
      return [...g, 'isolation', 'sandbox', 'resourceControl'];
    case 'apparmor-off':
      return [...g, 'isolation', 'apparmor'];
    case 'pci-passthrough':
      return [...g, 'passthrough', 'pci'];
    case 'usb-passthrough':
      return [...g, 'passthrough', 'usb'];
    case 'migration-plaintext':
      return [...g, 'migration', 'tls'];
    case 'nbd-plaintext':
      return [...g, 'nbd', 'tls'];
    case 'spice-no-password':
      return [...g, 'display', 'passwordFile'];
    case 'tls-shared':
      return [...g];
  }
}
