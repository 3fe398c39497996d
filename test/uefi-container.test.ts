// A UEFI guest after `qemu-harden apply --root`, started by real systemd: systemd-nspawn boots the throwaway root,
// `systemctl start` runs the guest under TCG, its unit copies the UEFI variables template as the guest's user,
// and OVMF reaches its boot manager. The vars file belongs to the guest, and a second start keeps it.
// The same container runs a second guest that writes to its serial port without pause, and the bundle's
// logrotate unit keeps that guest's serial log bounded.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Container } from './container.js';
import { cli, requireTool, tempDir, waitUntil } from './helpers.js';

const VARS = '/var/lib/qemu-harden/efi/OVMF_VARS.fd';
const SERIAL = '/var/log/qemu-harden/efi/serial.log';
const UNIT = 'qemu-efi.service';
const FLOOD_LOG = '/var/log/qemu-harden/flood/serial.log';

/** A boot sector that writes "A" to COM1 forever: mov dx,0x3f8; l: mov al,'A'; out dx,al; jmp l. */
function writeFloodDisk(path: string): void {
  const img = Buffer.alloc(1024 * 1024);
  Buffer.from([0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0xeb, 0xfb]).copy(img, 0);
  img[510] = 0x55;
  img[511] = 0xaa;
  writeFileSync(path, img);
}

