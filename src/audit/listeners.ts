// Network listeners: what the command line asks QEMU to listen on (VNC, SPICE, monitors and other character
// devices over TCP or telnet, incoming migration), confirmed against the sockets the process really holds in
// its own network namespace, and any TCP listener the command line does not explain (an NBD server or a
// migration started through the monitor).
import { isOn, parseHostPort, type Endpoint } from './cmdline.js';
import { finding, type AuditCheck, type Finding, type QemuProcess, type TcpListener } from './types.js';

const isLoopback = (host: string) => host === 'localhost' || host.startsWith('127.') || host === '::1';

/** "(listening: LINE)" when the process holds a matching socket, or what was seen instead. */
function confirm(p: QemuProcess, port: number): { text: string; listener: TcpListener | undefined } {
  if (!p.listeners) return { text: ' (its sockets could not be read)', listener: undefined };
  const l = p.listeners.find((x) => x.port === port);
  return l
    ? { text: `; listening: ${l.line}`, listener: l }
    : { text: `; no listening socket on port ${port} seen`, listener: undefined };
}

/** The TCP endpoint of a -vnc display ("HOST:DISPLAY", ":DISPLAY"), or undefined for unix: and none. */
export function vncEndpoint(display: string): Endpoint | undefined {
  if (display === 'none' || display.startsWith('unix:') || display.startsWith('vsock:')) return undefined;
  const ep = parseHostPort(display.startsWith('tcp:') ? display.slice(4) : display);
  return ep ? { host: ep.host, port: 5900 + ep.port } : undefined;
}

interface Explained {
  ports: Set<number>;
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
    for (const e of endpoints) {
      seen.ports.add(e.port);
      const c = confirm(p, e.port);
      const onNetwork = c.listener ? !c.listener.loopback : !isLoopback(e.host);
      const tls = vnc.opts.has('tls-creds') || isOn(vnc.opts.get('tls'));
      const auth = isOn(vnc.opts.get('password')) || isOn(vnc.opts.get('sasl')) || vnc.opts.has('password-secret');
      if (!onNetwork || tls) continue;
      out.push(
        finding(
          'listeners.vnc',
          auth ? 'medium' : 'high',
          p,
          `-vnc ${vnc.raw}${c.text}`,
          `VNC is a user-facing interface QEMU treats as untrusted input; on ${e.host || 'every address'} without TLS ${auth ? 'its password (at most 8 characters, DES) and the whole session cross the network in the clear' : 'anyone who reaches the port gets the guest’s console'}.`,
          'The console is a unix socket only the guest’s user can open (vnc-unix), or VNC with x509 TLS and verified client certificates (vnc-tls).',
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
  return p.cmd.chardevs.flatMap((c) => {
    if (!c.tcp || !c.tcp.server) return [];
    seen.ports.add(c.tcp.port);
    const monitor = /^-(qmp|monitor)|^-mon/.test(c.via);
    const conf = confirm(p, c.tcp.port);
    const what = monitor ? (/QMP|-qmp/.test(c.via) ? 'QMP monitor' : 'human monitor (HMP)') : 'character device';
    return [
      finding(
        monitor ? 'listeners.monitor-tcp' : 'listeners.chardev-tcp',
        monitor ? 'high' : 'medium',
        p,
        `${c.via.startsWith('-chardev') ? '-chardev' : c.via.split(' ')[0]} ${c.raw}${c.via.startsWith('-mon') ? ` (used by ${c.via})` : ''}${conf.text}`,
        monitor
          ? `The ${what} controls QEMU completely (it can add devices, read memory, start migrations) and has no authentication: over ${c.tcp.telnet ? 'telnet' : 'TCP'} every local user${isLoopback(c.tcp.host) ? '' : ' and anyone on the network'} who reaches the port holds the guest.`
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
      `-incoming ${inc}${c.text}`,
      'Live migration is a network protocol QEMU treats as untrusted: whoever connects first to a wildcard address feeds this QEMU a crafted device state.',
      'Migration listens only where the answers say, with TLS unless the risk "migration-plaintext" is accepted with a reason.',
      'guests.N.migration',
    ),
  ];
}

const listeners: AuditCheck = {
  name: 'listeners',
  tool: null,
  debianPackage: null,
  run: (view) =>
    view.processes.flatMap((p) => {
      const seen: Explained = { ports: new Set() };
      const out = [...displayFindings(p, seen), ...chardevFindings(p, seen), ...incomingFindings(p, seen)];
      for (const l of p.listeners ?? []) {
        if (l.loopback || seen.ports.has(l.port)) continue;
        const tls = p.cmd.tlsCreds.size > 0;
        if (tls) continue;
        out.push(
          finding(
            'listeners.unexplained-tcp',
            'high',
            p,
            l.line,
            'This QEMU listens on the network for something its command line does not ask for (an NBD export or a migration started through the monitor) and has no TLS credentials: network protocols such as NBD and migration are untrusted input, and their data crosses the network in the clear.',
            'NBD exports and migration are declared in the answers and use TLS unless the risk "nbd-plaintext" or "migration-plaintext" is accepted with a reason.',
            'guests.N.nbd',
          ),
        );
      }
      return out;
    }),
};

export const listenerChecks: AuditCheck[] = [listeners];
