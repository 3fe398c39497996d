// The names qemu-harden derives from a guest's name. They live here, apart from the rest of guest.ts, because the
// rules that keep them unique (rules.ts) need them too.

/** What a guest's name may be: it becomes part of user, unit, profile and file names. */
export const GUEST_NAME = /^[a-z][a-z0-9-]{0,22}[a-z0-9]$|^[a-z]$/;

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
