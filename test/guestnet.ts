// A guest's own traffic through its passt, in the proof VMs, whose guests are boot sectors with no network stack: the
// network card in user space (test/clients/passt.py) takes the guest's place on passt's socket. What it reaches is
// made here, in the VM: a router and a web server in a network namespace of the proof's own, at the other end of a
// veth pair whose near end is the VM's interface with the default route (passt gives its guest that interface's
// address and route), and a web server on the VM's loopback, which the guest must not reach.
import assert from 'node:assert/strict';
import { reported, reportedAll, type VmResult } from './vmboot.js';

export const WEB = { router: '10.78.0.2', address: '10.78.0.3', port: 8080, loopbackPort: 8090 } as const;
const HOST_ADDRESS = '10.78.0.1';
const NAMESPACE = 'qhnet';

/** Shell: the VM's interface, its route, and the namespace behind it; reports KEY=0 when all was made. */
export function routedNamespace(key: string): string {
  return `ip netns add ${NAMESPACE} && ip link add qh0 type veth peer name qh1 netns ${NAMESPACE} &&
  ip addr add ${HOST_ADDRESS}/24 dev qh0 && ip link set qh0 up && ip -n ${NAMESPACE} link set qh1 up &&
  ip -n ${NAMESPACE} addr add ${WEB.router}/24 dev qh1 && ip -n ${NAMESPACE} addr add ${WEB.address}/24 dev qh1 &&
  ip route add default via ${WEB.router}
r ${key} $?`;
}

/** Shell: what routedNamespace made, undone (a part's cleanup). */
export const UNROUTE = `ip link del qh0 2>/dev/null || true\nip netns del ${NAMESPACE} 2>/dev/null || true\n`;

/**
 * Shell: both web servers (python3's), each serving the page at /run/www/index.txt; reports web=serving once both
 * listen. Their PIDs are $web and $loopback_web.
 */
export const WEB_SERVERS = `mkdir -p /run/www && echo 'served in the namespace' > /run/www/index.txt
ip netns exec ${NAMESPACE} python3 -m http.server --bind ${WEB.address} ${WEB.port} --directory /run/www > /dev/null 2>&1 &
web=$!
python3 -m http.server --bind 127.0.0.1 ${WEB.loopbackPort} --directory /run/www > /dev/null 2>&1 &
loopback_web=$!
serving() { ip netns exec ${NAMESPACE} ss -Hltn 'sport = :${WEB.port}' | grep -q . && ss -Hltn 'sport = :${WEB.loopbackPort}' | grep -q .; }
wait_until 120 serving && r web serving || r web "not serving"`;

/**
 * The client's requests: a ping of the web server's address, its page, and the server on the host's loopback,
 * directly and through the router's address (which passt's default maps to the host's loopback).
 */
export const GUEST_NET_REQUESTS = [
  `ping:${WEB.address}`,
  `get:${WEB.address}:${WEB.port}:/index.txt`,
  `connect:gateway_loopback:${WEB.router}:${WEB.loopbackPort}`,
  `connect:loopback:127.0.0.1:${WEB.loopbackPort}`,
].join(' ');

/**
 * Shell: the bundle README's own command that lets its guests ping (src/gen/readme.ts), pasted as an operator would
 * (root needs no sudo here); reports ping_paste=STATUS OUTPUT and ping_range=LOW HIGH, the range after it.
 */
export const PASTE_PING_RANGE = `sudo() { "$@"; }
eval "$(grep -m1 '^sudo mkdir -p /etc/sysctl.d && echo "net.ipv4.ping_group_range' /bundle/README.md)" > /run/ping-range.out 2>&1
r ping_paste "$? $(tr '\\n' ' ' < /run/ping-range.out)"
rm -f /run/ping-range.out
r ping_range "$(tr '\t' ' ' < /proc/sys/net/ipv4/ping_group_range)"`;

/**
 * What the client says when passt serves its guest and the unit keeps the guest from the host's loopback: passt
 * resets a connection to the router's address, where nothing listens in the namespace; the one to the host's
 * loopback it never makes (the unit's egress filter drops its SYN), so the guest gets a reset or nothing.
 */
export const GUEST_NET_SAID = [
  `dhcp=${HOST_ADDRESS}/24 router=${WEB.router}`,
  'ping=ok',
  'get=HTTP/1.0 200 OK | served in the namespace',
  'gateway_loopback=refused',
  /^loopback=(refused|timeout)$/,
];

/** Asserts the client's lines are what GUEST_NET_SAID says, in order. */
export function assertGuestNet(said: string[], context: string): void {
  assert.equal(said.length, GUEST_NET_SAID.length, `${said.join('\n')}\n${context}`);
  GUEST_NET_SAID.forEach((want, i) =>
    typeof want === 'string'
      ? assert.equal(said[i], want, `${said.join('\n')}\n${context}`)
      : assert.match(said[i]!, want, `${said.join('\n')}\n${context}`),
  );
}

/** Shell: the network card as guest g's user, needing g's passt unit as QEMU's unit does, its lines in OUT. */
const runCard = (g: string, requests: string, out: string) =>
  `systemd-run --wait --pipe --quiet -p User=qemu-${g} -p Group=qemu-${g} -p Requires=qemu-${g}-net.service \\
  -p After=qemu-${g}-net.service /usr/bin/python3 /qh/test/clients/passt.py /run/qemu-harden/${g}/net/passt.sock \\
  ${requests} > ${out} 2>&1`;

/** What guestNetUnderApparmor leaves in /run, for a part's cleanup. */
export const guestNetFiles = (g: string) => `/run/${g}-ping.out /run/${g}-net.out /run/www`;

