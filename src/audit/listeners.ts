// Network listeners: what the command line asks QEMU to listen on (VNC, SPICE, monitors and other character
// devices over TCP or telnet, incoming migration), confirmed against the sockets the process really holds in
// its own network namespace, and any TCP listener the command line does not explain (an NBD server or a
// migration started through the monitor; slirp's forwarded ports are explained, and network.ts reports slirp).
import { listenerText, type InetListener } from '../procfs.js';
import { isOn, parseHostPort, type Endpoint, type QemuCommandLine } from './cmdline.js';
import { slirpForwardPorts } from './network.js';
import { finding, type AuditCheck, type Finding, type QemuProcess } from './types.js';

const isLoopback = (host: string) => host === 'localhost' || host.startsWith('127.') || host === '::1';

/** "; listening: 0.0.0.0:5901 tcp LISTEN" when the process holds a matching socket, or what was seen instead. */
function confirm(p: QemuProcess, port: number): { text: string; listener: InetListener | undefined } {
  if (!p.listeners) return { text: ' (its sockets could not be read)', listener: undefined };
  const l = p.listeners.find((x) => x.port === port && x.proto.startsWith('tcp'));
  return l
    ? { text: `; listening: ${listenerText(l)}`, listener: l }
    : { text: `; no listening socket on port ${port} seen`, listener: undefined };
}

/** The TCP endpoint of a -vnc display ("HOST:DISPLAY", ":DISPLAY"), or undefined for unix: and none. */
export function vncEndpoint(display: string): Endpoint | undefined {
  if (display === 'none' || display.startsWith('unix:') || display.startsWith('vsock:')) return undefined;
  const ep = parseHostPort(display.startsWith('tcp:') ? display.slice(4) : display);
  return ep ? { host: ep.host, port: 5900 + ep.port } : undefined;
}

/**
 * Who VNC lets in, as QEMU decides it (ui/vnc.c, vnc_display_setup_auth): with x509 credentials that verify the
 * peer, only clients with a certificate from its CA; with PSK credentials, only clients that hold the key; with
 * anonymous credentials, or x509 with verify-peer=off, the session is encrypted but any client completes the
 * handshake. A password or SASL comes on top of that; without either, whoever completes the handshake is in.
 */
export function vncAccess(cmd: QemuCommandLine): {
  tls: 'none' | 'unauthenticated' | 'client certificates' | 'pre-shared key' | 'unknown credentials';
  password: boolean;
  creds: string | undefined;
} {
  const o = cmd.vnc!.opts;
  const password = isOn(o.get('password')) || o.has('password-secret') || isOn(o.get('sasl'));
  const id = o.get('tls-creds');
  if (id !== undefined) {
    const c = cmd.tlsCreds.get(id);
    const tls = !c
      ? 'unknown credentials'
      : c.type === 'tls-creds-psk'
        ? 'pre-shared key'
        : c.type === 'tls-creds-x509' && c.verifyPeer
          ? 'client certificates'
          : 'unauthenticated';
    return { tls, password, creds: id };
  }
  // QEMU before 4.0: "tls" alone is anonymous TLS, "x509=DIR" a certificate without checking the client's,
  // "x509verify=DIR" one that checks it.
  if (o.has('x509verify')) return { tls: 'client certificates', password, creds: undefined };
  if (isOn(o.get('tls')) || o.has('x509')) return { tls: 'unauthenticated', password, creds: undefined };
  return { tls: 'none', password, creds: undefined };
}

interface Explained {
  ports: Set<number>;
}

function credsText(p: QemuProcess, id: string | undefined): string {
  const c = id === undefined ? undefined : p.cmd.tlsCreds.get(id);
  if (!c) return '';
  return ` (tls-creds ${id}: ${c.type}${c.type === 'tls-creds-x509' ? `, verify-peer=${c.verifyPeer ? 'on' : 'off'}` : ''})`;
}

