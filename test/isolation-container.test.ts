// Runtime isolation under real systemd in a throwaway container, all guests under TCG: the SPICE password
// handed over by LoadCredential=, the empty /run that keeps host sockets out of reach, live migration over TLS
// between two units in both directions, the graceful stop through QMP, and a Linux guest on passt's user-mode
// network with folders shared over 9p. One container serves every check.
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BOOT_MARKER, writeBootDisk } from './bootdisk.js';
import { makeCerts } from './certs.js';
import { Container } from './container.js';
import { cli, REPO, requireTool, tempDir, waitUntil } from './helpers.js';
import { guestResults, writeLinuxGuest } from './linuxguest.js';

const PASSWORD = 'qh-spice-ticket-7f3a';
const GUESTS = [
  { name: 'src', spicePort: 5930, migrationPort: 49152 },
  { name: 'dst', spicePort: 5931, migrationPort: 49153 },
];
const tlsDir = (g: string) => `/etc/qh-tls/${g}`;

/**
 * The Linux guest on passt: the container's network namespace (its own, --private-network) gets a veth pair to a
 * namespace the test makes, SRV, which is its gateway and where an HTTP server listens on an address of its own
 * behind it; the container's loopback has another server, which the guest must not reach. Its folders: one
 * read-only, one writable (the risk accepted).
 */
const LAN = 'lan';
const LAN_ADDRESS = '10.77.0.1';
const GATEWAY = '10.77.0.2';
const SRV_ADDRESS = '10.77.1.1';
const SRV_PORT = 8080;
const LOOPBACK_PORT = 8081;
const FORWARD_PORT = 8022;
const SHARE_RO = '/srv/shares/lan-ro';
const SHARE_RW = '/srv/shares/lan-rw';
const LAN_SCRIPT = `ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /udhcpc.sh -n -q -t 20 -T 2 >/dev/null 2>&1
r dhcp $?
r addr "$(ip -4 -o addr show dev eth0 | awk '{print $4}')"
gw=$(ip route | awk '/^default/ {print $3}')
r gateway "$gw"
r fetch "$(fetch ${SRV_ADDRESS} ${SRV_PORT} hello.txt)"
r loopback "$(fetch "$gw" ${LOOPBACK_PORT} secret.txt)"
mkdir -p /mnt/ro /mnt/rw /www
mount -t 9p -o trans=virtio,version=9p2000.L ro /mnt/ro
r mount_ro $?
r read_ro "$(cat /mnt/ro/hello.txt)"
r list_ro "$(ls -A /mnt/ro | tr '\n' ' ')"
r escape "$(cat /mnt/ro/escape 2>&1)"
touch /mnt/ro/new 2>/dev/null
r write_ro $?
mount -t 9p -o trans=virtio,version=9p2000.L rw /mnt/rw
r mount_rw $?
echo written-by-guest > /mnt/rw/out.txt
r write_rw $?
echo served-by-guest > /www/index.html
httpd -p 8000 -h /www
r httpd $?
i=0
until [ -e /mnt/rw/host-done ] || [ $i -ge 600 ]; do sleep 0.5; i=$((i + 1)); done
r host_done "$([ -e /mnt/rw/host-done ] && echo yes || echo no)"`;
const passwordFile = (g: string) => `/etc/qh-tls/${g}-spice-password`;

function answers() {
  return {
    schemaVersion: 1,
    useCase: 'emulation',
    acceptedRisks: [
      { risk: 'emulation', reason: 'the proof runs without KVM; its guests are test boot sectors' },
      { risk: 'share-writable', guest: LAN, reason: 'the proof checks what the guest writes there' },
    ],
    guests: [
      ...GUESTS.map((g) => ({
        name: g.name,
        memoryMiB: 64,
        disks: [{ path: `/images/${g.name}.img`, format: 'raw' }],
        display: {
          mode: 'spice-tls',
          listen: '127.0.0.1',
          port: g.spicePort,
          tlsDir: tlsDir(g.name),
          passwordFile: passwordFile(g.name),
        },
        migration: { enabled: true, listen: '127.0.0.1', port: g.migrationPort, tlsDir: tlsDir(g.name) },
      })),
      {
        name: LAN,
        memoryMiB: 256,
        boot: { kernel: `/images/${LAN}/vmlinuz`, initrd: `/images/${LAN}/initrd.gz`, cmdline: 'console=ttyS0 quiet' },
        network: { mode: 'user', forwards: [{ listen: LAN_ADDRESS, port: FORWARD_PORT, guestPort: 8000 }] },
        shares: [
          { path: SHARE_RO, tag: 'ro' },
          { path: SHARE_RW, tag: 'rw', readOnly: false },
        ],
      },
    ],
  };
}

