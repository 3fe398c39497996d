// Rules that span fields: the policy the least-privilege principle of QEMU's security documentation asks for, and the
// risks a choice takes. The rules are a table (RULES), each row reporting against the answers path of the field at
// fault; where a file may be is places.ts, what makes a network identity is identity.ts.
import type { z } from 'zod';
import { hostInterfaceName, loopbackOrLinkLocal, macAddress, sameListener, tapDevice } from './identity.js';
import { confinementOf } from './confinement.js';
import type { Answers, Guest } from './model.js';
import * as N from './names.js';
import { credentialPlace, HIDDEN_DIRS, notStorage, restrictedFile, sharePlace, underDir } from './places.js';
import { machineDeprecated, machineKnown, RELEASES } from './releases.js';

export type RiskId =
  | 'emulation'
  | 'machine-unsupported'
  | 'sandbox-off'
  | 'sandbox-obsolete'
  | 'sandbox-elevateprivileges'
  | 'sandbox-spawn'
  | 'sandbox-resourcecontrol'
  | 'apparmor-off'
  | 'confinement-none'
  | 'selinux-execmem'
  | 'pci-passthrough'
  | 'usb-passthrough'
  | 'migration-plaintext'
  | 'nbd-plaintext'
  | 'spice-no-password'
  | 'tls-shared'
  | 'slirp'
  | 'share-writable';