function displayFindings(p: QemuProcess, seen: Explained): Finding[] {
  const out: Finding[] = [];
  const vnc = p.cmd.vnc;
  if (vnc) {
    const ep = vncEndpoint(vnc.opts.get('display') ?? '');
    const ws = vnc.opts.get('websocket');
    const endpoints = [
      ...(ep ? [ep] : []),
      ...(ws && ep && /^\d+$/.test(ws) ? [{ host: ep.host, port: Number(ws) }] : []),
    ];
    const access = vncAccess(p.cmd);
    for (const e of endpoints) {
      seen.ports.add(e.port);
      const c = confirm(p, e.port);
      const onNetwork = c.listener ? !c.listener.loopback : !isLoopback(e.host);
      if (!onNetwork || access.tls === 'client certificates' || access.tls === 'pre-shared key') continue;
      if (access.tls === 'unknown credentials') continue;
      const where = e.host || 'every address';
      const tls = access.tls === 'unauthenticated';
      out.push(
        finding(
          'listeners.vnc',
          access.password ? 'medium' : 'high',
          p,
          tls
            ? `VNC on ${where}:${e.port} with TLS that checks no client${access.password ? ', a password only' : ' and no password: anyone who connects gets the console'}`
            : `VNC on ${where}:${e.port} without TLS${access.password ? '' : ' or password: anyone who connects gets the console'}`,
          `-vnc ${vnc.raw}${credsText(p, access.creds)}${c.text}`,
          tls
            ? `VNC is a user-facing interface QEMU treats as untrusted input; these TLS credentials encrypt the session but check no client certificate, so ${access.password ? 'only the VNC password (at most 8 characters) keeps anyone who reaches the port out' : 'anyone who reaches the port completes the handshake and gets the guest’s console (SecurityResult 0 without certificate or password)'}.`
            : `VNC is a user-facing interface QEMU treats as untrusted input; on ${where} without TLS ${access.password ? 'its password (at most 8 characters, DES) and the whole session cross the network in the clear' : 'anyone who reaches the port gets the guest’s console'}.`,
          'The console is a unix socket only the guest’s user can open (vnc-unix), or VNC with x509 TLS and verified client certificates (vnc-tls, verify-peer=on).',
          'guests.N.display',
        ),
      );
    }
  }
  const spice = p.cmd.spice;
  if (spice) {
    const host = spice.opts.get('addr') ?? '';
    const noTicket = isOn(spice.opts.get('disable-ticketing'));
    for (const [key, tls] of [
      ['port', false],
      ['tls-port', true],
    ] as const) {
      const port = Number(spice.opts.get(key));
      if (!port) continue;
      seen.ports.add(port);
      const c = confirm(p, port);
      const onNetwork = c.listener ? !c.listener.loopback : !isLoopback(host);
      if (!onNetwork || (tls && !noTicket)) continue;
      out.push(
        finding(
          'listeners.spice',
          !tls && noTicket ? 'high' : 'medium',
          p,
          `SPICE on ${host || 'every address'}:${port}${tls ? ' (TLS)' : ' without TLS'}${noTicket ? ' with disable-ticketing: no password' : ''}`,
          `-spice ${spice.raw}${c.text}`,
          !tls
            ? `SPICE is a user-facing interface QEMU treats as untrusted input; its plain port carries the session unencrypted${noTicket ? ', and disable-ticketing lets anyone who reaches it in without a password' : ''}.`
            : 'SPICE is a user-facing interface QEMU treats as untrusted input; with disable-ticketing anyone who completes the TLS handshake gets the console.',
          'A network display is only offered with TLS (vnc-tls with verified client certificates, or spice-tls); otherwise the console is a unix socket.',
          'guests.N.display',
        ),
      );
    }
  }
  return out;
}

