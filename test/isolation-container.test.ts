// Runtime isolation under real systemd in a throwaway container, all guests under TCG: the SPICE password
// handed over by LoadCredential=, the empty /run that keeps host sockets out of reach, live migration over TLS
// between two units in both directions, and the graceful stop through QMP. One container serves every check.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BOOT_MARKER, writeBootDisk } from './bootdisk.js';
import { makeCerts } from './certs.js';
import { Container } from './container.js';
import { cli, REPO, requireTool, tempDir, waitUntil } from './helpers.js';

const PASSWORD = 'qh-spice-ticket-7f3a';
const GUESTS = [
  { name: 'src', spicePort: 5930, migrationPort: 49152 },
  { name: 'dst', spicePort: 5931, migrationPort: 49153 },
];
const tlsDir = (g: string) => `/etc/qh-tls/${g}`;
const passwordFile = (g: string) => `/etc/qh-tls/${g}-spice-password`;

function answers() {
  return {
    schemaVersion: 1,
    useCase: 'emulation',
    acceptedRisks: [{ risk: 'emulation', reason: 'the proof runs without KVM; its guests are test boot sectors' }],
    guests: GUESTS.map((g) => ({
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
    const answersFile = join(dir, 'answers.json');
    writeFileSync(answersFile, JSON.stringify(answers()));
    const gen = cli(['generate', '--answers', answersFile, '--out', bundle]);
    assert.equal(gen.code, 0, gen.stderr);
    ct.prepare();
    const applied = cli(['apply', bundle, '--root', ct.root, '--yes']);
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

  test('apply checks the TLS keys and SPICE passwords it never changes: owner and mode', () => {
    const ok = cli(['apply', bundle, '--root', ct.root, '--yes']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /done {2}check TLS keys and passwords: owners and modes as required/);
    const key = join(ct.root, tlsDir('dst'), 'server-key.pem');
    chmodSync(key, 0o440);
    const loose = cli(['apply', bundle, '--root', ct.root, '--yes']);
    chmodSync(key, 0o400);
    assert.equal(loose.code, 1);
    assert.match(
      loose.stdout,
      /FAIL {2}check TLS keys and passwords: \/etc\/qh-tls\/dst\/server-key\.pem has mode 440; group and others must have no access/,
    );
    chownSync(join(ct.root, passwordFile('src')), 1234, 1234);
    const owned = cli(['apply', bundle, '--root', ct.root, '--yes']);
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
});
