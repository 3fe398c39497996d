// The user-mode network inside QEMU: slirp (-netdev user, -nic user, -net user) is a TCP/IP stack in the QEMU
// process, which then holds IP sockets of the host on the guest's behalf. A guest that exploits slirp is in QEMU,
// and QEMU's unit must keep IP for it. passt does the same job as a process of its own (src/helpers/passt.ts).
import { listenerText } from '../procfs.js';
import { optsOrJson } from './cmdline.js';
import { finding, type AuditCheck, type QemuProcess } from './types.js';

/** The options that run slirp in this QEMU, as written ("-netdev user,id=n0,hostfwd=…"). */
export function slirpOptions(p: QemuProcess): string[] {
  return p.cmd.options.flatMap((o) => {
    if (!['netdev', 'nic', 'net'].includes(o.name) || o.value === undefined) return [];
    const { opts } = optsOrJson(o.value, 'type');
    return opts.get('type') === 'user' ? [`-${o.name} ${o.value}`] : [];
  });
}

/** The host ports slirp forwards to the guest (hostfwd=[tcp|udp]:[ADDR]:PORT-…), which QEMU listens on itself. */
export function slirpForwardPorts(p: QemuProcess): Set<number> {
  const ports = new Set<number>();
  for (const o of slirpOptions(p))
    for (const m of o.matchAll(/hostfwd=(?:tcp|udp)?:[^,:]*(?:\[[^\]]*\])?:(\d+)-/g)) ports.add(Number(m[1]));
  return ports;
}

const slirp: AuditCheck = {
  name: 'network.slirp',
  tool: null,
  debianPackage: null,
  judges: 'command line',
  run: (view) =>
    view.processes.flatMap((p) => {
      const opts = slirpOptions(p);
      if (!opts.length) return [];
      const held = p.listeners?.length
        ? `; the IP sockets it holds: ${p.listeners.map(listenerText).join(', ')}`
        : p.listeners
          ? '; it holds no listening IP socket now, and opens one for each connection its guest makes'
          : ' (its sockets could not be read)';
      return [
        finding(
          'network.slirp',
          'medium',
          p,
          'runs the user-mode network inside QEMU (slirp): QEMU holds IP sockets of the host for its guest',
          `${opts.join(' ')}${held}`,
          'slirp is a whole TCP/IP stack inside the QEMU process, fed by the guest: a guest that exploits it is in QEMU itself, and QEMU must keep IP sockets of the host for it, so the process cannot lose the network.',
          'User-mode networking is passt, in a unit of its own as the guest’s user, with its own seccomp filter, namespaces and AppArmor profile; QEMU reaches it over a unix socket and keeps no IP at all (PrivateNetwork=yes, AF_UNIX only). slirp stays only where passt is not installed, as the risk "slirp" accepted with a reason.',
          'guests.N.network.backend',
        ),
      ];
    }),
};

export const networkChecks: AuditCheck[] = [slirp];
