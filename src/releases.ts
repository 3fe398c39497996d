// The host releases a bundle can be made for, and what each one's QEMU, systemd and AppArmor accept. A bundle is
// generated for one target (answers: host.target); the generators read its versions here and write only what
// that release's programs understand, and `verify` on a host of another release says so. Debian 13 is proven
// live in the test suite (test/trixie.test.ts), Debian 12 on this project's own machines; Ubuntu 24.04 is
// stated from its documented versions (docs/hosts.md).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * OVMF's firmware files as the ovmf package installs them on every release here: the plain pair, and the Secure
 * Boot build (SMM) with a variables template holding Microsoft's keys.
 */
export const OVMF = {
  code: '/usr/share/OVMF/OVMF_CODE_4M.fd',
  vars: '/usr/share/OVMF/OVMF_VARS_4M.fd',
  secureCode: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
  secureVars: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
};

export const TARGETS = ['debian-12', 'debian-13', 'ubuntu-24.04'] as const;
export type Target = (typeof TARGETS)[number];

/** What bundles made before targets existed were made for, and what an answers file without one means. */
export const DEFAULT_TARGET: Target = 'debian-12';

export interface Release {
  target: Target;
  /** As an operator says it: 'Debian 13 "trixie"'. */
  name: string;
  /** /etc/os-release's ID and VERSION_ID on that release. */
  os: { id: string; versionId: string };
  qemu: { major: number; minor: number };
  systemd: number;
  /** apparmor_parser's version, major.minor. */
  apparmor: { major: number; minor: number };
  /** The AppArmor feature ABI the profiles declare: the newest one the release's parser ships. */
  apparmorAbi: '3.0' | '4.0';
  /** The package holding QEMU's SPICE modules, where they are not part of qemu-system-x86's own dependencies. */
  spiceModules?: string;
  /** udev tags /dev/kvm "uaccess": the seat's desktop user gets an ACL on it, past the kvm group. */
  kvmUaccess: boolean;
  /**
   * How a shared folder reaches the guest. virtiofs: the Rust virtiofsd (/usr/libexec/virtiofsd), which runs as the
   * guest's user, in a helper unit of its own. 9p: QEMU's own 9p server (-virtfs local), inside QEMU's unit and
   * profile, where the release has only the C virtiofsd, which needs root and is never used.
   */
  sharedFolders: '9p' | 'virtiofs';
  /**
   * The release's reference policy defines SELinux's user_namespace class (refpolicy 2.20231002 on): a process that
   * makes a user namespace (passt, for its own sandbox) then needs its create permission, which a module for a policy
   * without the class cannot name.
   */
  selinuxUserNamespace: boolean;
}

export const RELEASES: Record<Target, Release> = {
  'debian-12': {
    target: 'debian-12',
    name: 'Debian 12 "bookworm"',
    os: { id: 'debian', versionId: '12' },
    qemu: { major: 7, minor: 2 },
    systemd: 252,
    apparmor: { major: 3, minor: 0 },
    apparmorAbi: '3.0',
    kvmUaccess: false,
    sharedFolders: '9p',
    selinuxUserNamespace: false,
  },
  'debian-13': {
    target: 'debian-13',
    name: 'Debian 13 "trixie"',
    os: { id: 'debian', versionId: '13' },
    qemu: { major: 10, minor: 0 },
    systemd: 257,
    apparmor: { major: 4, minor: 1 },
    apparmorAbi: '4.0',
    spiceModules: 'qemu-system-modules-spice',
    kvmUaccess: true,
    sharedFolders: 'virtiofs',
    selinuxUserNamespace: true,
  },
  'ubuntu-24.04': {
    target: 'ubuntu-24.04',
    name: 'Ubuntu 24.04 "noble"',
    os: { id: 'ubuntu', versionId: '24.04' },
    qemu: { major: 8, minor: 2 },
    systemd: 255,
    apparmor: { major: 4, minor: 0 },
    apparmorAbi: '4.0',
    spiceModules: 'qemu-system-modules-spice',
    kvmUaccess: true,
    sharedFolders: 'virtiofs',
    selinuxUserNamespace: true,
  },
};

/** 'Debian 13 "trixie" (QEMU 10.0, systemd 257, AppArmor 4.1)'. */
export function describeRelease(r: Release): string {
  return `${r.name} (QEMU ${r.qemu.major}.${r.qemu.minor}, systemd ${r.systemd}, AppArmor ${r.apparmor.major}.${r.apparmor.minor})`;
}

export function describeTarget(t: Target): string {
  return describeRelease(RELEASES[t]);
}

/**
 * systemd settings a unit uses only where the target's systemd has them. An older systemd logs an unknown value
 * and ignores the line, so a setting written for a newer release would silently fall back to no protection.
 */
export const systemdHas = {
  /** MemoryKSM= (254). */
  memoryKsm: (r: Release) => r.systemd >= 254,
  /** PrivateTmp=disconnected, ProtectControlGroups=strict and PrivatePIDs= (257). */
  v257: (r: Release) => r.systemd >= 257,
};