describe('runtime isolation under real systemd (container, TCG)', () => {
  const dir = tempDir({ after }, 'qh-iso-');
  const ct = new Container(dir);
  const bundle = join(dir, 'bundle');
  after(() => ct.stop());

  const journal = (unit: string) => ct.exec(['journalctl', '-b', '-u', unit, '--no-pager', '-o', 'cat']).stdout;
  const mainPid = (unit: string) =>
    Number(ct.exec(['systemctl', 'show', '-p', 'MainPID', '--value', unit]).stdout.trim());
  const qmp = (guest: string, ...commands: object[]) => {
    const r = ct.exec([
      'node',
      '/qh-clients/qmp.mjs',
      `/run/qemu-harden/${guest}/qmp.sock`,
      ...commands.map((c) => JSON.stringify(c)),
    ]);
    assert.equal(r.code, 0, `QMP on ${guest}: ${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>[];
  };
  const waitFor = (what: string, check: () => boolean) => waitUntil(what, check);
  const start = async (unit: string, guest: string, boots = true) => {
    const r = ct.exec(['systemctl', 'start', unit]);
    assert.equal(
      r.code,
      0,
      `${unit}: ${r.stderr}\n${ct.exec(['journalctl', '-b', '--no-pager', '-o', 'short-monotonic', '-n', '40']).stdout}`,
    );
    await waitFor(
      `${guest}'s QMP socket`,
      () => ct.exec(['test', '-S', `/run/qemu-harden/${guest}/qmp.sock`]).code === 0,
    );
    if (boots)
      await waitFor(
        `${guest}'s boot marker`,
        () => ct.sh(`grep -q '${BOOT_MARKER}' /var/log/qemu-harden/${guest}/serial.log`).code === 0,
      );
  };

  /** Ends a guest the way a finished migration source is ended: QMP quit (its boot sector ignores the power button). */
  const quit = async (guest: string, unit: string) => {
    qmp(guest, { execute: 'quit' });
    await waitFor(`${unit} to stop`, () => ct.exec(['systemctl', 'is-active', unit]).stdout.trim() !== 'active');
  };

  before(async () => {
    for (const [tool, pkg] of [
      ['systemd-nspawn', 'systemd-container'],
      ['nsenter', 'util-linux'],
      ['qemu-system-x86_64', 'qemu-system-x86'],
      ['openssl', 'openssl'],
    ] as const)
      requireTool(tool, pkg);
    chmodSync(dir, 0o755);
    const images = join(dir, 'images');
    mkdirSync(images);
    chmodSync(images, 0o755);
    for (const g of GUESTS) writeBootDisk(join(images, `${g.name}.img`));
    mkdirSync(join(images, LAN));
    writeLinuxGuest(join(images, LAN), ['virtio_pci', 'virtio_net', '9pnet_virtio', '9p'], LAN_SCRIPT);
    const answersFile = join(dir, 'answers.json');
    writeFileSync(answersFile, JSON.stringify(answers()));
    const gen = await cli(['generate', '--answers', answersFile, '--out', bundle]);
    assert.equal(gen.code, 0, gen.stderr);
    ct.prepare();
    mkdirSync(join(ct.root, SHARE_RO), { recursive: true });
    writeFileSync(join(ct.root, SHARE_RO, 'hello.txt'), 'shared-read-only\n', { mode: 0o644 });
    // A link out of the share, to a file of the host the guest must never read.
    writeFileSync(join(ct.root, 'srv/outside.txt'), 'host-file-outside-the-share\n', { mode: 0o644 });
    symlinkSync('/srv/outside.txt', join(ct.root, SHARE_RO, 'escape'));
    const applied = await cli(['apply', bundle, '--root', ct.root, '--yes']);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);

    const certs = join(dir, 'certs');
    mkdirSync(certs);
    makeCerts(certs);
    for (const g of GUESTS) {
      const to = join(ct.root, tlsDir(g.name));
      mkdirSync(to, { recursive: true });
      for (const f of ['ca-cert.pem', 'server-cert.pem', 'server-key.pem', 'client-cert.pem', 'client-key.pem'])
        copyFileSync(join(certs, f), join(to, f));
      writeFileSync(join(ct.root, passwordFile(g.name)), PASSWORD, { mode: 0o600 });
    }
    mkdirSync(join(ct.root, 'qh-clients'));
    for (const f of ['qmp.mjs', 'spice-link.mjs'])
      copyFileSync(join(REPO, 'test/clients', f), join(ct.root, 'qh-clients', f));
    await ct.boot({ binds: { [images]: '/images' }, privateNetwork: true });
    // The operator's part of the README's TLS set-up: each guest's keys readable by its user alone.
    for (const g of GUESTS)
      assert.equal(
        ct.sh(
          `chown qemu-${g.name}:qemu-${g.name} ${tlsDir(g.name)}/*-key.pem && chmod 0400 ${tlsDir(g.name)}/*-key.pem`,
        ).code,
        0,
      );
  });

  test('apply checks the TLS keys and SPICE passwords it never changes: owner and mode', async () => {
    const ok = await cli(['apply', bundle, '--root', ct.root, '--yes']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /done {2}check TLS keys and passwords: owners and modes as required/);
    const key = join(ct.root, tlsDir('dst'), 'server-key.pem');
    chmodSync(key, 0o440);
    const loose = await cli(['apply', bundle, '--root', ct.root, '--yes']);
    chmodSync(key, 0o400);
    assert.equal(loose.code, 1);
    assert.match(
      loose.stdout,
      /FAIL {2}check TLS keys and passwords: \/etc\/qh-tls\/dst\/server-key\.pem has mode 440; group and others must have no access/,
    );
    chownSync(join(ct.root, passwordFile('src')), 1234, 1234);
    const owned = await cli(['apply', bundle, '--root', ct.root, '--yes']);
    chownSync(join(ct.root, passwordFile('src')), 0, 0);
    assert.equal(owned.code, 1);
    assert.match(owned.stdout, /\/etc\/qh-tls\/src-spice-password belongs to uid 1234, not root/);
  });

  test('SPICE: a client without the password is refused by the QEMU the unit starts; with it, it connects', async () => {
    await start('qemu-src.service', 'src');
    const link = (password: string) => {
      const r = ct.exec(['node', '/qh-clients/spice-link.mjs', '127.0.0.1', '5930', password]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { linkError?: number; result?: number; error?: string };
    };
    assert.deepEqual(link(PASSWORD), { linkError: 0, result: 0 }, 'the right password is accepted');
    assert.deepEqual(link(''), { linkError: 0, result: 7 }, 'no password: SPICE_LINK_ERR_PERMISSION_DENIED');
    assert.deepEqual(link('guess'), { linkError: 0, result: 7 }, 'a wrong password: SPICE_LINK_ERR_PERMISSION_DENIED');
    const pid = mainPid('qemu-src.service');
    assert.ok(
      !ct.exec(['cat', `/proc/${pid}/cmdline`]).stdout.includes(PASSWORD),
      'the password is not on the command line',
    );
    assert.ok(
      !readFileSync(join(ct.root, 'etc/systemd/system/qemu-src.service'), 'utf8').includes(PASSWORD),
      'nor in the unit',
    );
    assert.equal(
      ct.exec(['stat', '-c', '%U %a', passwordFile('src')]).stdout.trim(),
      'root 600',
      'the file stays root’s alone',
    );
  });

  test('host sockets: from inside the unit, as the guest’s user, the D-Bus system bus and journald cannot be reached', () => {
    const pid = mainPid('qemu-src.service');
    assert.ok(pid > 0);
    const uid = ct.exec(['id', '-u', 'qemu-src']).stdout.trim();
    const probe = (ns: string[], path: string) =>
      ct
        .exec([
          'nsenter',
          '-t',
          String(pid),
          ...ns,
          'setpriv',
          `--reuid=${uid}`,
          `--regid=${uid}`,
          '--clear-groups',
          '--',
          'node',
          '-e',
          "require('net').connect(process.argv[1]).on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(1)})",
          path,
        ])
        .stdout.trim();
    for (const path of [
      '/run/dbus/system_bus_socket',
      '/var/run/dbus/system_bus_socket',
      '/run/systemd/journal/stdout',
    ]) {
      assert.equal(probe(['-n'], path), 'connected', `${path} is there and 0666 outside the unit: a connect works`);
      assert.equal(probe(['-m', '-n'], path), 'ENOENT', `${path} does not exist in the unit’s view`);
    }
    const ls = (p: string) =>
      ct
        .exec(['nsenter', '-t', String(pid), '-m', 'ls', '-A', p])
        .stdout.split('\n')
        .filter(Boolean);
    assert.deepEqual(
      ls('/run'),
      ['credentials', 'qemu-harden', 'systemd'],
      'only its own directory, its credentials and systemd’s mount point',
    );
    assert.deepEqual(ls('/run/systemd'), ['incoming'], 'systemd’s own (empty) mount point for `systemctl bind`');
    assert.deepEqual(ls('/run/systemd/incoming'), []);
    assert.deepEqual(ls('/run/credentials'), ['qemu-src.service']);
    assert.deepEqual(ls('/run/qemu-harden'), ['src']);
    assert.deepEqual(ls('/dev/shm'), []);
    const ns = (p: number, kind: string) => ct.exec(['readlink', `/proc/${p}/ns/${kind}`]).stdout.trim();
    assert.notEqual(ns(pid, 'ipc'), ns(1, 'ipc'), 'System V IPC and POSIX message queues are private (PrivateIPC=yes)');
  });

  test('another guest’s TLS directory is out of reach from inside a unit, as the guest’s user', () => {
    const pid = mainPid('qemu-src.service');
    assert.ok(pid > 0);
    const uid = ct.exec(['id', '-u', 'qemu-src']).stdout.trim();
    const read = (ns: string[], path: string) =>
      ct.exec([
        'nsenter',
        '-t',
        String(pid),
        ...ns,
        'setpriv',
        `--reuid=${uid}`,
        `--regid=${uid}`,
        '--clear-groups',
        '--',
        'cat',
        path,
      ]);
    const other = `${tlsDir('dst')}/ca-cert.pem`;
    assert.equal(read([], other).code, 0, 'outside the unit the same user can read dst’s certificate (mode 0644)');
    const inside = read(['-m'], other);
    assert.notEqual(inside.code, 0, 'inside src’s unit it cannot');
    assert.match(inside.stderr, /Permission denied/);
    assert.equal(read(['-m'], `${tlsDir('src')}/ca-cert.pem`).code, 0, 'its own directory stays readable');
  });

  test('live migration over TLS between two units, in both directions', async () => {
    const migrate = async (from: string, to: string, port: number) => {
      await start(`qemu-${to}-incoming.service`, to, false);
      const incoming = qmp(
        to,
        { execute: 'migrate-set-parameters', arguments: { 'tls-creds': 'migration-tls' } },
        { execute: 'migrate-incoming', arguments: { uri: `tcp:127.0.0.1:${port}` } },
      );
      assert.ok(!incoming.some((m) => 'error' in m), JSON.stringify(incoming));
      const out = qmp(
        from,
        { execute: 'migrate-set-parameters', arguments: { 'tls-creds': 'migration-tls-client' } },
        { execute: 'migrate', arguments: { uri: `tcp:127.0.0.1:${port}` } },
        { 'poll-migrate': 'completed' },
      );
      const last = out.filter((m) => (m.return as { status?: string } | undefined)?.status).at(-1);
      assert.equal((last?.return as { status: string }).status, 'completed', JSON.stringify(out));
      // The source is done when it says so; the destination runs the guest once it has loaded all of it.
      const status = () =>
        (
          qmp(to, { execute: 'query-status' }).find((m) => (m.return as { status?: string } | undefined)?.status)
            ?.return as { status: string } | undefined
        )?.status;
      await waitFor(`${to} to run the migrated guest`, () => status() === 'running');
      const tls = ct.sh(`ls -l /proc/${mainPid(`qemu-${to}-incoming.service`)}/fd`).stdout;
      assert.ok(tls.includes('socket:'), 'the destination holds the migration connection');
      const fromUnit =
        ct.exec(['systemctl', 'is-active', `qemu-${from}.service`]).stdout.trim() === 'active'
          ? `qemu-${from}.service`
          : `qemu-${from}-incoming.service`;
      await quit(from, fromUnit);
    };
    if (ct.exec(['systemctl', 'is-active', 'qemu-src.service']).stdout.trim() !== 'active')
      await start('qemu-src.service', 'src');
    await migrate('src', 'dst', 49153);
    await migrate('dst', 'src', 49152);
    assert.equal(
      ct.exec(['systemctl', 'is-active', 'qemu-src-incoming.service']).stdout.trim(),
      'active',
      'the guest came back to src',
    );
    await quit('src', 'qemu-src-incoming.service');
  });

  test('a plaintext migration attempt against the TLS destination is refused', async (t) => {
    await start('qemu-src.service', 'src');
    await start('qemu-dst-incoming.service', 'dst', false);
    const dstJournal = () => journal('qemu-dst-incoming.service').split('\n');
    const cursor = dstJournal().length;
    qmp(
      'dst',
      { execute: 'migrate-set-parameters', arguments: { 'tls-creds': 'migration-tls' } },
      { execute: 'migrate-incoming', arguments: { uri: 'tcp:127.0.0.1:49153' } },
    );
    const out = qmp(
      'src',
      { execute: 'migrate', arguments: { uri: 'tcp:127.0.0.1:49153' } },
      { 'poll-migrate': 'completed' },
    );
    // The refusal is the destination's. The source may report "completed": a small guest's whole plaintext stream
    // fits in the loopback connection's buffers before the destination reads its first bytes and drops it.
    const last = out.filter((m) => (m.return as { status?: string } | undefined)?.status).at(-1);
    assert.ok(
      ['failed', 'completed'].includes((last?.return as { status?: string } | undefined)?.status ?? ''),
      JSON.stringify(out),
    );
    await waitFor('the destination to refuse the plaintext stream', () =>
      dstJournal()
        .slice(cursor - 1)
        .some((l) => /TLS handshake failed/.test(l)),
    );
    const status = qmp('dst', { execute: 'query-status' }).find(
      (m) => (m.return as { status?: string } | undefined)?.status,
    );
    assert.equal(
      (status!.return as { status: string }).status,
      'inmigrate',
      'the destination still waits for a migration: it never ran the plaintext stream',
    );
    const incoming = qmp('dst', { execute: 'query-migrate' }).find((m) => 'return' in m);
    assert.notEqual((incoming!.return as { status?: string }).status, 'completed', JSON.stringify(incoming));
    t.diagnostic(`the source reported ${(last!.return as { status: string }).status}`);
    await quit('src', 'qemu-src.service');
    await quit('dst', 'qemu-dst-incoming.service');
  });

  test('systemctl stop sends system_powerdown over QMP; a guest that ignores it is stopped after TimeoutStopSec', async () => {
    const unit = 'qemu-dst.service';
    ct.exec(['mkdir', '-p', `/run/systemd/system/${unit}.d`]);
    ct.exec(['tee', `/run/systemd/system/${unit}.d/timeout.conf`], '[Service]\nTimeoutStopSec=6\n');
    ct.exec(['systemctl', 'daemon-reload']);
    await start(unit, 'dst');
    // A QMP client waits for the POWERDOWN event while systemd stops the unit; the boot sector ignores ACPI.
    ct.sh(
      'QMP_TIMEOUT_MS=300000 node /qh-clients/qmp.mjs /run/qemu-harden/dst/qmp.sock \'{"wait-event":"POWERDOWN"}\' > /run/qh-events.json 2> /run/qh-events.ready &',
    );
    await waitFor('the QMP client to connect', () => ct.sh('grep -q connected /run/qh-events.ready').code === 0);
    const t0 = Date.now();
    assert.equal(ct.exec(['systemctl', 'stop', unit]).code, 0);
    const took = (Date.now() - t0) / 1000;
    await waitFor('the QMP client’s output', () => ct.sh('test -s /run/qh-events.json').code === 0);
    const events = JSON.parse(ct.exec(['cat', '/run/qh-events.json']).stdout) as { event?: string }[];
    assert.ok(
      events.some((e) => e.event === 'POWERDOWN'),
      `QEMU emitted POWERDOWN: ${JSON.stringify(events)}`,
    );
    assert.ok(took >= 5.5, `stopped after TimeoutStopSec (6 s), took ${took} s`);
    assert.match(journal(unit), /terminating on signal 15/);
    assert.equal(
      ct.exec(['systemctl', 'show', '-p', 'ActiveState', '-p', 'Result', unit]).stdout,
      'Result=timeout\nActiveState=failed\n',
      'systemd records that the guest did not power down in time',
    );
    ct.exec(['systemctl', 'reset-failed', unit]);
  });

  test('a guest that powers off when asked stops the unit at once, without a signal', async () => {
    const unit = 'qemu-dst.service';
    // A stop timeout no loaded machine reaches: the unit ends because QEMU exited, which systemd records as
    // success, not because the timeout ran out.
    ct.exec(['mkdir', '-p', `/run/systemd/system/${unit}.d`]);
    ct.exec(['tee', `/run/systemd/system/${unit}.d/timeout.conf`], '[Service]\nTimeoutStopSec=600\n');
    ct.exec(['systemctl', 'daemon-reload']);
    await start(unit, 'dst');
    // Standing in for a guest OS that honours the power button: on POWERDOWN the client ends QEMU through QMP.
    ct.sh(
      'QMP_TIMEOUT_MS=300000 node /qh-clients/qmp.mjs /run/qemu-harden/dst/qmp.sock \'{"wait-event":"POWERDOWN","then":{"execute":"quit"}}\' > /run/qh-events2.json 2> /run/qh-events2.ready &',
    );
    await waitFor('the QMP client to connect', () => ct.sh('grep -q connected /run/qh-events2.ready').code === 0);
    const cursor = journal(unit).split('\n').length;
    assert.equal(ct.exec(['systemctl', 'stop', unit]).code, 0);
    assert.equal(
      ct.exec(['systemctl', 'show', '-p', 'ActiveState', '-p', 'Result', unit]).stdout,
      'Result=success\nActiveState=inactive\n',
      'QEMU exited when asked: no timeout, no failure',
    );
    const since = journal(unit)
      .split('\n')
      .slice(cursor - 1)
      .join('\n');
    assert.doesNotMatch(since, /terminating on signal/);
  });
  /** What the Linux guest reported, once it has run its whole script (the first test below runs it). */
  let lan: Map<string, string> | undefined;
  const lanResult = (key: string) => {
    assert.ok(lan, 'the Linux guest ran');
    const v = lan.get(key);
    assert.ok(v !== undefined, `the guest reported no ${key}: ${JSON.stringify([...lan])}`);
    return v;
  };
  /** passt's and QEMU's processes as they were while the guest ran: credentials, cgroup, network namespace, sockets. */
  const readRunning = () => {
    const passtPid = mainPid(`qemu-${LAN}-net.service`);
    const qemuPid = mainPid(`qemu-${LAN}.service`);
    assert.ok(passtPid > 0 && qemuPid > 0, journal(`qemu-${LAN}-net.service`));
    const status = (pid: number) => {
      const text = ct.exec(['cat', `/proc/${pid}/status`]).stdout;
      return (k: string) => new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(text)?.[1]?.split(/\s+/);
    };
    const inet = (pid: number) =>
      ct.exec(['nsenter', '-t', String(pid), '-n', 'ss', '-H', '-A', 'inet', '-a', '-p']).stdout.trim();
    const netns = (pid: number) => ct.exec(['readlink', `/proc/${pid}/ns/net`]).stdout.trim();
    return {
      uid: ct.exec(['id', '-u', `qemu-${LAN}`]).stdout.trim(),
      passtStatus: status(passtPid),
      qemuStatus: status(qemuPid),
      passtCgroup: ct.exec(['cat', `/proc/${passtPid}/cgroup`]).stdout,
      passtNetns: netns(passtPid),
      qemuNetns: netns(qemuPid),
      passtInet: inet(passtPid),
      qemuInet: inet(qemuPid),
    };
  };
  let running: ReturnType<typeof readRunning> | undefined;
  const lanSerial = () => {
    const log = join(ct.root, `var/log/qemu-harden/${LAN}/serial.log`);
    return existsSync(log) ? readFileSync(log, 'latin1') : '';
  };

  test('passt and 9p: a Linux guest gets an address, fetches from a server the test made, shares folders, serves a forwarded port', async () => {
    // The network passt speaks for the guest: a veth pair from the container's namespace to SRV, the default route
    // through it, an HTTP server in SRV, and one on the container's loopback that the guest must not reach.
    const net = ct.sh(
      [
        'ip link add qhv0 type veth peer name qhv1',
        'ip netns add srv',
        'ip link set qhv1 netns srv',
        `ip addr add ${LAN_ADDRESS}/24 dev qhv0`,
        'ip link set qhv0 up',
        `ip -n srv addr add ${GATEWAY}/24 dev qhv1`,
        `ip -n srv addr add ${SRV_ADDRESS}/32 dev lo`,
        'ip -n srv link set qhv1 up',
        'ip -n srv link set lo up',
        `ip route add default via ${GATEWAY}`,
        'mkdir -p /srv/www /srv/loopback',
        'echo served-from-srv > /srv/www/hello.txt',
        'echo host-loopback-secret > /srv/loopback/secret.txt',
        `cd /srv/www && ip netns exec srv python3 -m http.server --bind ${SRV_ADDRESS} ${SRV_PORT} >/dev/null 2>&1 &`,
        `cd /srv/loopback && python3 -m http.server --bind 127.0.0.1 ${LOOPBACK_PORT} >/dev/null 2>&1 &`,
      ].join('\n'),
    );
    assert.equal(net.code, 0, net.stderr);
    await waitFor('both HTTP servers to listen', () => {
      const here = ct.exec(['ss', '-Hltn', `sport = :${LOOPBACK_PORT}`]).stdout.trim();
      const there = ct.exec(['ip', 'netns', 'exec', 'srv', 'ss', '-Hltn', `sport = :${SRV_PORT}`]).stdout.trim();
      return here !== '' && there !== '';
    });
    const r = ct.exec(['systemctl', 'start', `qemu-${LAN}.service`]);
    assert.equal(r.code, 0, `${r.stderr}\n${journal(`qemu-${LAN}-net.service`)}\n${journal(`qemu-${LAN}.service`)}`);
    const guestLog = () =>
      `serial:\n${lanSerial().slice(-3000)}\npasst:\n${journal(`qemu-${LAN}-net.service`).slice(-2000)}\nQEMU:\n${journal(`qemu-${LAN}.service`).slice(-2000)}`;
    await waitUntil('the guest’s web server', () => /RESULT httpd=/.test(lanSerial()), {
      timeoutMs: 600_000,
      detail: guestLog,
    });
    const forwarded = ct.exec([
      'python3',
      '-c',
      `import urllib.request; print(urllib.request.urlopen('http://${LAN_ADDRESS}:${FORWARD_PORT}/', timeout=20).read().decode().strip())`,
    ]);
    running = readRunning();
    writeFileSync(join(ct.root, SHARE_RW, 'host-done'), 'done\n');
    await waitUntil('the guest to finish its script', () => /RESULT done=yes/.test(lanSerial()), {
      timeoutMs: 150_000,
      detail: guestLog,
    });
    lan = guestResults(lanSerial());
    assert.equal(
      forwarded.stdout.trim(),
      'served-by-guest',
      `the forwarded port reaches the guest: ${forwarded.stderr}`,
    );
    assert.equal(lanResult('host_done'), 'yes');
  });

  test('passt: the guest gets an address from passt and reaches a server in another namespace, but not the host’s loopback', () => {
    assert.equal(lanResult('dhcp'), '0', 'DHCP from passt');
    assert.equal(lanResult('addr'), `${LAN_ADDRESS}/24`, 'passt hands the guest the host’s own address');
    assert.equal(lanResult('gateway'), GATEWAY);
    assert.equal(lanResult('fetch'), 'served-from-srv');
    // With --no-map-gw the gateway stays the gateway: nothing listens there, so the connection is refused, and
    // the server on the host's loopback (same port) is never reached; the unit's IPAddressDeny= would drop it too.
    assert.doesNotMatch(lanResult('loopback'), /host-loopback-secret/);
    assert.match(lanResult('loopback'), /refused|timed out/i);
  });

  test('passt runs as the guest’s user with no capabilities, NoNewPrivs and its own seccomp; QEMU holds no IP socket', () => {
    assert.ok(running, 'the processes were read while the guest ran');
    const { passtStatus, qemuStatus, uid } = running;
    assert.notEqual(uid, '0');
    assert.deepEqual(passtStatus('Uid'), [uid, uid, uid, uid]);
    assert.deepEqual(passtStatus('CapEff'), ['0000000000000000']);
    assert.deepEqual(passtStatus('CapPrm'), ['0000000000000000']);
    assert.deepEqual(passtStatus('NoNewPrivs'), ['1']);
    assert.deepEqual(passtStatus('Seccomp'), ['2']);
    assert.match(running.passtCgroup, /:\/qemu\.slice\/qemu-lan-net\.service$/m);
    assert.notEqual(
      running.qemuNetns,
      running.passtNetns,
      'QEMU has a network namespace of its own; passt has the host’s',
    );
    assert.equal(running.qemuInet, '', 'no IP socket at all in QEMU’s namespace');
    assert.doesNotMatch(running.passtInet, /qemu-system/, 'and none of the host’s is QEMU’s');
    assert.match(running.passtInet, /passt/, 'passt holds the guest’s connections and its forwarded port');
    assert.deepEqual(qemuStatus('Uid'), [uid, uid, uid, uid]);
    assert.deepEqual(qemuStatus('CapEff'), ['0000000000000000']);
  });

  test('9p: the guest reads the read-only share, cannot write it, sees nothing outside it, and writes the writable one as its user', () => {
    assert.equal(lanResult('mount_ro'), '0');
    assert.equal(lanResult('read_ro'), 'shared-read-only');
    assert.equal(lanResult('list_ro'), 'escape hello.txt', 'exactly the share’s own entries');
    assert.doesNotMatch(lanResult('escape'), /host-file-outside-the-share/, 'a link out of the share leads nowhere');
    assert.match(lanResult('escape'), /No such file/);
    assert.notEqual(lanResult('write_ro'), '0', 'the read-only share refuses a new file');
    assert.ok(!existsSync(join(ct.root, SHARE_RO, 'new')));
    assert.equal(lanResult('mount_rw'), '0');
    assert.equal(lanResult('write_rw'), '0');
    assert.equal(readFileSync(join(ct.root, SHARE_RW, 'out.txt'), 'utf8'), 'written-by-guest\n');
    assert.equal(
      ct.exec(['stat', '-c', '%U:%G %a', `${SHARE_RW}/out.txt`, SHARE_RW]).stdout,
      `qemu-${LAN}:qemu-${LAN} 600\nqemu-${LAN}:qemu-${LAN} 700\n`,
      'what the guest writes is its user’s, private; the folder too',
    );
  });
});
