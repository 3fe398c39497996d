// The guest's user-mode network: passt, which libvirt and Podman run beside QEMU, here in a unit of its own as the
// guest's user. It does what slirp does inside QEMU (DHCP, NAT of TCP, UDP and ping onto the host's own sockets),
// but as a process apart: a guest that exploits it is in passt, not in QEMU, and QEMU itself keeps no IP at all
// (PrivateNetwork=yes, AF_UNIX only). passt builds a sandbox of its own as well (a user namespace, an empty mount
// namespace it pivots into, no capabilities, a seccomp filter of its own), which its unit lets it do.
import { qemuOpts } from '../escape.js';
import * as G from '../guest.js';
import type { Guest } from '../model.js';
import type { HelperKind } from './helper.js';

const PASST = '/usr/bin/passt';
/** The build passt runs instead, by exec, when the CPU has AVX2. */
const PASST_AVX2 = '/usr/bin/passt.avx2';

type Forward = Extract<Guest['network'], { mode: 'user' }>['forwards'][number];

/** passt's spelling of one forward: ADDRESS/PORT, then :GUEST-PORT when it differs. */
function forwardSpec(f: Forward): string {
  const to = f.guestPort !== undefined && f.guestPort !== f.port ? `:${f.guestPort}` : '';
  return `${f.listen}/${f.port}${to}`;
}

function forwardsOf(g: Guest, protocol: Forward['protocol']): Forward[] {
  return g.network.mode === 'user' ? g.network.forwards.filter((f) => f.protocol === protocol) : [];
}

export const passt: HelperKind = {
  kind: 'net',
  title: 'user-mode network (passt)',
  documentation: 'man:passt(1)',
  binary: PASST,
  readiness: 'forks',
  args: (g) => [
    '--socket',
    G.netSocket(g),
    // The guest's gateway address stays the gateway: passt never turns a connection to it into one to the host's
    // loopback (its default), which the unit denies as well.
    '--no-map-gw',
    // Only the ports the answers forward, each on its own address. Without -u, passt would forward the UDP ports
    // of every forwarded TCP port too.
    ...(['tcp', 'udp'] as const).flatMap((p) => {
      const flag = p === 'tcp' ? '-t' : '-u';
      const list = forwardsOf(g, p);
      return list.length ? list.flatMap((f) => [flag, forwardSpec(f)]) : [flag, 'none'];
    }),
  ],
  socket: (g) => G.netSocket(g),
  stateDirs: () => [],
  setup: () => [],
  qemuArgs: (g) => [
    '-netdev',
    // QEMU 7.2 has no reconnect= here: passt listens before QEMU starts (its unit is ready only then).
    qemuOpts('stream', [
      ['id', 'net0'],
      ['server', false],
      ['addr.type', 'unix'],
      ['addr.path', G.netSocket(g)],
    ]),
  ],
  sandbox: {
    ownSeccomp: true,
    memoryMaxMiB: 256,
    tasksMax: 8,
    coreHolds: 'the guest’s network traffic',
    exposureTarget: 2.0,
    network: 'host-ip',
    selfSandbox: {
      namespaces: ['user', 'mnt', 'ipc', 'uts', 'pid'],
      syscalls: ['capset', 'setuid', 'setgid', 'setgroups', 'mount', 'umount2', 'pivot_root'],
      why: 'passt then builds a sandbox of its own: it sets its own user and group again, unshares a user namespace and empty mount, IPC, UTS and PID namespaces, mounts an empty read-only tmpfs, pivots into it, and drops every capability',
    },
    syslog: true,
  },
  apparmor: (g) => ({
    paths: [
      { path: PASST_AVX2, perms: 'mrix', why: 'passt runs its AVX2 build when the CPU has it, under this profile' },
      { path: '/etc/resolv.conf', perms: 'r', why: 'the host’s DNS resolvers, which passt gives the guest' },
      { path: G.netRuntimeDir(g), perms: 'r', why: 'its own runtime directory', glob: '/' },
      { path: G.netSocket(g), perms: 'rw', why: 'the socket it binds for QEMU' },
    ],
    rules: [
      {
        rule: 'owner @{PROC}/@{pid}/uid_map r,',
        why: 'whether it runs in the host’s user namespace, which passt of Debian 13 reads first and fails without',
      },
      {
        rule: '@{PROC}/sys/net/ipv4/ip_local_port_range r,',
        why: 'the host’s ephemeral ports, which passt of Debian 13 keeps out of its automatic forwards',
      },
      { rule: '/ r,', why: 'its own sandbox: the root it leaves' },
      { rule: 'mount "" -> "/",', why: 'its own sandbox: the mount tree made unbindable (passt of Debian 12)' },
      { rule: 'mount options=(rw, runbindable) -> /,', why: 'the same, as passt of Debian 13 asks for it' },
      { rule: 'mount "" -> "/tmp/",', why: 'its own sandbox: the empty tmpfs it moves into' },
      { rule: 'pivot_root "/tmp/" -> "/tmp/",', why: 'its own sandbox: the pivot into that tmpfs' },
      { rule: 'umount "/",', why: 'its own sandbox: the old root, detached' },
      { rule: 'network netlink raw,', why: 'the host’s addresses and routes, which it gives the guest' },
      { rule: 'network inet stream,', why: 'the guest’s TCP connections, from the host’s own sockets' },
      { rule: 'network inet6 stream,', why: 'the same over IPv6' },
      { rule: 'network inet dgram,', why: 'the guest’s UDP and ping' },
      { rule: 'network inet6 dgram,', why: 'the same over IPv6' },
      { rule: 'network unix stream,', why: 'the socket QEMU connects to' },
      { rule: 'network unix dgram,', why: 'the system logger' },
      {
        rule: 'unix (create, bind, listen, accept, connect, read, write, getattr, getopt, setopt, shutdown, send, receive),',
        why: 'the socket QEMU connects to, and the system logger',
      },
    ],
    capabilities: {
      names: ['sys_admin', 'setpcap'],
      why: 'only inside the user namespace passt makes for its own sandbox, to build it and then drop every capability',
    },
  }),
  live: {
    // passt, or the AVX2 build it runs itself in place of passt.
    program: /^passt(\.avx2)?$/,
    // passt always installs its own filter: it has no option that turns it off.
    ownSeccomp: () => ({ on: true }),
    state: () => undefined,
  },
  readme: (g, mac) =>
    `The user-mode network is passt, in a unit of its own (${G.helperUnitName(g, 'net')}), started before QEMU and ` +
    `stopped with it: QEMU reaches it over ${G.netSocket(g)} and keeps no IP socket itself. passt runs as ` +
    `${G.userName(g)} with no capabilities, in a sandbox like QEMU's, its own seccomp filter and namespaces, and ` +
    `${mac}; it cannot reach the host's loopback or link-local ` +
    `addresses (IPAddressDeny=, and --no-map-gw), so the guest cannot either.`,
};
