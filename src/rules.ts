// Rules that span fields: the policy the least-privilege principle of QEMU's security documentation asks for, and the risks a choice
// takes. Each rule reports against the answers path of the field at fault.
import type { z } from 'zod';
import type { Answers, Guest } from './model.js';
import * as N from './names.js';

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

interface RequiredRisk {
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
    if (!g.isolation.apparmor) add('apparmor-off');
    if (g.passthrough.pci.length > 0) add('pci-passthrough');
    if (g.passthrough.usb.length > 0) add('usb-passthrough');
    if (g.migration?.enabled && !g.migration.tls) add('migration-plaintext');
    if (g.nbd?.enabled && !g.nbd.tls) add('nbd-plaintext');
    if (g.display.mode === 'spice-tls' && !g.display.passwordFile) add('spice-no-password');
    if (tlsDirs(g).some((d) => readers.get(d)! > 1)) add('tls-shared');
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

/** Addresses a guest on user-mode networking must not reach: the host's loopback and link-local ranges. */
export const USER_NET_DENY = ['127.0.0.0/8', '::1/128', '169.254.0.0/16', 'fe80::/10'];

function loopbackOrLinkLocal(addr: string): boolean {
  const a = addr.toLowerCase();
  return (
    /^127\./.test(a) ||
    /^169\.254\./.test(a) ||
    a === '::1' ||
    /^fe[89ab][0-9a-f]?:/.test(a) ||
    /^::ffff:(127|169\.254)\./.test(a)
  );
}

const riskKey = (r: { risk: string; guest?: string }) => `${r.risk}@${r.guest ?? ''}`;

export const SYSTEM_DIRS = [
  '/etc',
  '/usr',
  '/boot',
  '/proc',
  '/sys',
  '/dev',
  '/bin',
  '/sbin',
  '/lib',
  '/lib64',
  '/run',
];

/** Directories every guest unit hides from QEMU (ProtectHome=yes, PrivateTmp=yes): guest files there cannot work. */
export const HIDDEN_DIRS = [
  { dir: '/home', why: 'ProtectHome=yes' },
  { dir: '/root', why: 'ProtectHome=yes' },
  { dir: '/run/user', why: 'ProtectHome=yes' },
  { dir: '/tmp', why: 'PrivateTmp=yes gives QEMU an empty /tmp of its own' },
  { dir: '/var/tmp', why: 'PrivateTmp=yes gives QEMU an empty /var/tmp of its own' },
];

export function underDir(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir + '/');
}

/**
 * Places that hold host secrets or system state. Like libvirt's virt-aa-helper (its `valid_path`), qemu-harden
 * gives a guest no file from there, read-only or not; the few read-only exceptions are in READ_ONLY_ALLOWED.
 * /home and /root are also hidden from every unit (ProtectHome=).
 */
export const RESTRICTED_DIRS = [
  '/etc',
  '/root',
  '/home',
  '/proc',
  '/sys',
  '/run',
  '/dev',
  '/boot',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/lost+found',
  '/var/log',
  '/var/cache',
  '/var/backups',
  '/var/spool',
  '/var/mail',
  '/var/run',
  '/var/lock',
  '/snap',
  ...[
    'dpkg',
    'apt',
    'systemd',
    'private',
    'sss',
    'polkit-1',
    'sudo',
    'dbus',
    'pam',
    'ucf',
    'dhcp',
    'NetworkManager',
    'docker',
    'containers',
    'machines',
    'libvirt/qemu',
  ].map((d) => `/var/lib/${d}`),
];

/** Read-only exceptions inside RESTRICTED_DIRS: firmware and images the distribution ships. */
export const READ_ONLY_ALLOWED = ['/usr/share', '/usr/local/share', '/usr/lib/ipxe'];

/** Kernels, initrds and device trees may come from /boot: only files named like one, only for those fields. */
const BOOT_FILE = /^\/boot\/(dtbs\/.+\.dtb|[^/]*(vmlinuz|vmlinux|bzImage|initrd|initramfs)[^/]*|[^/]+\.dtb)$/;

/** Directories systemd creates for each guest and the guest owns: qemu-harden never puts operator files there. */
export const GUEST_OWNED_DIRS = ['/run/qemu-harden', '/var/lib/qemu-harden', '/var/log/qemu-harden'];