interface RiskInfo {
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
  'confinement-none': {
    title: 'No mandatory access control on the host',
    why:
      'No AppArmor or SELinux policy confines any guest’s QEMU: only the unit sandbox, its own user and file ' +
      'permissions keep a compromised QEMU away from host files and other guests’ images; a file that is readable ' +
      'by a guest user by mistake is then readable by that guest.',
  },
  'selinux-execmem': {
    title: 'SELinux lets the virt domain map writable code (TCG)',
    why:
      'Under TCG QEMU writes the code it runs, so the virt domain must be allowed memory that is both writable and ' +
      'executable (what the boolean virt_use_execmem grants): for every guest in svirt_t on the host, libvirt’s ' +
      'too. A QEMU a guest takes over can then map code of its own without a file to load it from.',
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
  slirp: {
    title: 'User-mode network inside QEMU (slirp)',
    why:
      'slirp is a whole TCP/IP stack inside the QEMU process: a guest that exploits it is in QEMU itself, which ' +
      'holds the guest’s disks, and QEMU’s unit must keep IP sockets for it. passt does the same work in a unit of ' +
      'its own and leaves QEMU without any IP; slirp is for a host without passt.',
  },
  'share-writable': {
    title: 'A shared folder the guest may write',
    why:
      'What the guest writes lands on the host: a compromised guest can fill the folder, plant files that a host ' +
      'program later trusts, or destroy what it holds. Read-only is the default; a writable folder needs a reason.',
  },
  'tls-shared': {
    title: 'Two guests share one TLS directory',
    why:
      'Each guest reads the other’s server key: a guest that takes over its QEMU can pose as the other guest’s ' +
      'display, migration or NBD endpoint.',
  },
};

interface RequiredRisk {
  risk: RiskId;
  guest?: string;
}

const SUPPORTED_MACHINE = /^(pc|q35|pc-i440fx-\d+\.\d+|pc-q35-\d+\.\d+(\.\d+)?)$/;

export function isSecuritySupportedMachine(machine: string): boolean {
  return SUPPORTED_MACHINE.test(machine);
}

/** The risks these answers take, in a stable order: global first, then per guest in guest order. */
export function requiredRisks(a: Pick<Answers, 'useCase' | 'host' | 'guests'>): RequiredRisk[] {
  const out: RequiredRisk[] = [];
  if (a.useCase === 'emulation') out.push({ risk: 'emulation' });
  const confinement = confinementOf(a);
  if (confinement === 'none') out.push({ risk: 'confinement-none' });
  if (confinement === 'selinux' && a.useCase === 'emulation') out.push({ risk: 'selinux-execmem' });
  const readers = tlsReaders(a.guests);
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
    if (confinement === 'apparmor' && !g.isolation.apparmor) add('apparmor-off');
    if (g.passthrough.pci.length > 0) add('pci-passthrough');
    if (g.passthrough.usb.length > 0) add('usb-passthrough');
    if (g.migration?.enabled && !g.migration.tls) add('migration-plaintext');
    if (g.nbd?.enabled && !g.nbd.tls) add('nbd-plaintext');
    if (g.display.mode === 'spice-tls' && !g.display.passwordFile) add('spice-no-password');
    if (tlsDirs(g).some((d) => readers.get(d)! > 1)) add('tls-shared');
    if (g.network.mode === 'user' && g.network.backend === 'slirp') add('slirp');
    if (g.shares.some((sh) => !sh.readOnly)) add('share-writable');
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

/** Every TLS directory the guests read, with how many of them read it. */
export function tlsReaders(guests: readonly Guest[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const g of guests) for (const d of tlsDirs(g)) out.set(d, (out.get(d) ?? 0) + 1);
  return out;
}

const riskKey = (r: { risk: string; guest?: string }) => `${r.risk}@${r.guest ?? ''}`;

/** Groups that already grant something on a host: never the group qemu-harden hands out for /dev/kvm or /dev/net/tun. */
export const PRIVILEGED_GROUPS = [
  'root',
  'daemon',
  'bin',
  'sys',
  'adm',
  'tty',
  'disk',
  'lp',
  'mail',
  'news',
  'uucp',
  'man',
  'proxy',
  'kmem',
  'dialout',
  'fax',
  'voice',
  'cdrom',
  'floppy',
  'tape',
  'sudo',
  'audio',
  'dip',
  'www-data',
  'backup',
  'operator',
  'list',
  'irc',
  'src',
  'gnats',
  'shadow',
  'utmp',
  'video',
  'sasl',
  'plugdev',
  'staff',
  'games',
  'users',
  'nogroup',
  'wheel',
  'input',
  'render',
  'sgx',
  'netdev',
  'lpadmin',
  'ssl-cert',
  'crontab',
  'messagebus',
  'systemd-journal',
  'systemd-network',
  'systemd-resolve',
  'systemd-timesync',
  'systemd-coredump',
  'docker',
  'lxd',
  'libvirt',
  'libvirt-qemu',
  'libvirtd',
  'qemu',
  'tss',
  'polkitd',
  '_ssh',
  'ssh',
];

/**
 * Machine types the target's QEMU does not take as they are: a versioned type newer than that QEMU, which it does
 * not have (the guest cannot start there: `verify` fails on it, generate warns), and one it deprecates (QEMU says
 * so at every start and deletes such types three years later: generate and verify warn). A newer versioned type
 * of the same family, or q35 (the newest), gives the guest the same hardware.
 */
export function machineProblems(a: Answers): { missing: string[]; deprecated: string[] } {
  const release = RELEASES[a.host.target];
  const qemu = `QEMU ${release.qemu.major}.${release.qemu.minor} of ${release.name}`;
  const out = { missing: [] as string[], deprecated: [] as string[] };
  a.guests.forEach((g, gi) => {
    if (!machineKnown(g.machine, release))
      out.missing.push(
        `guests.${gi}.machine: "${g.machine}" is newer than ${qemu} (host.target), which has no such machine type and cannot start the guest; use q35, or a versioned type up to ${release.qemu.major}.${release.qemu.minor}`,
      );
    else if (machineDeprecated(g.machine, release))
      out.deprecated.push(
        `guests.${gi}.machine: "${g.machine}" is deprecated by ${qemu} (machine types older than 3 years are deleted 3 years after that); move the guest to a newer versioned type or q35`,
      );
  });
  return out;
}

type Path = (string | number)[];
type Report = (path: Path, message: string) => void;

/**
 * A rule that spans fields: what it keeps true, the answers fields it reports against (patterns where N is a
 * guest's index and I a list entry's, `(a|b)` either name), and the check. `checkAnswers` runs the table in order.
 */
export interface Rule {
  keeps: string;
  at: string[];
  check(a: Answers, report: Report): void;
}

/** Does a reported path fit a rule's pattern? */
export function fitsPattern(pattern: string, path: string): boolean {
  const re = pattern
    .split('.')
    .map((p) => (p === 'N' || p === 'I' ? '\\d+' : p))
    .join('\\.');
  return new RegExp(`^${re}$`).test(path);
}

type GuestCheck = (g: Guest, at: (...p: Path) => Path, report: Report, a: Answers, gi: number) => void;

/** A rule judged on each guest alone: `at` builds a path inside that guest. */
function eachGuest(keeps: string, at: string[], check: GuestCheck): Rule {
  return {
    keeps,
    at,
    check: (a, report) => a.guests.forEach((g, gi) => check(g, (...p) => ['guests', gi, ...p], report, a, gi)),
  };
}

const REMOTES = ['migration', 'nbd'] as const;
const BOOT_FILES = ['kernel', 'initrd', 'deviceTree'] as const;
const FIRMWARE_FILES = ['code', 'varsTemplate'] as const;

/** The files a guest names, each with its field and what it is to the guest. */
function filesNamed(g: Guest): { at: Path; path: string; what: string }[] {
  const out: { at: Path; path: string; what: string }[] = [];
  g.disks.forEach((d, di) => out.push({ at: ['disks', di, 'path'], path: d.path, what: 'disk' }));
  if (g.boot) for (const k of BOOT_FILES) if (g.boot[k]) out.push({ at: ['boot', k], path: g.boot[k]!, what: k });
  if (g.firmware.type === 'uefi')
    for (const k of FIRMWARE_FILES) out.push({ at: ['firmware', k], path: g.firmware[k], what: `firmware ${k}` });
  return out;
}

/** The credentials a guest reads: its TLS directories (read as a whole) and its SPICE password file. */
function credentialsOf(g: Guest): { at: Path; path: string; kind: 'directory' | 'file' }[] {
  const out: { at: Path; path: string; kind: 'directory' | 'file' }[] = [];
  if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
    out.push({ at: ['display', 'tlsDir'], path: g.display.tlsDir, kind: 'directory' });
  for (const k of REMOTES) {
    const r = g[k];
    if (r?.enabled && r.tls && r.tlsDir && !out.some((o) => o.path === r.tlsDir))
      out.push({ at: [k, 'tlsDir'], path: r.tlsDir, kind: 'directory' });
  }
  if (g.display.mode === 'spice-tls' && g.display.passwordFile)
    out.push({ at: ['display', 'passwordFile'], path: g.display.passwordFile, kind: 'file' });
  return out;
}

interface Listener {
  at: Path;
  addr: string;
  port: number;
  protocol: 'tcp' | 'udp';
  /** Whose unit listens: QEMU's, or the user-mode network's (passt, or slirp in QEMU). */
  by: 'qemu' | 'network';
}

/** The listeners of a guest: display, migration and NBD, and the ports its user-mode network forwards, each with
 * the field of its address. */
function listenersOf(g: Guest): Listener[] {
  const out: Listener[] = [];
  const tcp = { protocol: 'tcp' as const, by: 'qemu' as const };
  if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
    out.push({ at: ['display'], addr: g.display.listen, port: g.display.port, ...tcp });
  for (const k of REMOTES) {
    const r = g[k];
    if (r?.enabled) out.push({ at: [k], addr: r.listen, port: r.port, ...tcp });
  }
  if (g.network.mode === 'user')
    g.network.forwards.forEach((f, fi) =>
      out.push({ at: ['network', 'forwards', fi], addr: f.listen, port: f.port, protocol: f.protocol, by: 'network' }),
    );
  return out;
}

const hiddenDir = (path: string) => HIDDEN_DIRS.find((h) => underDir(path, h.dir));

/** A device path udev can match by name: letters, digits and "._:+@=,-" in each segment. */
const DEV_PATH = /^\/dev\/[A-Za-z0-9._:+@=,-]+(\/[A-Za-z0-9._:+@=,-]+)*$/;

export const RULES: Rule[] = [
  {
    keeps: 'guest names are unique',
    at: ['guests.N.name'],
    check(a, report) {
      const first = new Map<string, number>();
      a.guests.forEach((g, gi) => {
        const f = first.get(g.name);
        if (f !== undefined)
          report(['guests', gi, 'name'], `"${g.name}" is already the name of guests.${f}; names must be unique`);
        else first.set(g.name, gi);
      });
    },
  },
  eachGuest('a guest is never named as another’s migration destination unit', ['guests.N.name'], (g, at, report, a) => {
    const incoming = a.guests.findIndex((o) => o.migration?.enabled && `${o.name}-incoming` === g.name);
    if (incoming >= 0)
      report(
        at('name'),
        `"${g.name}" would share its unit name with the migration destination unit of guests.${incoming}; choose another name`,
      );
  }),
  eachGuest('Secure Boot runs on q35', ['guests.N.firmware.secureBoot'], (g, at, report) => {
    if (g.firmware.type === 'uefi' && g.firmware.secureBoot && !/^(q35|pc-q35-[0-9.]+)$/.test(g.machine))
      report(
        at('firmware', 'secureBoot'),
        `needs a q35 machine type (is "${g.machine}"): Secure Boot relies on SMM, which QEMU offers on q35`,
      );
  }),
  eachGuest('Secure Boot is not given a kernel it cannot check', ['guests.N.boot.kernel'], (g, at, report) => {
    if (g.firmware.type === 'uefi' && g.firmware.secureBoot && g.boot)
      report(
        at('boot', 'kernel'),
        'cannot be used with Secure Boot: OVMF starts a kernel given to QEMU directly even when its signature check fails, so Secure Boot would not cover it; boot from a disk (its EFI system partition), or turn Secure Boot off',
      );
  }),
  eachGuest('the host CPU model needs KVM', ['guests.N.cpu.model'], (g, at, report, a) => {
    if (a.useCase === 'emulation' && g.cpu.model === 'host')
      report(
        at('cpu', 'model'),
        '"host" needs KVM; the emulation use case runs under TCG (use "max" or a named model)',
      );
  }),
  eachGuest('every guest has something to boot', ['guests.N.disks'], (g, at, report) => {
    if (g.disks.length === 0 && !g.boot)
      report(
        at('disks'),
        'is empty and no kernel is given (boot.kernel): this guest has nothing to boot; add a disk or a kernel',
      );
  }),
  eachGuest(
    'no guest file lies where every unit hides it (ProtectHome=, PrivateTmp=)',
    [
      'guests.N.disks.I.path',
      'guests.N.boot.(kernel|initrd|deviceTree)',
      'guests.N.firmware.(code|varsTemplate)',
      'guests.N.(display|migration|nbd).tlsDir',
    ],
    (g, at, report) => {
      const refuse = (where: Path, path: string) => {
        const h = hiddenDir(path);
        if (h)
          report(
            at(...where),
            `is under ${h.dir}, which QEMU's unit cannot see (${h.why}); keep guest files elsewhere, e.g. /srv or /var/lib`,
          );
      };
      for (const f of filesNamed(g)) refuse(f.at, f.path);
      if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
        refuse(['display', 'tlsDir'], g.display.tlsDir);
      for (const k of REMOTES) if (g[k]?.tlsDir) refuse([k, 'tlsDir'], g[k]!.tlsDir!);
    },
  ),
  eachGuest('a disk is attached once to a guest', ['guests.N.disks.I.path'], (g, at, report) => {
    const seen = new Set<string>();
    g.disks.forEach((d, di) => {
      if (seen.has(d.path)) report(at('disks', di, 'path'), `${d.path} is attached twice to this guest`);
      seen.add(d.path);
    });
  }),
  eachGuest(
    'a block-device disk is block storage under /dev, by its name, on any host',
    ['guests.N.disks.I.path', 'guests.N.disks.I.format'],
    (g, at, report) =>
      g.disks.forEach((d, di) => {
        if (!d.blockDevice) return;
        if (!underDir(d.path, '/dev')) report(at('disks', di, 'path'), 'is marked blockDevice but is not under /dev');
        else if (!DEV_PATH.test(d.path))
          report(
            at('disks', di, 'path'),
            'must be a device path made of letters, digits and "._:+@=,-" (udev matches it by name)',
          );
        else {
          const why = notStorage(d.path);
          if (why) report(at('disks', di, 'path'), why);
        }
        if (d.format !== 'raw') report(at('disks', di, 'format'), 'must be "raw" for a block device');
      }),
  ),
  eachGuest(
    'guest files never come from places holding host secrets or system state',
    ['guests.N.disks.I.path', 'guests.N.boot.(kernel|initrd|deviceTree)', 'guests.N.firmware.(code|varsTemplate)'],
    (g, at, report) => {
      g.disks.forEach((d, di) => {
        const why = d.blockDevice ? undefined : restrictedFile(d.path, 'disk', d.readOnly);
        if (why) report(at('disks', di, 'path'), why);
      });
      if (g.boot)
        for (const k of BOOT_FILES) {
          const why = g.boot[k] === undefined ? undefined : restrictedFile(g.boot[k]!, 'boot', true);
          if (why) report(at('boot', k), why);
        }
      if (g.firmware.type === 'uefi')
        for (const k of FIRMWARE_FILES) {
          const why = restrictedFile(g.firmware[k], 'firmware', true);
          if (why) report(at('firmware', k), why);
        }
    },
  ),
  {
    keeps: 'a disk one guest writes is no other guest’s',
    at: ['guests.N.disks.I.path'],
    check(a, report) {
      const writers = new Map<string, string>();
      const readers = new Map<string, string[]>();
      a.guests.forEach((g, gi) =>
        g.disks.forEach((d, di) => {
          const at = ['guests', gi, 'disks', di, 'path'];
          const owner = writers.get(d.path);
          if (d.readOnly) {
            if (owner && owner !== g.name)
              report(at, `is written by guest "${owner}"; a disk another guest writes cannot be shared`);
            readers.set(d.path, [...(readers.get(d.path) ?? []), g.name]);
            return;
          }
          if (owner && owner !== g.name)
            report(at, `is already a writable disk of guest "${owner}"; one writable disk is never shared`);
          const others = (readers.get(d.path) ?? []).filter((n) => n !== g.name);
          if (others.length > 0)
            report(at, `is read by guest "${others[0]}"; a disk another guest reads cannot be writable here`);
          writers.set(d.path, g.name);
        }),
      );
    },
  },
  {
    keeps: 'no two guests name one SELinux category pair',
    at: ['guests.N.isolation.selinuxCategories'],
    check(a, report) {
      const named = new Map<string, string>();
      a.guests.forEach((g, gi) => {
        const p = g.isolation.selinuxCategories;
        if (!p) return;
        const other = named.get(`${p[0]},${p[1]}`);
        if (other)
          report(
            ['guests', gi, 'isolation', 'selinuxCategories'],
            `is guest "${other}"'s pair too; each guest's QEMU needs a pair of its own, or it may open the other's images`,
          );
        else named.set(`${p[0]},${p[1]}`, g.name);
      });
    },
  },
  {
    keeps: 'a PCI device, and an IOMMU group, go to one guest',
    at: ['guests.N.passthrough.pci.I.address', 'guests.N.passthrough.pci.I.iommuGroup'],
    check(a, report) {
      const byAddress = new Map<string, string>();
      const byGroup = new Map<number, string>();
      a.guests.forEach((g, gi) =>
        g.passthrough.pci.forEach((p, pi) => {
          const at = ['guests', gi, 'passthrough', 'pci', pi];
          const other = byAddress.get(p.address);
          if (other) report([...at, 'address'], `${p.address} is already passed through to guest "${other}"`);
          byAddress.set(p.address, g.name);
          const group = byGroup.get(p.iommuGroup);
          if (group && group !== g.name)
            report(
              [...at, 'iommuGroup'],
              `IOMMU group ${p.iommuGroup} already belongs to guest "${group}"; a group goes to one guest only`,
            );
          byGroup.set(p.iommuGroup, g.name);
        }),
      );
    },
  },
  {
    keeps: 'a USB device goes to one guest',
    at: ['guests.N.passthrough.usb.I'],
    check(a, report) {
      const taken = new Map<string, string>();
      a.guests.forEach((g, gi) =>
        g.passthrough.usb.forEach((u, ui) => {
          const key = `${u.vendorId}:${u.productId}`;
          const clash = [...taken].find(([k]) => {
            const [id, port] = k.split('@');
            return id === key && (port === '' || !u.port || port === u.port);
          });
          if (clash)
            report(
              ['guests', gi, 'passthrough', 'usb', ui],
              `USB device ${key}${u.port ? ` on port ${u.port}` : ''} can be the one already passed through to guest "${clash[1]}"; give each a different port`,
            );
          taken.set(`${key}@${u.port ?? ''}`, g.name);
        }),
      );
    },
  },
  eachGuest(
    'a guest on user-mode networking listens on no address its unit denies',
    ['guests.N.(display|migration|nbd).listen', 'guests.N.network.forwards.I.listen'],
    (g, at, report) => {
      if (g.network.mode !== 'user') return;
      const slirp = g.network.backend === 'slirp';
      for (const l of listenersOf(g))
        if ((l.by === 'network' || slirp) && loopbackOrLinkLocal(l.addr))
          report(
            at(...l.at, 'listen'),
            l.by === 'network'
              ? `${l.addr} is a loopback or link-local address, which the user-mode network’s unit denies (IPAddressDeny=) so that the guest cannot reach the host’s own services; forward a port of another address`
              : `${l.addr} is a loopback or link-local address, which this guest’s unit denies (IPAddressDeny=) because it uses user-mode networking inside QEMU (slirp); listen on another address`,
          );
    },
  ),
  {
    keeps: 'no two listeners take the same port, however their addresses are written',
    at: ['guests.N.(display|migration|nbd).port', 'guests.N.network.forwards.I.port'],
    check(a, report) {
      const taken: (Listener & { owner: string })[] = [];
      a.guests.forEach((g, gi) =>
        listenersOf(g).forEach((l) => {
          const other = taken.find((t) => t.protocol === l.protocol && sameListener(t, l));
          if (other)
            report(
              ['guests', gi, ...l.at, 'port'],
              `${l.addr}:${l.port} is already taken by ${other.owner}, listening on ${other.addr}:${other.port}${other.addr === l.addr ? '' : ' (the same address written otherwise, or a wildcard covering it: 0.0.0.0 covers every IPv4 address, :: every address)'}`,
            );
          taken.push({ ...l, owner: `guests.${gi} (${g.name})` });
        }),
      );
    },
  },
  eachGuest('TLS needs its credentials', ['guests.N.(migration|nbd).tlsDir'], (g, at, report) => {
    for (const k of REMOTES) {
      const r = g[k];
      if (r?.enabled && r.tls && !r.tlsDir) report(at(k, 'tlsDir'), 'is required when tls is true');
    }
  }),
  eachGuest(
    'a guest’s credentials are its own: never a system directory, another program’s keys, or a shared directory',
    ['guests.N.(display|migration|nbd).tlsDir', 'guests.N.display.passwordFile'],
    (g, at, report) => {
      for (const c of credentialsOf(g)) {
        // A directory where every unit hides it is refused by the rule above; a password file systemd reads itself.
        if (c.kind === 'directory' && hiddenDir(c.path)) continue;
        const why = credentialPlace(c.path, c.kind);
        if (why) report(at(...c.at), why);
      }
    },
  ),
  {
    keeps: 'a guest’s credentials hold no other guest’s files, and are no other guest’s',
    at: ['guests.N.(display|migration|nbd).tlsDir', 'guests.N.display.passwordFile'],
    check(a, report) {
      const named = a.guests.map((g) => [
        ...filesNamed(g).map((f) => ({ path: f.path, what: f.what })),
        ...credentialsOf(g).map((c) => ({
          path: c.path,
          what: c.kind === 'file' ? 'SPICE password file' : 'TLS directory',
        })),
      ]);
      a.guests.forEach((g, gi) => {
        for (const c of credentialsOf(g))
          a.guests.forEach((o, oi) => {
            if (oi === gi) return;
            for (const f of named[oi]!) {
              // Two guests reading one TLS directory is the risk "tls-shared", accepted by name.
              const shared = f.path === c.path && c.kind === 'directory' && f.what === 'TLS directory';
              const inside = c.kind === 'directory' ? underDir(f.path, c.path) : f.path === c.path;
              if (inside && !shared)
                report(
                  ['guests', gi, ...c.at],
                  f.path === c.path
                    ? `${c.path} is also guest "${o.name}"'s ${f.what}; each guest’s credentials are its own`
                    : `holds guest "${o.name}"'s ${f.what} ${f.path}; a directory a guest reads as a whole is that guest’s own`,
                );
            }
          });
      });
    },
  },
  eachGuest(
    'a shared folder is a directory of the guest’s own: never a system place, a parent of one, or a shared directory',
    ['guests.N.shares.I.path'],
    (g, at, report) =>
      g.shares.forEach((sh, si) => {
        const why = sharePlace(sh.path);
        if (why) report(at('shares', si, 'path'), why);
      }),
  ),
  eachGuest(
    'a guest mounts each shared folder by a tag of its own, and shares a folder once',
    ['guests.N.shares.I.path', 'guests.N.shares.I.tag'],
    (g, at, report) =>
      g.shares.forEach((sh, si) =>
        g.shares.slice(0, si).forEach((o, oi) => {
          if (o.tag === sh.tag)
            report(at('shares', si, 'tag'), `"${sh.tag}" is already the tag of shares.${oi}; each share has its own`);
          if (underDir(sh.path, o.path) || underDir(o.path, sh.path))
            report(
              at('shares', si, 'path'),
              sh.path === o.path
                ? `${sh.path} is already shared as shares.${oi}; share a folder once`
                : `${sh.path} ${underDir(sh.path, o.path) ? 'is inside' : 'holds'} shares.${oi} (${o.path}); a folder and one inside it are never shared side by side`,
            );
        }),
      ),
  ),
  {
    keeps: 'a shared folder holds no guest’s files, and no other guest shares it when either writes it',
    at: ['guests.N.shares.I.path'],
    check(a, report) {
      const named = a.guests.map((g) => [
        ...filesNamed(g).map((f) => ({ path: f.path, what: f.what })),
        ...credentialsOf(g).map((c) => ({
          path: c.path,
          what: c.kind === 'file' ? 'SPICE password file' : 'TLS directory',
        })),
      ]);
      a.guests.forEach((g, gi) =>
        g.shares.forEach((sh, si) => {
          const at = ['guests', gi, 'shares', si, 'path'];
          a.guests.forEach((o, oi) => {
            for (const f of named[oi]!)
              if (underDir(f.path, sh.path))
                report(
                  at,
                  oi === gi
                    ? `holds this guest’s own ${f.what} ${f.path}: through the share the guest would reach it around what its answers say (read-only, format); keep it outside shared folders`
                    : `holds guest "${o.name}"'s ${f.what} ${f.path}; a guest never sees another guest's files`,
                );
            if (oi === gi) return;
            for (const t of o.shares)
              if ((underDir(t.path, sh.path) || underDir(sh.path, t.path)) && (!t.readOnly || !sh.readOnly))
                report(
                  at,
                  `${t.path === sh.path ? 'is' : underDir(sh.path, t.path) ? 'is inside' : 'holds'} guest "${o.name}"'s shared folder ${t.path}, and one of them writes it; a folder a guest writes is no other guest's`,
                );
          });
        }),
      );
    },
  },
  {
    keeps: 'no two guests have one MAC, whether given or derived from the name',
    at: ['guests.N.network.mac'],
    check(a, report) {
      const taken = new Map<string, string>();
      a.guests.forEach((g, gi) => {
        if (g.network.mode === 'none') return;
        const mac = macAddress(g);
        const other = taken.get(mac);
        if (other)
          report(
            ['guests', gi, 'network', 'mac'],
            g.network.mac
              ? `${mac} is already the MAC of ${other}; two network cards never share an address`
              : `is not given, and the MAC derived from the name, ${mac}, is already the MAC of ${other}; give this guest its own network.mac`,
          );
        else taken.set(mac, `guest "${g.name}" (guests.${gi})`);
      });
    },
  },
  eachGuest('a tap is never named like a host’s own interface', ['guests.N.network.tapDevice'], (g, at, report) => {
    if (g.network.mode !== 'tap' || !g.network.tapDevice) return;
    const why = hostInterfaceName(g.network.tapDevice);
    if (why) report(at('network', 'tapDevice'), why);
  }),
  eachGuest(
    'memory limits leave the guest its RAM',
    ['guests.N.limits.(memoryMaxMiB|memoryHighMiB)'],
    (g, at, report) => {
      const l = g.limits;
      if (l.memoryMaxMiB !== undefined && l.memoryMaxMiB < g.memoryMiB)
        report(
          at('limits', 'memoryMaxMiB'),
          `must be at least memoryMiB (${g.memoryMiB}); QEMU needs the guest's RAM plus its own overhead`,
        );
      if (l.memoryHighMiB !== undefined && l.memoryHighMiB < g.memoryMiB)
        report(at('limits', 'memoryHighMiB'), `must be at least memoryMiB (${g.memoryMiB})`);
    },
  ),
  eachGuest('an I/O limit names block storage', ['guests.N.limits.ioBandwidth.I.device'], (g, at, report) =>
    g.limits.ioBandwidth.forEach((b, bi) => {
      const why = underDir(b.device, '/dev') ? notStorage(b.device) : 'must be a block device under /dev';
      if (why) report(at('limits', 'ioBandwidth', bi, 'device'), why);
    }),
  ),
  {
    keeps: 'every name derived from a guest is unique and never a shared or privileged name',
    at: [
      'host.(kvmGroup|netGroup)',
      'host',
      'guests.N.name',
      'guests.N.network.(tapDevice|name)',
      'guests.N.network.bridge',
    ],
    check: checkDerivedNames,
  },
  {
    keeps: 'every risk taken is accepted with a reason, and only those',
    at: [
      'acceptedRisks.I',
      'acceptedRisks.I.risk',
      'useCase',
      'host.confinement',
      'guests.N',
      'guests.N.machine',
      'guests.N.isolation.sandbox.(enabled|obsolete|elevatePrivileges|spawn|resourceControl)',
      'guests.N.isolation.apparmor',
      'guests.N.passthrough.(pci|usb)',
      'guests.N.(migration|nbd).tls',
      'guests.N.display.passwordFile',
      'guests.N.network.backend',
      'guests.N.shares.I.readOnly',
    ],
    check: checkRisks,
  },
];

type Ctx = z.core.$RefinementCtx<unknown>;

/** The rules that span fields, joined to the schema in answers.ts: every row of RULES, in order. */
export function checkAnswers(a: Answers, ctx: Ctx): void {
  const report: Report = (path, message) => ctx.addIssue({ code: 'custom', path, message, input: undefined });
  for (const rule of RULES) rule.check(a, report);
}

function checkRisks(a: Answers, report: Report): void {
  const required = requiredRisks(a);
  const requiredKeys = new Set(required.map(riskKey));
  const acceptedKeys = new Set<string>();
  a.acceptedRisks.forEach((r, ri) => {
    const key = riskKey(r);
    if (acceptedKeys.has(key))
      report(['acceptedRisks', ri], `accepts "${r.risk}"${r.guest ? ` for guest "${r.guest}"` : ''} twice`);
    acceptedKeys.add(key);
    if (!(r.risk in RISKS))
      report(
        ['acceptedRisks', ri, 'risk'],
        `"${r.risk}" is not a known risk (known: ${Object.keys(RISKS).join(', ')})`,
      );
    else if (!requiredKeys.has(key))
      report(
        ['acceptedRisks', ri],
        `accepts "${r.risk}"${r.guest ? ` for guest "${r.guest}"` : ''}, but the answers do not take that risk; remove it`,
      );
  });
  for (const r of required) {
    if (acceptedKeys.has(riskKey(r))) continue;
    const gi = r.guest === undefined ? -1 : a.guests.findIndex((g) => g.name === r.guest);
    report(
      gi < 0
        ? r.risk === 'confinement-none' || r.risk === 'selinux-execmem'
          ? ['host', 'confinement']
          : ['useCase']
        : riskPath(r.risk, gi, a),
      `takes the risk "${r.risk}" (${RISKS[r.risk].title}); add {"risk": "${r.risk}"${r.guest ? `, "guest": "${r.guest}"` : ''}, "reason": "..."} to acceptedRisks`,
    );
  }
}
/**
 * Which guests run each kind of helper unit (src/helpers/), and what the names it takes are called in a message.
 * The one answer to "does this guest run it": the names are the guest's as soon as it does.
 */
const HELPER_NAMES: Record<
  'tpm' | 'net' | 'fs',
  { what: string; runs(g: Guest, a: Pick<Answers, 'host'>, n: number): boolean }
> = {
  tpm: { what: 'TPM', runs: (g) => g.tpm === 'tpm2' },
  net: { what: 'user-mode network', runs: (g) => g.network.mode === 'user' && g.network.backend === 'passt' },
  fs: {
    what: 'shared folder',
    runs: (g, a, n) => RELEASES[a.host.target].sharedFolders === 'virtiofs' && g.shares.length > n,
  },
};

const familyOf = (kind: N.HelperKind) => (N.isShareKind(kind) ? 'fs' : kind);

export function runsHelper(kind: N.HelperKind, a: Pick<Answers, 'host'>, g: Guest): boolean {
  return HELPER_NAMES[familyOf(kind)].runs(g, a, N.isShareKind(kind) ? Number(kind.slice(2)) : 0);
}

/**
 * Every name the bundle derives from a guest (its user and group, its units, its tap device and the bridge it
 * joins, its AppArmor profile) is unique across the bundle and never one of the shared names: the device groups
 * and another guest's names. Each collision is reported on the field that chose the name.
 */
function checkDerivedNames(a: Answers, issue: Report): void {
  const taken = new Map<string, string>();
  const claim = (
    space: string,
    name: string,
    path: (string | number)[],
    what: string,
    owner = `(${path.join('.')})`,
  ) => {
    const key = `${space}\u0000${name}`;
    const first = taken.get(key);
    if (first !== undefined) issue(path, `gives the ${what} "${name}", which is already the ${first}; choose another`);
    else taken.set(key, `${what} ${owner}`);
  };
  const tap = a.guests.some((g) => g.network.mode === 'tap');
  if (a.useCase === 'virtualization')
    claim('account', a.host.kvmGroup, ['host', 'kvmGroup'], 'shared group', 'for /dev/kvm (host.kvmGroup)');
  if (tap) claim('account', a.host.netGroup, ['host', 'netGroup'], 'shared group', 'for /dev/net/tun (host.netGroup)');
  for (const [field, group] of [
    ['kvmGroup', a.host.kvmGroup],
    ['netGroup', a.host.netGroup],
  ] as const)
    if (PRIVILEGED_GROUPS.includes(group))
      issue(
        ['host', field],
        `"${group}" already grants access on a host; use a group of its own (default ${field === 'kvmGroup' ? 'kvm' : 'qemu-net'})`,
      );
  const kvmClaimed = a.useCase === 'virtualization' && tap && a.host.netGroup === a.host.kvmGroup;
  if (!kvmClaimed && (a.host.netGroup === 'kvm' || a.host.netGroup === a.host.kvmGroup))
    issue(['host', 'netGroup'], 'must not be the group that holds /dev/kvm');
  claim('unit', N.SLICE, ['host'], 'slice', 'every guest runs in');
  if (a.guests.some((g) => g.serial.enabled))
    claim('unit', N.LOGROTATE_SERVICE, ['host'], 'unit', 'that rotates the serial logs');
  a.guests.forEach((g, gi) => {
    const name = ['guests', gi, 'name'];
    const of = `of guest "${g.name}" (guests.${gi})`;
    claim('account', N.userName(g.name), name, 'user and group', of);
    claim('unit', N.unitName(g.name), name, 'unit', of);
    claim('profile', N.profileName(g.name), name, 'AppArmor profile', of);
    if (g.migration?.enabled) claim('unit', N.incomingUnitName(g.name), name, 'live-migration destination unit', of);
    for (const kind of N.HELPER_KINDS) {
      const helper = HELPER_NAMES[familyOf(kind)];
      if (!runsHelper(kind, a, g)) continue;
      claim('unit', N.helperUnitName(g.name, kind), name, `${helper.what} unit`, of);
      claim('unit', N.helperSocketName(g.name, kind), name, `${helper.what} socket unit`, of);
      claim('profile', N.helperProfileName(g.name, kind), name, `${helper.what}’s AppArmor profile`, of);
    }
    if (g.network.mode === 'tap') {
      claim('unit', N.tapUnitName(g.name), name, 'tap helper unit', of);
      claim(
        'link',
        tapDevice(g)!,
        ['guests', gi, 'network', g.network.tapDevice ? 'tapDevice' : 'name'],
        'tap device',
        of,
      );
    }
  });
  a.guests.forEach((g, gi) => {
    if (g.network.mode !== 'tap' || !g.network.bridge) return;
    const first = taken.get(`link\u0000${g.network.bridge}`);
    if (first)
      issue(
        ['guests', gi, 'network', 'bridge'],
        `"${g.network.bridge}" is the ${first}; a bridge is never a guest's tap device`,
      );
  });
}

function riskPath(risk: RiskId, gi: number, a: Answers): (string | number)[] {
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
    case 'confinement-none':
    case 'selinux-execmem':
      return ['host', 'confinement'];
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
    case 'slirp':
      return [...g, 'network', 'backend'];
    case 'share-writable':
      return [
        ...g,
        'shares',
        Math.max(
          0,
          a.guests[gi]!.shares.findIndex((sh) => !sh.readOnly),
        ),
        'readOnly',
      ];
  }
}
