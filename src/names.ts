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

export function defaultTapDevice(guest: string): string {
  return `qh-${guest}`.slice(0, 15).replace(/-+$/, '');
}

/** The host-wide helper that rotates every guest's serial log (a timer and the service it starts). */
export const LOGROTATE_SERVICE = 'qemu-harden-logrotate.service';
export const LOGROTATE_TIMER = 'qemu-harden-logrotate.timer';