export type FileKind = 'disk' | 'boot' | 'firmware';

/**
 * Is this file in the system's own places? Validation lets a guest have only the read-only exceptions there
 * (firmware, images, kernels, initrds); qemu-harden never changes them, so a guest reads one only when it is
 * world-readable.
 */
export function isSystemFile(path: string): boolean {
  return RESTRICTED_DIRS.some((d) => underDir(path, d));
}

/** Why a guest may not have this file, or undefined when it may. */
export function restrictedFile(path: string, kind: FileKind, readOnly: boolean): string | undefined {
  const own = GUEST_OWNED_DIRS.find((d) => underDir(path, d));
  if (own)
    return `is under ${own}, which qemu-harden creates and each guest owns; keep guest files outside it (e.g. under /srv)`;
  const dir = RESTRICTED_DIRS.find((d) => underDir(path, d));
  if (!dir) return undefined;
  const where = `is under ${dir}, which holds host secrets or system state`;
  if (!readOnly) return `${where}; a writable guest file must live elsewhere (e.g. under /srv)`;
  if (READ_ONLY_ALLOWED.some((d) => underDir(path, d))) return undefined;
  if (kind === 'boot' && BOOT_FILE.test(path)) return undefined;
  return `${where}; read-only guest files may come only from ${READ_ONLY_ALLOWED.join(', ')} or, for a kernel, initrd or device tree, /boot/vmlinuz*, /boot/initrd*`;
}

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

export function tapDevice(g: Guest): string | undefined {
  if (g.network.mode !== 'tap') return undefined;
  return g.network.tapDevice ?? N.defaultTapDevice(g.name);
}

type Ctx = z.core.$RefinementCtx<unknown>;

