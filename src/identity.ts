// A guest's identity on the network: its MAC, its tap device, the addresses and ports it listens on. Two guests
// never share one, however it is written: a MAC in either case, an address in any of its spellings (IPv6
// shortened or not, IPv4-mapped), a port on a wildcard address that covers another's.
import { createHash } from 'node:crypto';
import type { Guest } from './model.js';
import * as N from './names.js';

export function tapDevice(g: Guest): string | undefined {
  if (g.network.mode !== 'tap') return undefined;
  return g.network.tapDevice ?? N.defaultTapDevice(g.name);
}

/** The MAC a guest's network card has: its own, or one derived from its name under QEMU's 52:54:00 prefix. */
export function macAddress(g: Guest): string {
  if (g.network.mode !== 'none' && g.network.mac) return g.network.mac;
  const h = createHash('sha256').update(`qemu-harden:${g.name}`).digest();
  return `52:54:00:${[h[0], h[1], h[2]].map((b) => b!.toString(16).padStart(2, '0')).join(':')}`;
}

/**
 * Interface names a host gives its own devices (kernel, systemd's predictable names, bridges, container and VPN
 * tools). The tap unit deletes an interface of its tap's name before creating the tap, so a tap named like one of
 * these would take down the host's own network, on whatever host the bundle is applied.
 */
const HOST_INTERFACE =
  /^(lo|eth[0-9]+|(en|wl|ww)([oscvia][0-9]+|p[0-9]+s[0-9]+|x[0-9a-f]{12}|an[0-9]+)([dfnsu][a-z0-9]*)?|ib[0-9]+|bond[0-9]+|team[0-9]+|br[0-9]+|virbr[0-9]+|vmbr[0-9]+|docker[0-9]+|lxcbr[0-9]+|lxdbr[0-9]+|cni[0-9]+|veth[a-z0-9]*|vnet[0-9]+|macvtap[0-9]+|macvlan[0-9]+|wg[0-9]+|tun[0-9]+|ppp[0-9]+|tailscale[0-9]+|zt[a-z0-9]+)$/;

/** Why a tap device may not have this name, or undefined when it may. */
export function hostInterfaceName(name: string): string | undefined {
  return HOST_INTERFACE.test(name)
    ? `"${name}" is named like one of a host's own interfaces (lo, eth*, en*, wl*, bond*, br*, virbr*, vmbr*, docker*, veth*, vnet*, wg*, …); the tap unit deletes an interface of that name before it creates the tap: choose a name of the guest's own (the default is ${N.defaultTapDevice('NAME')})`
    : undefined;
}

/** One spelling per address: IPv6 as the URL standard serialises it (RFC 5952), IPv4-mapped IPv6 as IPv4. */
export function canonicalAddress(addr: string): string {
  if (!addr.includes(':')) return addr.split('.').map(Number).join('.');
  const host = new URL(`http://[${addr}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (!mapped) return host;
  const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** Addresses a guest on user-mode networking must not reach: the host's loopback and link-local ranges. */
export const USER_NET_DENY = ['127.0.0.0/8', '::1/128', '169.254.0.0/16', 'fe80::/10'];

export function loopbackOrLinkLocal(addr: string): boolean {
  const a = canonicalAddress(addr);
  return /^127\./.test(a) || /^169\.254\./.test(a) || a === '::1' || /^fe[89ab][0-9a-f]?:/.test(a);
}

/**
 * Do two listeners take the same port of the host? The same address does, and so does a wildcard with any
 * address it covers: 0.0.0.0 every IPv4 address, and :: every address (QEMU listens on :: for both families).
 */
export function sameListener(a: { addr: string; port: number }, b: { addr: string; port: number }): boolean {
  if (a.port !== b.port) return false;
  const [x, y] = [canonicalAddress(a.addr), canonicalAddress(b.addr)];
  const v4 = (s: string) => !s.includes(':');
  const covers = (w: string, o: string) => w === '::' || (w === '0.0.0.0' && v4(o));
  return x === y || covers(x, y) || covers(y, x);
}
