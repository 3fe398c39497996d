// A guest's name, and the names and directories qemu-harden derives from it. They live here, apart from the rest
// of guest.ts, because the schema, the rules that keep them unique, the import sources and audit need them too.

/** A guest name: 1-24 lower-case letters, digits and "-", starting with a letter and not ending with "-". It
 * becomes a user name, unit names and an AppArmor profile name, so it is the one pattern all of them accept. */
export const GUEST_NAME = /^[a-z][a-z0-9-]{0,22}[a-z0-9]$|^[a-z]$/;

/** Where systemd keeps every guest's own directory (runtime, state, logs), each guest's under its name. */
export const RUNTIME_BASE = '/run/qemu-harden';
export const STATE_BASE = '/var/lib/qemu-harden';
export const LOGS_BASE = '/var/log/qemu-harden';
/** The directories qemu-harden creates and the guests own: never a place for the operator's files. */
export const GUEST_OWNED_DIRS = [RUNTIME_BASE, STATE_BASE, LOGS_BASE];

export const userName = (guest: string) => `qemu-${guest}`;
export const unitName = (guest: string) => `qemu-${guest}.service`;
export const tapUnitName = (guest: string) => `qemu-${guest}-tap.service`;
export const incomingUnitName = (guest: string) => `qemu-${guest}-incoming.service`;
export const profileName = (guest: string) => `qemu-harden-${guest}`;
export const SLICE = 'qemu.slice';
/** Where a guest's TPM keeps its state (swtpm's directory backend), in the guest's state directory. */
export const tpmStateDir = (guest: string) => `/var/lib/qemu-harden/${guest}/tpm2`;
/** passt's own directory in the guest's runtime directory: it binds its socket there, and sees nothing else of /run. */
export const netRuntimeDir = (guest: string) => `${RUNTIME_BASE}/${guest}/net`;

/**
 * The kinds of helper unit a guest can have beside its QEMU (src/helpers/): each runs in a unit and under an
 * AppArmor profile of its own, named from the guest's name and the kind.
 */
/** The most folders a guest shares; where virtiofsd serves them, share N has a helper unit of its own, kind fsN. */
export const MAX_SHARES = 16;
const SHARE_KINDS = [
  'fs0',
  'fs1',
  'fs2',
  'fs3',
  'fs4',
  'fs5',
  'fs6',
  'fs7',
  'fs8',
  'fs9',
  'fs10',
  'fs11',
  'fs12',
  'fs13',
  'fs14',
  'fs15',
] as const;
export type ShareKind = (typeof SHARE_KINDS)[number];
/** The kind of helper that serves a guest's share N where virtiofsd does. */
export const shareKind = (n: number): ShareKind => SHARE_KINDS[n]!;
export const isShareKind = (k: string): k is ShareKind => (SHARE_KINDS as readonly string[]).includes(k);
export const HELPER_KINDS = ['tpm', 'net', ...SHARE_KINDS] as const;
export type HelperKind = (typeof HELPER_KINDS)[number];
export const helperUnitName = (guest: string, kind: HelperKind) => `qemu-${guest}-${kind}.service`;
/** The socket unit systemd listens on for the helper, before it or QEMU runs. */
export const helperSocketName = (guest: string, kind: HelperKind) => `qemu-${guest}-${kind}.socket`;
export const helperProfileName = (guest: string, kind: HelperKind) => `qemu-harden-${guest}-${kind}`;
/** Every helper unit file a guest may have, whichever helpers its answers turn on: what the install side owns. */
export const helperUnitFiles = (guest: string) =>
  HELPER_KINDS.flatMap((k) => [helperUnitName(guest, k), helperSocketName(guest, k)]);
/**
 * The state each kind of helper keeps, by the guest's name: never removed with the helper or its guest (as a
 * guest's disks are not), and named where it is kept.
 */
export function helperState(kind: HelperKind): { what: string; dirs: (guest: string) => string[] } {
  if (kind === 'tpm')
    return { what: "TPM state (the guest's own secrets, such as BitLocker's keys)", dirs: (g) => [tpmStateDir(g)] };
  return { what: `nothing: ${kind === 'net' ? 'passt' : 'virtiofsd'} keeps no state`, dirs: () => [] };
}

export function defaultTapDevice(guest: string): string {
  return `qh-${guest}`.slice(0, 15).replace(/-+$/, '');
}

/** The host-wide helper that rotates every guest's serial log (a timer and the service it starts). */
export const LOGROTATE_SERVICE = 'qemu-harden-logrotate.service';
export const LOGROTATE_TIMER = 'qemu-harden-logrotate.timer';
