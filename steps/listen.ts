// TCP listeners a guest's QEMU opens (a TLS display, migration, NBD): where a new one starts, so that a default
// is never an error the operator did not cause. Ports its user-mode network forwards are taken too.
import type { Draft } from './draft.js';
import type { StepContext } from './fields.js';

/** slirp, the user-mode network inside QEMU: QEMU's own unit then denies loopback. passt's unit is another one. */
const usesSlirp = (d: Draft, gi: number) => {
  const n = d.guests[gi]?.network;
  return n?.mode === 'user' && n.backend === 'slirp';
};

/**
 * Loopback, unless the guest uses slirp: its unit then denies loopback and link-local addresses (IPAddressDeny=),
 * and no address is right for every host, so the field starts empty and is asked.
 */
export const listenDefault = (d: Draft, gi: number): string => (usesSlirp(d, gi) ? '' : '127.0.0.1');

export const listenHint = (ctx: StepContext): string =>
  usesSlirp(ctx.draft, ctx.guest)
    ? 'slirp: this guest’s unit denies loopback; the address clients connect to'
    : '127.0.0.1: only this host (e.g. through an SSH tunnel)';

/** The lowest port from `base` on that no other guest listens on, whatever the address. */
export function freePort(d: Draft, gi: number, base: number): number {
  const used = new Set<unknown>();
  d.guests.forEach((guest, i) => {
    if (i === gi) return;
    const display = guest.display as { port?: unknown } | undefined;
    used.add(display?.port);
    if (guest.migration?.enabled) used.add(guest.migration.port);
    if (guest.nbd?.enabled) used.add(guest.nbd.port);
    if (guest.network?.mode === 'user') for (const f of guest.network.forwards ?? []) used.add(f.port);
  });
  let port = base;
  while (used.has(port)) port++;
  return port;
}