/**
 * A QEMU command-line option (or a property of one) that QEMU removed between Debian 12's QEMU 7.2 and Debian 13's
 * 10.0, as QEMU's docs/about/deprecated.rst and removed-features.rst record it. One table, read twice: `import`
 * turns each into what the answers or the bundle say instead, and `audit` names each one a running QEMU uses.
 * The generators emit none of them on any target (test/targets.test.ts holds that for every preset).
 */
export interface RemovedQemuOption {
  /** As QEMU's documentation names it. */
  option: string;
  /** The options it is given with, without dashes. */
  names: readonly string[];
  /** For a property of an option's argument: the key QEMU gives the argument's first element without "=", and
   * whether the argument, split as QemuOpts, uses the removed property. */
  implied?: string;
  uses?: (opts: ReadonlyMap<string, string>) => boolean;
  /** The QEMU releases that deprecated it and removed it. */
  deprecatedIn: string;
  removedIn: string;
  /** What QEMU's documentation says to use instead. */
  instead: string;
  /** What a qemu-harden bundle does in its place. */
  bundle: string;
  /**
   * What `import` makes of a whole option (one without `uses`): the guest's answer that says the same when false,
   * or why nothing in the answers can say it (the guest is refused); with neither, the bundle's own unit already
   * does what the option did (`bundle`). A property of an option is refused with the option that carries it, which
   * import never passes to QEMU.
   */
  answer?: 'hpet' | 'acpi';
  refused?: string;
}

export const REMOVED_QEMU_OPTIONS: readonly RemovedQemuOption[] = [
  {
    option: '-no-hpet',
    names: ['no-hpet'],
    deprecatedIn: '8.0',
    removedIn: '9.0',
    instead: '-machine hpet=off',
    bundle: 'A guest whose answers say hpet: false gets -machine hpet=off.',
    answer: 'hpet',
  },
  {
    option: '-no-acpi',
    names: ['no-acpi'],
    deprecatedIn: '8.0',
    removedIn: '9.0',
    instead: '-machine acpi=off',
    bundle: 'A guest whose answers say acpi: false gets -machine acpi=off.',
    answer: 'acpi',
  },
  {
    option: '-async-teardown',
    names: ['async-teardown'],
    deprecatedIn: '8.1',
    removedIn: '9.0',
    instead: '-run-with async-teardown=on',
    bundle: 'A bundle’s QEMU frees its guest’s memory itself when it exits; no second process shares that memory.',
    refused:
      'asynchronous teardown starts a second process that shares QEMU’s memory and outlives it; the answers have no such process, and dropping the option would change how the guest ends without a word',
  },
  {
    option: '-chroot',
    names: ['chroot'],
    deprecatedIn: '8.1',
    removedIn: '9.0',
    instead: '-run-with chroot=DIR',
    bundle:
      'Each guest’s unit gives QEMU a file-system view of its own (ProtectSystem=strict, TemporaryFileSystem=, BindPaths=): the whole system read-only, other guests’ files hidden, only its own disks writable.',
  },
  {
    option: '-device virtio-blk,scsi=on|off',
    names: ['device'],
    implied: 'driver',
    uses: (o) => /^virtio-blk(-|$)/.test(o.get('driver') ?? '') && o.has('scsi'),
    deprecatedIn: '5.0',
    removedIn: '9.1',
    instead: 'virtio-scsi for SCSI passthrough; with scsi=off, no scsi property at all',
    bundle: 'A bundle’s virtio-blk disks set no scsi property, and no disk passes SCSI commands to the host.',
  },
  {
    option: '-fsdev proxy, -virtfs proxy',
    names: ['fsdev', 'virtfs'],
    implied: 'fsdriver',
    uses: (o) => o.get('fsdriver') === 'proxy',
    deprecatedIn: '8.1',
    removedIn: '9.2',
    instead: '-virtfs local, or virtiofsd',
    bundle: 'A bundle shares no host directory with a guest.',
  },
  {
    option: '-runas',
    names: ['runas'],
    deprecatedIn: '9.1',
    removedIn: '10.0',
    instead: '-run-with user=USER',
    bundle:
      'Each guest’s unit starts QEMU as the guest’s own system user (User=), never as root; QEMU switches no user itself, which under -sandbox elevateprivileges=deny it could not.',
  },
  {
    option: '-spice password=',
    names: ['spice'],
    uses: (o) => o.has('password'),
    deprecatedIn: '6.0',
    removedIn: '8.0',
    instead: '-spice password-secret=ID with -object secret',
    bundle:
      'SPICE with TLS takes its password from a file through a secret object (display.passwordFile): never on a command line.',
  },
];

/**
 * The removed option that one option of a command line is, if any: `name` without dashes, `arg` splitting its
 * argument as QemuOpts with the given first key.
 */
