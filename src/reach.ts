// What one guest's QEMU can reach, and what it cannot: the least-privilege map. One derivation feeds both the
// wizard's Review map and the bundle README's reach section, so the two never disagree.
import { CONFINEMENT } from './confine/index.js';
import * as G from './guest.js';
import { helpersOf } from './helpers/index.js';
import type { Answers, Guest } from './model.js';

export interface Reach {
  guest: string;
  user: string;
  unit: string;
  /**
   * Files and directories, with the access QEMU has, and, where it is not what a file of its kind gets (a disk
   * made the guest's user's, an ACL entry for a read-only file), how the guest's user comes to have it.
   */
  files: { path: string; access: 'r' | 'rw'; why: string; how?: string }[];
  devices: { path: string; access: 'r' | 'rw'; why: string }[];
  /** Unix sockets QEMU listens on, and who may connect. */
  sockets: { path: string; what: string; who: string }[];
  /** IP listeners. */
  listeners: string[];
  network: string;
  /** What stays out of reach whatever the guest does to QEMU, by systemd's sandbox (holds without any MAC). */
  cannot: string[];
  /** What holds only while a confinement backend the answers choose enforces, by the backend's name. */
  enforcedOnly: { by: string; what: string[] }[];
  /** With no confinement backend chosen (host.confinement none): what that leaves open; null otherwise. */
  unconfined: string | null;
}

/** The ports the guest's user-mode network forwards, for the network line. */
function forwardsText(g: Guest): string {
  if (g.network.mode !== 'user' || g.network.forwards.length === 0) return '';
  const one = (f: (typeof g.network.forwards)[number]) =>
    `${f.protocol} ${f.listen.includes(':') ? `[${f.listen}]` : f.listen}:${f.port} → guest port ${f.guestPort ?? f.port}`;
  return `; forwarded to the guest: ${g.network.forwards.map(one).join(', ')}`;
}

