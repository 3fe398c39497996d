// The host releases a bundle can be made for, and what each one's QEMU, systemd and AppArmor accept. A bundle is
// generated for one target (answers: host.target); the generators read its versions here and write only what
// that release's programs understand, and `verify` on a host of another release says so. Debian 13 is proven
// live in the test suite (test/trixie.test.ts), Debian 12 on this project's own machines; Ubuntu 24.04 is
// stated from its documented versions (docs/hosts.md).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

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
 * QEMU command-line options removed upstream, with the release that removed each and what replaces it. The
 * generators emit none of them on any target (test/generators.test.ts holds that for every preset); the table is
 * here for the readers of other command lines, and for docs/hosts.md.
 */
export const REMOVED_QEMU_OPTIONS: { option: string; removedIn: string; instead: string }[] = [
  { option: '-no-hpet', removedIn: '9.0', instead: '-machine hpet=off' },
  { option: '-no-acpi', removedIn: '9.0', instead: '-machine acpi=off' },
  { option: '-chroot', removedIn: '9.0', instead: "-run-with chroot=DIR, or the unit's own file system fence" },
  { option: '-async-teardown', removedIn: '9.0', instead: '-run-with async-teardown=on' },
  { option: 'virtio-blk scsi=on', removedIn: '9.1', instead: 'virtio-scsi' },
  { option: '-virtfs proxy / -fsdev proxy', removedIn: '9.2', instead: '-virtfs local, or virtiofsd' },
  { option: '-runas', removedIn: '10.0', instead: "-run-with user=, or the unit's User=" },
];

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