export function checkAnswers(a: Answers, ctx: Ctx): void {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: 'custom', path, message, input: undefined });

  const names = new Map<string, number>();
  const writers = new Map<string, string>();
  const readers = new Map<string, string[]>();
  const pciAddr = new Map<string, string>();
  const pciGroup = new Map<number, string>();
  const usb = new Map<string, string>();
  const listeners = new Map<string, string>();

  a.guests.forEach((g, gi) => {
    const at = (...rest: (string | number)[]) => ['guests', gi, ...rest];
    const incoming = a.guests.findIndex((o) => o.migration?.enabled && `${o.name}-incoming` === g.name);
    if (incoming >= 0)
      issue(
        at('name'),
        `"${g.name}" would share its unit name with the migration destination unit of guests.${incoming}; choose another name`,
      );
    const first = names.get(g.name);
    if (first !== undefined)
      issue(at('name'), `"${g.name}" is already the name of guests.${first}; names must be unique`);
    else names.set(g.name, gi);

    if (g.firmware.type === 'uefi' && g.firmware.secureBoot && !/^(q35|pc-q35-[0-9.]+)$/.test(g.machine))
      issue(
        at('firmware', 'secureBoot'),
        `needs a q35 machine type (is "${g.machine}"): Secure Boot relies on SMM, which QEMU offers on q35`,
      );
    if (g.firmware.type === 'uefi' && g.firmware.secureBoot && g.boot)
      issue(
        at('boot', 'kernel'),
        'cannot be used with Secure Boot: OVMF starts a kernel given to QEMU directly even when its signature check fails, so Secure Boot would not cover it; boot from a disk (its EFI system partition), or turn Secure Boot off',
      );

    if (a.useCase === 'emulation' && g.cpu.model === 'host')
      issue(at('cpu', 'model'), '"host" needs KVM; the emulation use case runs under TCG (use "max" or a named model)');

    if (g.disks.length === 0 && !g.boot)
      issue(
        at('disks'),
        'is empty and no kernel is given (boot.kernel): this guest has nothing to boot; add a disk or a kernel',
      );
    const hidden = (path: string) => HIDDEN_DIRS.find((h) => underDir(path, h.dir));
    const refuseHidden = (where: (string | number)[], path: string) => {
      const h = hidden(path);
      if (h)
        issue(
          where,
          `is under ${h.dir}, which QEMU's unit cannot see (${h.why}); keep guest files elsewhere, e.g. /srv or /var/lib`,
        );
    };
    g.disks.forEach((d, di) => refuseHidden(at('disks', di, 'path'), d.path));
    if (g.boot)
      for (const k of ['kernel', 'initrd', 'deviceTree'] as const)
        if (g.boot[k]) refuseHidden(at('boot', k), g.boot[k]!);
    if (g.firmware.type === 'uefi')
      for (const k of ['code', 'varsTemplate'] as const) refuseHidden(at('firmware', k), g.firmware[k]);
    if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
      refuseHidden(at('display', 'tlsDir'), g.display.tlsDir);
    for (const kind of ['migration', 'nbd'] as const)
      if (g[kind]?.tlsDir) refuseHidden(at(kind, 'tlsDir'), g[kind]!.tlsDir!);

    const seenInGuest = new Set<string>();
    g.disks.forEach((d, di) => {
      if (seenInGuest.has(d.path)) issue(at('disks', di, 'path'), `${d.path} is attached twice to this guest`);
      seenInGuest.add(d.path);
      if (d.blockDevice && !underDir(d.path, '/dev'))
        issue(at('disks', di, 'path'), 'is marked blockDevice but is not under /dev');
      if (
        d.blockDevice &&
        underDir(d.path, '/dev') &&
        !/^\/dev\/[A-Za-z0-9._:+@=,-]+(\/[A-Za-z0-9._:+@=,-]+)*$/.test(d.path)
      )
        issue(
          at('disks', di, 'path'),
          'must be a device path made of letters, digits and "._:+@=,-" (udev matches it by name)',
        );
      else if (d.blockDevice) {
        const pseudo = [
          '/dev/shm',
          '/dev/pts',
          '/dev/mqueue',
          '/dev/hugepages',
          '/dev/fd',
          '/dev/net',
          '/dev/vfio',
          '/dev/bus',
        ].find((x) => underDir(d.path, x));
        if (pseudo) issue(at('disks', di, 'path'), `is under ${pseudo}, which holds no block devices`);
      } else {
        const why = restrictedFile(d.path, 'disk', d.readOnly);
        if (why) issue(at('disks', di, 'path'), why);
      }
      if (d.blockDevice && d.format !== 'raw') issue(at('disks', di, 'format'), 'must be "raw" for a block device');
      const owner = writers.get(d.path);
      if (d.readOnly) {
        if (owner && owner !== g.name)
          issue(
            at('disks', di, 'path'),
            `is written by guest "${owner}"; a disk another guest writes cannot be shared`,
          );
        readers.set(d.path, [...(readers.get(d.path) ?? []), g.name]);
      } else {
        if (owner && owner !== g.name)
          issue(
            at('disks', di, 'path'),
            `is already a writable disk of guest "${owner}"; one writable disk is never shared`,
          );
        const others = (readers.get(d.path) ?? []).filter((n) => n !== g.name);
        if (others.length > 0)
          issue(
            at('disks', di, 'path'),
            `is read by guest "${others[0]}"; a disk another guest reads cannot be writable here`,
          );
        writers.set(d.path, g.name);
      }
    });

    if (g.boot)
      for (const k of ['kernel', 'initrd', 'deviceTree'] as const) {
        const path = g.boot[k];
        const why = path === undefined ? undefined : restrictedFile(path, 'boot', true);
        if (why) issue(at('boot', k), why);
      }
    if (g.firmware.type === 'uefi')
      for (const k of ['code', 'varsTemplate'] as const) {
        const why = restrictedFile(g.firmware[k], 'firmware', true);
        if (why) issue(at('firmware', k), why);
      }

    g.passthrough.pci.forEach((p, pi) => {
      const byAddr = pciAddr.get(p.address);
      if (byAddr)
        issue(at('passthrough', 'pci', pi, 'address'), `${p.address} is already passed through to guest "${byAddr}"`);
      pciAddr.set(p.address, g.name);
      const byGroup = pciGroup.get(p.iommuGroup);
      if (byGroup && byGroup !== g.name)
        issue(
          at('passthrough', 'pci', pi, 'iommuGroup'),
          `IOMMU group ${p.iommuGroup} already belongs to guest "${byGroup}"; a group goes to one guest only`,
        );
      pciGroup.set(p.iommuGroup, g.name);
    });
    g.passthrough.usb.forEach((u, ui) => {
      const key = `${u.vendorId}:${u.productId}`;
      const clash = [...usb].find(([k]) => {
        const [id, port] = k.split('@');
        return id === key && (port === '' || !u.port || port === u.port);
      });
      if (clash)
        issue(
          at('passthrough', 'usb', ui),
          `USB device ${key}${u.port ? ` on port ${u.port}` : ''} can be the one already passed through to guest "${clash[1]}"; give each a different port`,
        );
      usb.set(`${key}@${u.port ?? ''}`, g.name);
    });

    const listen = (path: (string | number)[], addr: string, port: number) => {
      if (g.network.mode === 'user' && loopbackOrLinkLocal(addr))
        issue(
          path.slice(0, -1).concat('listen'),
          `${addr} is a loopback or link-local address, which this guest’s unit denies (IPAddressDeny=) because it uses user-mode networking; listen on another address`,
        );
      const key = `${addr}:${port}`;
      const other = listeners.get(key);
      if (other) issue(path, `${key} is already used by ${other}`);
      listeners.set(key, `guests.${gi} (${g.name})`);
    };
    if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
      listen(at('display', 'port'), g.display.listen, g.display.port);
    for (const kind of ['migration', 'nbd'] as const) {
      const r = g[kind];
      if (!r?.enabled) continue;
      listen(at(kind, 'port'), r.listen, r.port);
      if (r.tls && !r.tlsDir) issue(at(kind, 'tlsDir'), 'is required when tls is true');
    }

    const l = g.limits;
    if (l.memoryMaxMiB !== undefined && l.memoryMaxMiB < g.memoryMiB)
      issue(
        at('limits', 'memoryMaxMiB'),
        `must be at least memoryMiB (${g.memoryMiB}); QEMU needs the guest's RAM plus its own overhead`,
      );
    if (l.memoryHighMiB !== undefined && l.memoryHighMiB < g.memoryMiB)
      issue(at('limits', 'memoryHighMiB'), `must be at least memoryMiB (${g.memoryMiB})`);
    l.ioBandwidth.forEach((b, bi) => {
      if (!underDir(b.device, '/dev'))
        issue(at('limits', 'ioBandwidth', bi, 'device'), 'must be a block device under /dev');
    });
  });

  checkDerivedNames(a, issue);

  const required = requiredRisks(a);
  const requiredKeys = new Set(required.map(riskKey));
  const acceptedKeys = new Set<string>();
  a.acceptedRisks.forEach((r, ri) => {
    const key = riskKey(r);
    if (acceptedKeys.has(key))
      issue(['acceptedRisks', ri], `accepts "${r.risk}"${r.guest ? ` for guest "${r.guest}"` : ''} twice`);
    acceptedKeys.add(key);
    if (!(r.risk in RISKS))
      issue(['acceptedRisks', ri, 'risk'], `"${r.risk}" is not a known risk (known: ${Object.keys(RISKS).join(', ')})`);
    else if (!requiredKeys.has(key))
      issue(
        ['acceptedRisks', ri],
        `accepts "${r.risk}"${r.guest ? ` for guest "${r.guest}"` : ''}, but the answers do not take that risk; remove it`,
      );
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

/**
 * Which guests run each kind of helper unit (src/helpers/), and what the names it takes are called in a message.
 * The one answer to "does this guest run it": the names are the guest's as soon as it does.
 */
const HELPER_NAMES: Record<N.HelperKind, { what: string; runs(g: Guest): boolean }> = {
  tpm: { what: 'TPM', runs: (g) => g.tpm === 'tpm2' },
};

export function runsHelper(kind: N.HelperKind, g: Guest): boolean {
  return HELPER_NAMES[kind].runs(g);
}

/**
 * Every name the bundle derives from a guest (its user and group, its units, its tap device and the bridge it
 * joins, its AppArmor profile) is unique across the bundle and never one of the shared names: the device groups
 * and another guest's names. Each collision is reported on the field that chose the name.
 */
function checkDerivedNames(a: Answers, issue: (path: (string | number)[], message: string) => void): void {
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
      const helper = HELPER_NAMES[kind];
      if (!runsHelper(kind, g)) continue;
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