export function removedOption(
  name: string,
  arg: (implied?: string) => ReadonlyMap<string, string>,
): RemovedQemuOption | undefined {
  return REMOVED_QEMU_OPTIONS.find((r) => r.names.includes(name) && (!r.uses || r.uses(arg(r.implied))));
}

/**
 * When QEMU deprecated and removed it, and what that means on each known release: "QEMU deprecated -runas in
 * 9.1 and removed it in 10.0: Debian 13 "trixie" (QEMU 10.0) refuses to start with it".
 */
export function describeRemoval(r: RemovedQemuOption): string {
  const releases = Object.values(RELEASES);
  const named = (rs: Release[]) => rs.map((x) => `${x.name} (QEMU ${x.qemu.major}.${x.qemu.minor})`).join(' and ');
  const refuse = releases.filter((x) => qemuAtMost(r.removedIn, x));
  const deprecated = releases.filter((x) => !qemuAtMost(r.removedIn, x) && qemuAtMost(r.deprecatedIn, x));
  const parts = [
    ...(refuse.length ? [`${named(refuse)} refuse${refuse.length === 1 ? 's' : ''} to start with it`] : []),
    ...(deprecated.length
      ? [`${named(deprecated)} still take${deprecated.length === 1 ? 's' : ''} it, deprecated`]
      : []),
  ];
  return `QEMU deprecated ${r.option} in ${r.deprecatedIn} and removed it in ${r.removedIn}${parts.length ? `: ${parts.join('; ')}` : ''}`;
}

/** Whether QEMU version `v` ("9.1") is at or below the target's QEMU. */
export function qemuAtMost(v: string, r: Release): boolean {
  const [major = 0, minor = 0] = v.split('.').map(Number);
  return major < r.qemu.major || (major === r.qemu.major && minor <= r.qemu.minor);
}

/** The QEMU version a versioned machine type belongs to ("pc-q35-7.2" → [7, 2]), or undefined for an alias. */
export function machineVersion(machine: string): [number, number] | undefined {
  const m = /^pc-(?:q35|i440fx)-(\d+)\.(\d+)(?:\.\d+)?$/.exec(machine);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * QEMU deprecates a versioned machine type 3 years after its release, counted in QEMU versions: on QEMU 10.0,
 * every pc-q35-X.Y and pc-i440fx-X.Y up to 7.0 warns at each start that it is subject to deletion.
 */
export function machineDeprecated(machine: string, r: Release): boolean {
  const v = machineVersion(machine);
  // The rule came with QEMU 9.1; older releases deprecate machine types one by one, none of the ones in use here.
  if (!v || !qemuAtMost('9.1', r)) return false;
  const [major, minor] = v;
  const cutMajor = r.qemu.major - 3;
  return major < cutMajor || (major === cutMajor && minor <= r.qemu.minor);
}

/** Whether the target's QEMU has this machine type at all: a versioned one newer than itself it cannot have. */
export function machineKnown(machine: string, r: Release): boolean {
  const v = machineVersion(machine);
  return !v || v[0] < r.qemu.major || (v[0] === r.qemu.major && v[1] <= r.qemu.minor);
}

export interface OsRelease {
  id: string;
  versionId: string;
  prettyName: string;
}

/** /etc/os-release (or /usr/lib/os-release) of the system rooted at `root`, or undefined when neither reads. */
export function readOsRelease(root = '/'): OsRelease | undefined {
  for (const f of ['etc/os-release', 'usr/lib/os-release']) {
    let text: string;
    try {
      text = readFileSync(join(root, f), 'utf8');
    } catch {
      continue;
    }
    const field = (k: string) => {
      const m = new RegExp(`^${k}=(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
      return m.replace(/^(["'])(.*)\1$/, '$2');
    };
    return { id: field('ID'), versionId: field('VERSION_ID'), prettyName: field('PRETTY_NAME') || field('ID') };
  }
  return undefined;
}

/** The known release an os-release describes, if it is one. */
export function releaseOfOs(os: OsRelease): Release | undefined {
  return Object.values(RELEASES).find((r) => r.os.id === os.id && r.os.versionId === os.versionId);
}

/**
 * For a release qemu-harden does not know by name: the newest known release whose QEMU, systemd and AppArmor are
 * all no newer than the versions found, so that every line of the bundle is one the host's programs read.
 */
export function releaseForVersions(found: {
  qemu?: string | null;
  systemd?: number | null;
  apparmor?: string | null;
}): Release | undefined {
  const atMost = (mine: { major: number; minor: number }, theirs: string | null | undefined) => {
    if (!theirs) return true;
    const [major = 0, minor = 0] = theirs.split('.').map(Number);
    return mine.major < major || (mine.major === major && mine.minor <= minor);
  };
  return Object.values(RELEASES)
    .filter(
      (r) =>
        atMost(r.qemu, found.qemu) &&
        (found.systemd == null || r.systemd <= found.systemd) &&
        atMost(r.apparmor, found.apparmor),
    )
    .sort((x, y) => y.systemd - x.systemd)[0];
}