describe('a UEFI guest installed with apply --root starts under real systemd', () => {
  const dir = tempDir({ after }, 'qh-uefi-ct-');
  const ct = new Container(dir);
  after(() => ct.stop());
  const journal = () => ct.exec(['journalctl', '-b', '-u', UNIT, '--no-pager', '-o', 'cat']).stdout;
  const serial = () => (existsSync(join(ct.root, SERIAL)) ? readFileSync(join(ct.root, SERIAL), 'latin1') : '');
  /** How often OVMF has reached its boot manager: the serial log is appended to across starts. */
  const bootManagers = () => serial().split('BdsDxe').length - 1;

  before(async () => {
    for (const [tool, pkg] of [
      ['systemd-nspawn', 'systemd-container'],
      ['nsenter', 'util-linux'],
      ['qemu-system-x86_64', 'qemu-system-x86'],
    ] as const)
      requireTool(tool, pkg);
    for (const f of ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'])
      if (!existsSync(f)) throw new Error(`${f} is required for this test: install the Debian package ovmf`);
    chmodSync(dir, 0o755);
    const answers = join(dir, 'answers.json');
    writeFileSync(
      answers,
      JSON.stringify({
        schemaVersion: 1,
        useCase: 'emulation',
        acceptedRisks: [{ risk: 'emulation', reason: 'the proof runs under TCG on every machine' }],
        guests: [
          { name: 'efi', memoryMiB: 256, firmware: { type: 'uefi' }, disks: [{ path: '/srv/efi.img', format: 'raw' }] },
          { name: 'flood', memoryMiB: 64, disks: [{ path: '/srv/flood.img', format: 'raw' }] },
        ],
      }),
    );
    const bundle = join(dir, 'bundle');
    const gen = await cli(['generate', '--answers', answers, '--out', bundle]);
    assert.equal(gen.code, 0, gen.stderr);
    ct.prepare();
    mkdirSync(join(ct.root, 'srv'));
    writeFloodDisk(join(ct.root, 'srv/flood.img'));
    writeFileSync(join(ct.root, 'srv/efi.img'), Buffer.alloc(1024 * 1024));
    const applied = await cli(['apply', bundle, '--root', ct.root, '--yes']);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    assert.doesNotMatch(applied.stdout, /FAIL/, applied.stdout);
    await ct.boot({ privateNetwork: true });
  });

  test('systemctl start: the vars file is made by the guest’s user, and OVMF reaches its boot manager', async () => {
    assert.ok(!existsSync(join(ct.root, VARS)), 'apply itself copies no vars file');
    const start = ct.exec(['systemctl', 'start', UNIT]);
    assert.equal(start.code, 0, `${start.stderr}\n${journal()}`);
    await waitUntil('OVMF to reach its boot manager', () => bootManagers() > 0, {
      timeoutMs: 600_000,
      detail: journal,
    });
    assert.equal(ct.exec(['systemctl', 'is-active', UNIT]).stdout.trim(), 'active');
    assert.equal(ct.exec(['stat', '-c', '%U:%G %a', VARS]).stdout.trim(), 'qemu-efi:qemu-efi 600');
    assert.equal(
      ct.exec(['stat', '-c', '%U:%G %a', '/usr/share/OVMF/OVMF_VARS_4M.fd']).stdout.trim(),
      'root:root 644',
      'the template is untouched',
    );
    const pid = ct.exec(['systemctl', 'show', '-p', 'MainPID', '--value', UNIT]).stdout.trim();
    const fds = ct.sh(`ls -l /proc/${pid}/fd/`).stdout;
    assert.ok(fds.includes(VARS), `QEMU holds its own vars file open:\n${fds}`);
    assert.match(
      ct.exec(['cat', `/proc/${pid}/limits`]).stdout,
      /^Max core file size\s+0\s+0\s+bytes\s*$/m,
      'LimitCORE=0: QEMU dumps no core',
    );
  });

  test('a second start keeps the guest’s vars file', async () => {
    const inode = ct.exec(['stat', '-c', '%i', VARS]).stdout.trim();
    const before = bootManagers();
    assert.equal(ct.exec(['systemctl', 'stop', UNIT]).code, 0);
    const start = ct.exec(['systemctl', 'start', UNIT]);
    assert.equal(start.code, 0, `${start.stderr}\n${journal()}`);
    // The second start is proven by OVMF reaching its boot manager again, reading the kept vars.
    await waitUntil('OVMF to reach its boot manager again', () => bootManagers() > before, {
      timeoutMs: 600_000,
      detail: journal,
    });
    assert.equal(ct.exec(['systemctl', 'is-active', UNIT]).stdout.trim(), 'active', journal());
    assert.equal(ct.exec(['stat', '-c', '%i', VARS]).stdout.trim(), inode, 'not replaced by the template');
  });

  describe('the serial log of a guest that writes without pause stays bounded', () => {
    test('qemu-harden-logrotate.service rotates it past 1 MiB, as the guest’s user, keeping at most 4 old copies', async () => {
      const size = (p: string) => Number(ct.exec(['stat', '-c', '%s', p]).stdout.trim() || '0');
      assert.equal(ct.exec(['systemctl', 'start', 'qemu-harden-logrotate.timer']).code, 0);
      assert.equal(ct.exec(['systemctl', 'is-active', 'qemu-harden-logrotate.timer']).stdout.trim(), 'active');
      const start = ct.exec(['systemctl', 'start', 'qemu-flood.service']);
      assert.equal(start.code, 0, start.stderr);
      try {
        for (let round = 1; round <= 6; round++) {
          await waitUntil(`round ${round}: the guest to fill its log past 1 MiB`, () => size(FLOOD_LOG) > 1024 * 1024);
          const before = size(FLOOD_LOG);
          assert.ok(before > 1024 * 1024, `round ${round}: the guest filled its log past 1 MiB (${before} bytes)`);
          // The timer starts it once a minute; started here every few seconds, it would reach systemd's start limit.
          ct.exec(['systemctl', 'reset-failed', 'qemu-harden-logrotate.service']);
          const rot = ct.exec(['systemctl', 'start', 'qemu-harden-logrotate.service']);
          assert.equal(
            rot.code,
            0,
            `${rot.stderr}\n${ct.exec(['journalctl', '-b', '-u', 'qemu-harden-logrotate.service', '--no-pager', '-o', 'cat']).stdout}`,
          );
          assert.ok(
            size(FLOOD_LOG) < before,
            `round ${round}: serial.log was truncated in place (${size(FLOOD_LOG)} < ${before})`,
          );
          assert.ok(size(`${FLOOD_LOG}.1`) >= 1024 * 1024, `round ${round}: its content moved to serial.log.1`);
        }
        const files = ct.sh('ls /var/log/qemu-harden/flood/').stdout.split('\n').filter(Boolean).sort();
        assert.deepEqual(
          files,
          ['serial.log', 'serial.log.1', 'serial.log.2', 'serial.log.3', 'serial.log.4'],
          'four old copies, never a fifth',
        );
        assert.equal(
          ct.exec(['stat', '-c', '%U:%G %a', `${FLOOD_LOG}.1`]).stdout.trim(),
          'qemu-flood:qemu-flood 600',
          'copies belong to the guest’s user',
        );
        const grown = size(FLOOD_LOG);
        await waitUntil('QEMU to go on writing into the truncated log', () => size(FLOOD_LOG) > grown);
        assert.equal(ct.exec(['systemctl', 'is-active', 'qemu-flood.service']).stdout.trim(), 'active');
      } finally {
        ct.exec(['systemctl', 'stop', 'qemu-flood.service']);
      }
    });
  });
});
