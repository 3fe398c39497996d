// Why the answers refuse Secure Boot with a kernel given to QEMU (boot.kernel): Debian 12's OVMF starts a
// `-kernel` image through its legacy loader when the image fails its signature check. The bundle's own command
// line for such a guest (the rule lifted here, as the unit would run it) boots a kernel that no enrolled key
// signs, with Secure Boot on; the same kernel from a disk is refused. Should OVMF start refusing it, this test
// fails, and the rule can go.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { validate } from '../src/answers.js';
import { qemuArgs } from '../src/gen/qemu.js';
import type { Answers } from '../src/model.js';
import { guestFilesDir, requireTool } from './helpers.js';
import { SECBOOT_CODE, SNAKEOIL_VARS, writeEsp } from './secureboot.js';
import { makeStopPipe } from './unitfile.js';
import { ensureKernel } from './vmboot.js';

/** The guest's QEMU command line as its unit runs it, in `dir` instead of the guest's directories. */
function commandLine(a: Answers, dir: string): string[] {
  const g = a.guests[0]!;
  return qemuArgs(a, g).map((w) =>
    w
      .replaceAll(`/run/qemu-harden/${g.name}`, dir)
      .replaceAll(`/var/log/qemu-harden/${g.name}`, dir)
      .replaceAll(`/var/lib/qemu-harden/${g.name}`, dir),
  );
}

async function serialOf(argv: string[], dir: string, until: RegExp): Promise<string> {
  const log = join(dir, 'serial.log');
  makeStopPipe(dir);
  const child = spawn('qemu-system-x86_64', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let text = '';
  try {
    for (let i = 0; i < 480 && !until.test(text) && child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 250));
      text = existsSync(log) ? readFileSync(log, 'latin1') : '';
    }
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  assert.ok(/BdsDxe|EFI stub/.test(text), `the firmware ran: ${stderr}`);
  return text;
}

test('with Secure Boot on, OVMF starts a -kernel image that no enrolled key signs, and refuses it from a disk', async (t) => {
  requireTool('qemu-system-x86_64', 'qemu-system-x86');
  if (!existsSync(SNAKEOIL_VARS)) throw new Error(`${SNAKEOIL_VARS} is required: install the Debian package ovmf`);
  const dir = guestFilesDir(t, 'qh-sb-kernel-');
  chmodSync(dir, 0o755);
  // Debian's kernel is signed by Debian's key, which the snakeoil template (PK, KEK and db: the snakeoil key) does
  // not trust.
  const kernel = join(dir, 'vmlinuz');
  copyFileSync(ensureKernel().vmlinuz, kernel);
  const esp = writeEsp(kernel, join(dir, 'esp.img'));
  const guest = (extra: Record<string, unknown>) =>
    validate({
      schemaVersion: 1,
      useCase: 'emulation',
      acceptedRisks: [{ risk: 'emulation', reason: 'the proof runs under TCG on every machine' }],
      guests: [
        {
          name: 'sb',
          memoryMiB: 256,
          firmware: { type: 'uefi', secureBoot: true, code: SECBOOT_CODE, varsTemplate: SNAKEOIL_VARS },
          ...extra,
        },
      ],
    });
  const fromDisk = join(dir, 'disk');
  mkdirSync(fromDisk);
  copyFileSync(SNAKEOIL_VARS, join(fromDisk, 'OVMF_VARS.fd'));
  const refused = await serialOf(
    commandLine(guest({ disks: [{ path: esp, format: 'raw', readOnly: true }] }), fromDisk),
    fromDisk,
    /Access Denied|EFI stub/,
  );
  assert.match(refused, /failed to load Boot0001 .*: Access Denied/, 'from a disk, the unsigned kernel is refused');

  // The same guest booting that kernel directly: the rule refuses these answers, so the line is built without it.
  const direct = guest({ disks: [{ path: esp, format: 'raw', readOnly: true }] });
  direct.guests[0]!.boot = { kernel, cmdline: 'console=ttyS0 panic=-1' };
  const fromKernel = join(dir, 'kernel');
  mkdirSync(fromKernel);
  copyFileSync(SNAKEOIL_VARS, join(fromKernel, 'OVMF_VARS.fd'));
  const started = await serialOf(commandLine(direct, fromKernel), fromKernel, /secureboot: Secure boot enabled/);
  assert.match(started, /EFI stub: UEFI Secure Boot is enabled/, 'Secure Boot is on');
  assert.match(started, /Linux version/, 'and the kernel no enrolled key signs runs all the same');
  assert.throws(
    () => guest({ boot: { kernel } }),
    /boot\.kernel: cannot be used with Secure Boot/,
    'which is why the answers refuse the combination',
  );
});