function chardevFindings(p: QemuProcess, seen: Explained): Finding[] {
  const asRoot = p.uids.some((u) => u === 0);
  return p.cmd.chardevs.flatMap((c) => {
    if (!c.tcp || !c.tcp.server) return [];
    seen.ports.add(c.tcp.port);
    const monitor = /^-(qmp|monitor)|^-mon/.test(c.via);
    const conf = confirm(p, c.tcp.port);
    const what = monitor ? (/QMP|-qmp/.test(c.via) ? 'QMP monitor' : 'human monitor (HMP)') : 'character device';
    const network = !isLoopback(c.tcp.host);
    const where = `${c.tcp.host || 'every address'}:${c.tcp.port}`;
    const evidence = `${c.via.startsWith('-chardev') ? '-chardev' : c.via.split(' ')[0]} ${c.raw}${c.via.startsWith('-mon') ? ` (used by ${c.via})` : ''}${conf.text}`;
    if (monitor && asRoot)
      return [
        finding(
          'listeners.monitor-tcp-root',
          'high',
          p,
          `any local user${network ? ' and anyone on the network' : ''} is root: this root QEMU's ${what} listens on ${where} without authentication`,
          `${evidence}; ${p.status.size ? `/proc/${p.pid}/status: Uid:\t${p.status.get('Uid')}` : 'runs as root'}`,
          `This QEMU runs as root and its ${what} has no authentication: whoever connects to ${where} over ${c.tcp.telnet ? 'telnet' : 'TCP'} (every local user${network ? ', and anyone who reaches it over the network' : ''}) commands a root process that can write any file of the host (blockdev-add, drive-mirror, dump-guest-memory) or, unless -sandbox denies spawn, run any program (migrate to "exec:…"): connecting is becoming root.`,
          'QEMU never runs as root, and its monitor is a unix socket in the guest’s own runtime directory, mode 0750 and owned by the guest’s user.',
          null,
        ),
      ];
    return [
      finding(
        monitor ? 'listeners.monitor-tcp' : 'listeners.chardev-tcp',
        monitor ? 'high' : 'medium',
        p,
        `${what} on ${where} over ${c.tcp.telnet ? 'telnet' : 'TCP'}, without authentication`,
        evidence,
        monitor
          ? `The ${what} controls QEMU completely (it can add devices, read memory, start migrations) and has no authentication: over ${c.tcp.telnet ? 'telnet' : 'TCP'} every local user${network ? ' and anyone on the network' : ''} who reaches the port holds the guest.`
          : `A ${c.tcp.telnet ? 'telnet' : 'TCP'} ${what} has no authentication: whoever reaches the port talks to the guest (a serial console is often a root login).`,
        'The monitor and serial console are unix sockets in the guest’s own runtime directory, mode 0750 and owned by the guest’s user.',
        monitor ? null : 'guests.N.serial',
      ),
    ];
  });
}

function incomingFindings(p: QemuProcess, seen: Explained): Finding[] {
  const inc = p.cmd.incoming;
  if (!inc || !inc.startsWith('tcp:')) return [];
  const ep = parseHostPort(inc.slice(4).split(',')[0]!);
  if (!ep) return [];
  seen.ports.add(ep.port);
  if (!['', '0', '0.0.0.0', '::', '[::]'].includes(ep.host)) return [];
  const c = confirm(p, ep.port);
  return [
    finding(
      'listeners.incoming',
      'high',
      p,
      `awaits an incoming migration on every address, port ${ep.port}`,
      `-incoming ${inc}${c.text}`,
      'Live migration is a network protocol QEMU treats as untrusted: whoever connects first to a wildcard address feeds this QEMU a crafted device state.',
      'Migration listens only where the answers say, with TLS unless the risk "migration-plaintext" is accepted with a reason.',
      'guests.N.migration',
    ),
  ];
}

const commandLineListeners: AuditCheck = {
  name: 'listeners',
  tool: null,
  debianPackage: null,
  judges: 'command line',
  run: (view) =>
    view.processes.flatMap((p) => {
      const seen: Explained = { ports: new Set() };
      return [...displayFindings(p, seen), ...chardevFindings(p, seen), ...incomingFindings(p, seen)];
    }),
};

const unexplained: AuditCheck = {
  name: 'listeners.unexplained-tcp',
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view) =>
    view.processes.flatMap((p) => {
      const seen: Explained = { ports: new Set() };
      displayFindings(p, seen);
      chardevFindings(p, seen);
      incomingFindings(p, seen);
      // slirp's forwards are QEMU's own listeners, which network.slirp reports.
      for (const port of slirpForwardPorts(p)) seen.ports.add(port);
      if (p.cmd.tlsCreds.size > 0) return [];
      return (p.listeners ?? [])
        .filter((l) => l.proto.startsWith('tcp') && !l.loopback && !seen.ports.has(l.port))
        .map((l) =>
          finding(
            'listeners.unexplained-tcp',
            'high',
            p,
            `listens on ${listenerText(l)}, which its command line does not ask for, without TLS`,
            `listening: ${listenerText(l)} (socket inode ${l.inode}, on no option of the command line)`,
            'This QEMU listens on the network for something its command line does not ask for (an NBD export or a migration started through the monitor) and has no TLS credentials: network protocols such as NBD and migration are untrusted input, and their data crosses the network in the clear.',
            'NBD exports and migration are declared in the answers and use TLS unless the risk "nbd-plaintext" or "migration-plaintext" is accepted with a reason.',
            'guests.N.nbd',
          ),
        );
    }),
};

export const listenerChecks: AuditCheck[] = [commandLineListeners, unexplained];