export function guestReach(a: Answers, g: Guest): Reach {
  // QEMU creates its sockets under the unit's UMask=0077: mode 0700, owned by the guest's user.
  const who = `root only (the socket is 0700, owned by ${G.userName(g)})`;
  const sockets = [{ path: G.qmpSocket(g), what: 'QMP (full control of the guest)', who }];
  if (g.serial.enabled)
    sockets.push({ path: G.serialSocket(g), what: `serial console (also logged to ${G.serialLog(g)})`, who });
  if (g.display.mode === 'vnc-unix') sockets.push({ path: G.vncSocket(g), what: 'VNC display', who });
  if (g.display.mode === 'spice-unix') sockets.push({ path: G.spiceSocket(g), what: 'SPICE display', who });
  const net = g.network;
  const listeners: string[] =
    net.mode === 'user'
      ? net.forwards.map(
          (f) =>
            `${f.protocol.toUpperCase()} ${f.listen.includes(':') ? `[${f.listen}]` : f.listen}:${f.port}, forwarded to the guest’s port ${f.guestPort ?? f.port} by ${net.backend === 'passt' ? 'passt' : 'QEMU (slirp)'}`,
        )
      : [];
  if (g.display.mode === 'vnc-tls')
    listeners.push(
      `VNC on ${g.display.listen}:${g.display.port}, TLS; a client certificate signed by ${g.display.tlsDir}/ca-cert.pem is required`,
    );
  if (g.display.mode === 'spice-tls')
    listeners.push(
      g.display.passwordFile
        ? `SPICE on ${g.display.listen}:${g.display.port}, TLS for encryption only (spice-server checks no client certificate); a client needs the password in ${g.display.passwordFile}, which systemd hands to QEMU with LoadCredential= (keep it root's, mode 0600, without a trailing newline)`
        : `SPICE on ${g.display.listen}:${g.display.port}, TLS for encryption only, NO PASSWORD: anyone who reaches the port gets the console`,
    );
  for (const kind of ['migration', 'nbd'] as const) {
    const r = g[kind];
    if (r?.enabled)
      listeners.push(
        `${kind === 'nbd' ? 'NBD export' : 'live migration'} on ${r.listen}:${r.port}, ${r.tls ? 'TLS' : 'PLAIN TEXT'}`,
      );
  }
  const network =
    g.network.mode === 'none'
      ? 'none: no network device, an empty network namespace'
      : g.network.mode === 'user'
        ? g.network.backend === 'passt'
          ? `user-mode network from passt (${G.helperUnitName(g, 'net')}), reached over ${G.netSocket(g)}: QEMU itself has an empty network namespace and no IP socket; through passt the guest reaches what this host reaches over IP, except the host’s loopback and link-local addresses, which passt’s unit denies (IPAddressDeny=); the host’s other addresses stay reachable${forwardsText(g)}`
          : `user-mode NAT inside QEMU (slirp, an accepted risk): it reaches what this host reaches over IP, except the host’s loopback and link-local addresses, which the unit denies (IPAddressDeny=); the host’s other addresses stay reachable${forwardsText(g)}`
        : `tap ${G.tapDevice(g)}${g.network.bridge ? ` on bridge ${g.network.bridge}` : ' (no bridge: connect it yourself)'}${g.network.vhost ? ', vhost-net' : ''}; no IP sockets of its own`;
  const files = [
    ...G.filesOf(g),
    ...G.tlsDirsOf(g).map((t) => ({
      path: `${t.path}/`,
      access: 'r' as const,
      why: t.why,
      how: 'left as it is; its keys must be readable by the guest’s user, as TLS keys below says',
    })),
    ...G.qemuShares(a, g).map((sh) => ({
      ...sh,
      path: `${sh.path}/`,
      how:
        sh.access === 'rw'
          ? 'made the guest’s user’s, mode 0700; what is already in it is left as it is'
          : 'left as it is; its files must be readable by the guest’s user: world-readable, or an ACL entry you give',
    })),
    {
      path: `${G.runtimeDir(g)}/`,
      access: 'rw' as const,
      why: 'its sockets',
      how: 'made by systemd for the unit, owned by the guest’s user, mode 0750',
    },
    {
      path: `${G.stateDir(g)}/`,
      access: 'rw' as const,
      why: 'its state',
      how: 'owned by the guest’s user, mode 0700',
    },
    { path: G.serialLog(g), access: 'rw' as const, why: 'serial console log' },
  ];
  const cannot = [
    'write anywhere else: the whole file system is read-only to it',
    ...(a.guests.length > 1
      ? ['other guests’ disks, files, sockets and directories: they are not there in its view']
      : []),
    'home directories and other services’ /tmp',
    'devices other than those listed',
    'other processes, the kernel’s tunables, modules and logs',
    ...(g.network.mode === 'none' && listeners.length === 0 ? ['any network'] : []),
    ...(G.usesPasst(g) && !G.usesInet(g)
      ? ['any IP socket of its own: its network namespace is empty, and the guest’s network is passt’s']
      : []),
    'any capability or privilege (no root, no setuid)',
    ...helpersOf(a, g).map(
      (h) =>
        `the state of its ${h.title} (${h.stateDirs(g).join(', ')}): hidden from QEMU, which reaches the helper only through ${h.socket(g)}`,
    ),
  ];
  const chosen = CONFINEMENT.filter((b) => b.chosen(a));
  return {
    guest: g.name,
    user: G.userName(g),
    unit: G.unitName(g),
    files,
    devices: G.devicesOf(a, g),
    sockets,
    listeners,
    network,
    cannot,
    enforcedOnly: chosen.map((b) => ({ by: b.name, what: b.reach(a, g) })),
    unconfined: chosen.length
      ? null
      : 'no mandatory access control (host.confinement is none): QEMU can read any file on the host its user may read (/usr, /etc, …)',
  };
}

/** The map as plain lines: the wizard shows them, scrolled. */
export function reachLines(r: Reach): string[] {
  const access = (x: 'r' | 'rw') => (x === 'rw' ? 'rw' : 'r ');
  return [
    `${r.guest} — runs as ${r.user} (${r.unit})`,
    ...r.files.map((f) => `  file   ${access(f.access)} ${f.path}  (${f.why})`),
    ...r.devices.map((d) => `  device ${access(d.access)} ${d.path}  (${d.why})`),
    ...r.sockets.map((s) => `  socket    ${s.path}  ${s.what}; who may connect: ${s.who}`),
    ...r.listeners.map((l) => `  listen    ${l}`),
    `  network   ${r.network}`,
    ...r.cannot.map((c) => `  cannot    ${c}`),
    ...r.enforcedOnly.flatMap((e) => e.what.map((c) => `  ${e.by.padEnd(9)} ${c}`)),
    ...(r.unconfined ? [`  no MAC    ${r.unconfined}`] : []),
  ];
}
