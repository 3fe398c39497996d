// Disk images are untrusted: a qcow2 header may name a backing file, a path on the host or a network URL. The
// QEMU command line of a guest unit must open neither. Proven with real QEMU under TCG: one image names an
// nbd:// backing file on a loopback listener this test owns (no connection may arrive), another names a file
// that exists (QEMU may not hold it open), and the guest still boots from its first disk.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { validate } from '../src/answers.js';
import { guestService } from '../src/gen/systemd.js';
import { BOOT_MARKER, writeBootDisk } from './bootdisk.js';
import { guestFilesDir, requireTool, stopChild, waitUntil } from './helpers.js';
import { execStart, makeStopPipe } from './unitfile.js';

test('a backing file named inside a qcow2 image is never opened or connected to; the guest still boots', async (t) => {
  const qemu = requireTool('qemu-system-x86_64', 'qemu-system-x86');
  const qemuImg = requireTool('qemu-img', 'qemu-utils');
  const dir = guestFilesDir(t, 'qh-backing-');

  const connections: Socket[] = [];
  const server = createServer((s) => {
    connections.push(s);
    s.on('error', () => undefined);
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;

  const secret = join(dir, 'host-secret.raw');
  writeFileSync(secret, Buffer.alloc(1024 * 1024, 0x41));
  const viaNbd = join(dir, 'nbd-backed.qcow2');
  const viaFile = join(dir, 'file-backed.qcow2');
  for (const [img, backing] of [
    [viaNbd, `nbd://127.0.0.1:${port}/x`],
    [viaFile, secret],
  ] as const) {
    const r = spawnSync(qemuImg, ['create', '-q', '-f', 'qcow2', '-u', '-b', backing, '-F', 'raw', img, '1M'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const info = JSON.parse(spawnSync(qemuImg, ['info', '-U', '--output=json', img], { encoding: 'utf8' }).stdout) as {
      'backing-filename': string;
    };
    assert.equal(info['backing-filename'], backing, 'the image really names its backing file');
  }
  const boot = writeBootDisk(join(dir, 'boot.img'));

  const a = validate({
    schemaVersion: 1,
    useCase: 'emulation',
    acceptedRisks: [{ risk: 'emulation', reason: 'the proof runs under TCG on every machine' }],
    guests: [
      {
        name: 'bk',
        memoryMiB: 64,
        disks: [
          { path: boot, format: 'raw' },
          { path: viaNbd, format: 'qcow2', readOnly: true },
          { path: viaFile, format: 'qcow2', throttle: { readBytesPerSecond: 10_000_000 } },
        ],
      },
    ],
  });
  const run = join(dir, 'run');
  const log = join(dir, 'log');
  for (const d of [run, log]) mkdirSync(d);
  makeStopPipe(run);
  const argv = execStart(guestService(a, a.guests[0]!)).map((w) =>
    w.replaceAll('/run/qemu-harden/bk', run).replaceAll('/var/log/qemu-harden/bk', log),
  );
  assert.equal(argv[0], '/usr/bin/qemu-system-x86_64');
  const child = spawn(qemu, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  t.after(() => stopChild(child));

  const serial = join(log, 'serial.log');
  await waitUntil(
    'the guest to boot from its first disk (or QEMU to exit)',
    () => child.exitCode !== null || (existsSync(serial) && readFileSync(serial, 'latin1').includes(BOOT_MARKER)),
    { detail: () => `QEMU stderr: ${stderr}` },
  );
  assert.equal(
    connections.length,
    0,
    `no connection reached the nbd:// address the image names; QEMU stderr: ${stderr}`,
  );
  assert.equal(child.exitCode, null, `QEMU is still running; its stderr: ${stderr}`);

  const open = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
  assert.ok(open.includes(viaFile) && open.includes(viaNbd), `both images are open: ${open.join(' ')}`);
  assert.ok(!open.includes(secret), `the backing file the image names is not open: ${open.join(' ')}`);

  // Throttling still works on -blockdev: the device's root is the throttle node, whose group holds the limit.
  const [, block, limits, machine] = await qmp(join(run, 'qmp.sock'), [
    { execute: 'query-block' },
    { execute: 'qom-get', arguments: { path: '/objects/disk2-throttle', property: 'limits' } },
    { execute: 'qom-get', arguments: { path: '/machine', property: 'dump-guest-core' } },
  ]);
  const roots = (
    block as {
      inserted: { 'node-name': string; drv: string; file: string; backing_file?: string; backing_file_depth: number };
    }[]
  ).map((b) => b.inserted);
  assert.deepEqual(
    roots.map((b) => [b['node-name'], b.drv]),
    [
      ['disk0-format', 'raw'],
      ['disk1-format', 'qcow2'],
      ['disk2', 'throttle'],
    ],
  );
  assert.equal((limits as Record<string, number>)['bps-read'], 10_000_000);
  assert.equal(machine, false, 'dump-guest-core is off: a core dump of QEMU would leave out the guest’s RAM');
});

/** Send QMP commands over the unit's QMP socket; their answers in order, that of qmp_capabilities first. */
async function qmp(path: string, commands: object[]): Promise<unknown[]> {
  const sock = connect(path);
  const queue: object[] = [{ execute: 'qmp_capabilities' }, ...commands];
  const results: unknown[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('QMP did not answer within 120 s'));
    }, 120_000);
    sock.on('error', reject);
    createInterface({ input: sock }).on('line', (line) => {
      const msg = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { desc: string }; event?: string };
      if (msg.event) return;
      if (msg.error) {
        clearTimeout(timer);
        sock.destroy();
        return reject(new Error(msg.error.desc));
      }
      if (!msg.QMP) results.push(msg.return);
      const next = queue.shift();
      if (next) sock.write(JSON.stringify(next) + '\n');
      else {
        clearTimeout(timer);
        // Destroyed, not ended: QEMU is killed right after, and a half-open socket would then report a reset.
        sock.destroy();
        resolve(results);
      }
    });
  });
}