/**
 * Shell, in a VM enforcing AppArmor: guest g's network as its guest sees it, through its passt in passt's enforced
 * profile. g's QEMU stops (and its passt with it), and the network card takes its place as g's user. With
 * `pingBefore`, it first pings while the host's range for ping sockets is Debian's (no group); then the README's
 * command widens the range and the card makes GUEST_NET_REQUESTS. `serversRunning`: WEB_SERVERS ran already.
 */
export function guestNetUnderApparmor(g: string, o: { serversRunning: boolean; pingBefore: boolean }): string {
  return [
    'dmesg -C',
    ...(o.serversRunning ? [] : [WEB_SERVERS]),
    `systemctl stop qemu-${g}.service`,
    `r ${g}.net_stopped "$(systemctl show -p ActiveState --value qemu-${g}-net.service)"`,
    ...(o.pingBefore
      ? [
          runCard(g, `ping:${WEB.address}`, `/run/${g}-ping.out`),
          `sed 's/^/RESULT ${g}.ping_before=/' /run/${g}-ping.out`,
          `r ${g}.ping_socket_refused "$(journalctl -b -u qemu-${g}-net.service --no-pager -o cat | grep -c 'Cannot open "ping" socket')"`,
        ]
      : []),
    PASTE_PING_RANGE,
    runCard(g, GUEST_NET_REQUESTS, `/run/${g}-net.out`),
    `r ${g}.net_client_exit $?`,
    `sed 's/^/RESULT ${g}.guest_net=/' /run/${g}-net.out`,
    'kill $web $loopback_web',
    `journalctl -b -u qemu-${g}-net.service --no-pager -o cat | tail -8 | sed 's/^/RESULT ${g}.net_journal=/'`,
    `dmesg | grep 'apparmor="DENIED"' | head -20 | sed 's/^/RESULT net_client_denied=/'`,
  ].join('\n');
}

/** Asserts what guestNetUnderApparmor reported: the card's lines, no denial, and the ping refused before if asked. */
export function assertGuestNetUnderApparmor(vm: VmResult, g: string, pingBefore: boolean): void {
  const result = (key: string) => reported(vm, key);
  const journal = reportedAll(vm, `${g}.net_journal`).join('\n');
  assert.equal(result('web'), 'serving');
  assert.equal(result(`${g}.net_stopped`), 'inactive', `${g}’s passt stops with its QEMU`);
  if (pingBefore) {
    // Before the README's command: Debian's range admits no group, and passt cannot open its echo socket.
    assert.deepEqual(reportedAll(vm, `${g}.ping_before`), [GUEST_NET_SAID[0], 'ping=timeout']);
    assert.notEqual(result(`${g}.ping_socket_refused`), '0', 'passt said it cannot open its ping socket');
  }
  assert.notEqual(result('ping_range'), '1 0', `the README’s command widened the range: ${result('ping_paste')}`);
  assertGuestNet(reportedAll(vm, `${g}.guest_net`), journal);
  assert.equal(result(`${g}.net_client_exit`), '0');
  assert.deepEqual(reportedAll(vm, 'net_client_denied'), [], `nothing was denied to ${g}’s passt`);
}

/** Where the SELinux proofs put the network card: where the virt domain may read and run it (usr_t). */
export const SELINUX_CARD = '/usr/local/share/qh-proof/passt.py';

/**
 * Shell, in a VM enforcing SELinux: guest g's network as its guest sees it, through its passt in g's own context.
 * g's QEMU stops (and its passt with it), the README's command widens the range for ping sockets, and the network
 * card takes QEMU's place in g's context (from /proof/G.context) as g's user, started by systemd as QEMU is; its
 * lines go to the journal, ended by its status. The script's `avcs` and `since` read the kernel's denials.
 */
export function guestNetUnderSelinux(g: string): string {
  return `${WEB_SERVERS}
${PASTE_PING_RANGE}
systemctl stop qemu-${g}.service
r ${g}.net_stopped "$(systemctl show -p ActiveState --value qemu-${g}-net.service)"
net_mark=$(avcs | wc -l)
systemd-run --wait --quiet --unit=passt-card -p User=qemu-${g} -p Group=qemu-${g} -p NoNewPrivileges=yes \\
  -p Requires=qemu-${g}-net.service -p After=qemu-${g}-net.service -p RuntimeMaxSec=300 \\
  -p "SELinuxContext=$(cat /proof/${g}.context)" \\
  /bin/sh -c "python3 ${SELINUX_CARD} /run/qemu-harden/${g}/net/passt.sock ${GUEST_NET_REQUESTS}; echo status=\\$?"
card_said() { journalctl -b _SYSTEMD_UNIT=passt-card.service --no-pager -o cat; }
wait_until 30 eval "card_said | grep -q '^status='"
card_said | sed 's/^/RESULT ${g}.guest_net=/'
since $net_mark | sed 's/^/RESULT guest_net_avc=/'
kill $web $loopback_web`;
}

/** Asserts what guestNetUnderSelinux reported: the card's lines and no denial of passt's. */
export function assertGuestNetUnderSelinux(vm: VmResult, g: string): void {
  const result = (key: string) => reported(vm, key);
  assert.equal(result('web'), 'serving');
  assert.equal(result(`${g}.net_stopped`), 'inactive', `${g}’s passt stops with its QEMU`);
  assert.notEqual(result('ping_range'), '1 0', `the README’s command widened the range: ${result('ping_paste')}`);
  const said = reportedAll(vm, `${g}.guest_net`);
  assert.equal(said.at(-1), 'status=0', said.join('\n'));
  assertGuestNet(said.slice(0, -1), '');
  // Python's own start (glibc reading vm.overcommit_memory) is the card's, not passt's.
  assert.deepEqual(
    reportedAll(vm, 'guest_net_avc').filter((l) => !/ comm="python3" /.test(l)),
    [],
  );
}
