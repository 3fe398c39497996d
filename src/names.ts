// The names qemu-harden derives from a guest's name. They live here, apart from the rest of guest.ts, because the
// rules that keep them unique (rules.ts) need them too.

export const userName = (guest: string) => `qemu-${guest}`;
export const unitName = (guest: string) => `qemu-${guest}.service`;
export const tapUnitName = (guest: string) => `qemu-${guest}-tap.service`;
export const incomingUnitName = (guest: string) => `qemu-${guest}-incoming.service`;
export const profileName = (guest: string) => `qemu-harden-${guest}`;
export const SLICE = 'qemu.slice';
/** Where a guest's TPM keeps its state (swtpm's directory backend), in the guest's state directory. */
export const tpmStateDir = (guest: string) => `/var/lib/qemu-harden/${guest}/tpm2`;

/**
 * The kinds of helper unit a guest can have beside its QEMU (src/helpers/): each runs in a unit and under an
 * AppArmor profile of its own, named from the guest's name and the kind.
 */
export const HELPER_KINDS = ['tpm'] as const;
export type HelperKind = (typeof HELPER_KINDS)[number];
export const helperUnitName = (guest: string, kind: HelperKind) => `qemu-${guest}-${kind}.service`;
/** The socket unit systemd listens on for the helper, before it or QEMU runs. */
export const helperSocketName = (guest: string, kind: HelperKind) => `qemu-${guest}-${kind}.socket`;
export const helperProfileName = (guest: string, kind: HelperKind) => `qemu-harden-${guest}-${kind}`;
/** Every helper unit file a guest may have, whichever helpers its answers turn on: what the install side owns. */
export const helperUnitFiles = (guest: string) =>
  HELPER_KINDS.flatMap((k) => [helperUnitName(guest, k), helperSocketName(guest, k)]);

export function defaultTapDevice(guest: string): string {
  return `qh-${guest}`.slice(0, 15).replace(/-+$/, '');
}

/** The host-wide helper that rotates every guest's serial log (a timer and the service it starts). */
export const LOGROTATE_SERVICE = 'qemu-harden-logrotate.service';
export const LOGROTATE_TIMER = 'qemu-harden-logrotate.timer';
