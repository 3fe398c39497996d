// Windows 11's two requirements, proven with the real programs under real systemd: `qemu-harden apply --root`
// installs a bundle of two guests with a TPM and UEFI Secure Boot into a throwaway root, systemd-nspawn boots it,
// and `systemctl start` runs each guest under TCG. Each guest's swtpm runs in a unit of its own as the guest's
// user, started before QEMU and stopped with it; QEMU sees the TPM over QMP; one guest's user cannot open the
// other's TPM socket, and neither unit sees the other guest's TPM. The firmware is OVMF's Secure Boot build with
// SMM, its variables from the snakeoil template: an EFI program signed with the snakeoil key starts and reports
// Secure Boot on, an unsigned one is refused by the firmware.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Container } from './container.js';
import { cli, generateBundle, REPO, requireTool, tempDir } from './helpers.js';
import { SECBOOT_CODE, signWithSnakeoil, SNAKEOIL_VARS, writeEsp } from './secureboot.js';
import { ensureKernel } from './vmboot.js';

/** The guest whose boot program carries the snakeoil signature, and the one whose program does not. */
const SIGNED = 'win';
const UNSIGNED = 'rogue';
const GUESTS = [SIGNED, UNSIGNED];
/** A guest that asks for Secure Boot and names no firmware file: the schema's defaults, Microsoft's keys. */
const DEFAULTS = 'plain';

const unit = (g: string) => `qemu-${g}.service`;
const tpmUnit = (g: string) => `qemu-${g}-tpm.service`;
const tpmSocketUnit = (g: string) => `qemu-${g}-tpm.socket`;
const tpmSocket = (g: string) => `/run/qemu-harden/${g}/tpm.sock`;
const tpmState = (g: string) => `/var/lib/qemu-harden/${g}/tpm2`;
const serialLog = (g: string) => `/var/log/qemu-harden/${g}/serial.log`;

describe('a TPM 2.0 per guest from its own swtpm, and UEFI Secure Boot, under real systemd (container, TCG)', () => {
  const dir = tempDir({ after }, 'qh-tpm-ct-');
  const ct = new Container(dir);
  after(() => ct.stop());

  const journal = (u: string) => ct.exec(['journalctl', '-b', '-u', u, '--no-pager', '-o', 'cat']).stdout;
  const show = (u: string, p: string) => ct.exec(['systemctl', 'show', '-p', p, '--value', u]).stdout.trim();
  const status = (pid: number) => {
    const text = ct.exec(['cat', `/proc/${pid}/status`]).stdout;
    return (k: string) => new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(text)?.[1]?.split(/\s+/);
  };
  const id = (g: string) => ct.exec(['id', '-u', `qemu-${g}`]).stdout.trim();
  /** Connect to a unix socket as a guest's user (node's net.connect): "connected", or the error's code. */
  const connectAs = (g: string, path: string) =>
    ct
      .exec([
        'setpriv',
        `--reuid=qemu-${g}`,
        `--regid=qemu-${g}`,
        '--clear-groups',
        'node',
        '-e',
        `require('net').connect(${JSON.stringify(path)}).on('connect', function () { console.log('connected'); this.destroy(); }).on('error', (e) => console.log(e.code))`,
      ])
      .stdout.trim();
  const serial = (g: string) =>
    existsSync(join(ct.root, serialLog(g))) ? readFileSync(join(ct.root, serialLog(g)), 'latin1') : '';
  const waitFor = async (what: string, check: () => boolean) => {
    for (let i = 0; i < 480; i++) {
      if (check()) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.fail(`timed out waiting for ${what}`);
  };

  before(async () => {
    for (const [tool, pkg] of [
      ['systemd-nspawn', 'systemd-container'],
      ['nsenter', 'util-linux'],
      ['setpriv', 'util-linux'],
      ['qemu-system-x86_64', 'qemu-system-x86'],
      ['swtpm', 'swtpm'],
      ['swtpm_setup', 'swtpm-tools'],
    ] as const)
      requireTool(tool, pkg);
    for (const f of [SECBOOT_CODE, SNAKEOIL_VARS])
      if (!existsSync(f)) throw new Error(`${f} is required for this test: install the Debian package ovmf`);
    chmodSync(dir, 0o755);
    const guest = (name: string) => ({
      name,
      memoryMiB: 256,
      tpm: 'tpm2',
      firmware: { type: 'uefi', secureBoot: true, code: SECBOOT_CODE, varsTemplate: SNAKEOIL_VARS },
      disks: [{ path: `/srv/${name}-esp.img`, format: 'raw', readOnly: true }],
    });
    const bundle = await generateBundle(dir, {
      schemaVersion: 1,
      useCase: 'emulation',
      acceptedRisks: [{ risk: 'emulation', reason: 'the proof runs under TCG on every machine' }],
      guests: [
        ...GUESTS.map(guest),
        {
          name: DEFAULTS,
          memoryMiB: 256,
          firmware: { type: 'uefi', secureBoot: true },
          disks: [{ path: `/srv/${DEFAULTS}-esp.img`, format: 'raw', readOnly: true }],
        },
      ],
    });
    ct.prepare();
    mkdirSync(join(ct.root, 'srv'));
    // Debian's kernel is an EFI program; signed again with the snakeoil key, the snakeoil template trusts it.
    const kernel = ensureKernel().vmlinuz;
    writeEsp(signWithSnakeoil(kernel, join(dir, 'signed.efi')), join(ct.root, `srv/${SIGNED}-esp.img`));
    writeEsp(kernel, join(ct.root, `srv/${UNSIGNED}-esp.img`));
    writeEsp(kernel, join(ct.root, `srv/${DEFAULTS}-esp.img`));
    const applied = await cli(['apply', bundle, '--root', ct.root, '--yes']);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    mkdirSync(join(ct.root, 'qh-clients'));
    copyFileSync(join(REPO, 'test/clients/qmp.mjs'), join(ct.root, 'qh-clients/qmp.mjs'));
    await ct.boot({ privateNetwork: true });
  });

  test('starting the guest starts its TPM first: swtpm runs as the guest’s uid, no capabilities, NoNewPrivs, seccomp', () => {
    assert.equal(show(tpmUnit(SIGNED), 'ActiveState'), 'inactive', 'nothing runs before the guest is started');
    const start = ct.exec(['systemctl', 'start', unit(SIGNED)]);
    assert.equal(start.code, 0, `${start.stderr}\n${journal(tpmUnit(SIGNED))}\n${journal(unit(SIGNED))}`);
    assert.equal(show(tpmUnit(SIGNED), 'ActiveState'), 'active', journal(tpmUnit(SIGNED)));
    assert.equal(show(tpmSocketUnit(SIGNED), 'ActiveState'), 'active');
    const tpmStarted = Number(show(tpmUnit(SIGNED), 'ExecMainStartTimestampMonotonic'));
    const qemuStarted = Number(show(unit(SIGNED), 'ExecMainStartTimestampMonotonic'));
    assert.ok(tpmStarted > 0 && tpmStarted < qemuStarted, `swtpm (${tpmStarted}) started before QEMU (${qemuStarted})`);

    const pid = Number(show(tpmUnit(SIGNED), 'MainPID'));
    assert.ok(pid > 0);
    assert.match(ct.exec(['cat', `/proc/${pid}/cmdline`]).stdout, /^\/usr\/bin\/swtpm\0socket\0/);
    const field = status(pid);
    const uid = id(SIGNED);
    assert.notEqual(uid, '0');
    assert.deepEqual(field('Uid'), [uid, uid, uid, uid]);
    assert.deepEqual(field('CapEff'), ['0000000000000000']);
    assert.deepEqual(field('CapPrm'), ['0000000000000000']);
    assert.deepEqual(field('NoNewPrivs'), ['1']);
    assert.deepEqual(field('Seccomp'), ['2']);
    assert.match(ct.exec(['cat', `/proc/${pid}/cgroup`]).stdout, /:\/qemu\.slice\/qemu-win-tpm\.service$/m);
    assert.match(ct.sh(`ls -l /proc/${pid}/fd/3`).stdout, /socket:/, 'swtpm holds the socket systemd handed it');
    assert.equal(ct.exec(['stat', '-c', '%U:%G %a', tpmSocket(SIGNED)]).stdout.trim(), 'qemu-win:qemu-win 600');
  });

  test('swtpm_setup made the TPM’s state on first start, in the guest’s state directory, the guest’s alone', () => {
    assert.equal(ct.exec(['stat', '-c', '%U:%G %a', tpmState(SIGNED)]).stdout.trim(), 'qemu-win:qemu-win 700');
    assert.equal(
      ct.exec(['stat', '-c', '%U:%G %a', `${tpmState(SIGNED)}/tpm2-00.permall`]).stdout.trim(),
      'qemu-win:qemu-win 600',
    );
    assert.match(journal(tpmUnit(SIGNED)), /Successfully authored TPM state/);
  });

  test('QEMU, started by the bundle’s unit, sees the TPM: query-tpm names the emulator backend and tpm-crb', () => {
    const r = ct.exec([
      'node',
      '/qh-clients/qmp.mjs',
      `/run/qemu-harden/${SIGNED}/qmp.sock`,
      JSON.stringify({ execute: 'query-tpm' }),
    ]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const answers = JSON.parse(r.stdout) as { return?: unknown }[];
    const tpms = answers.find((m) => Array.isArray(m.return))?.return as {
      model: string;
      options: { type: string; data: { chardev: string } };
    }[];
    assert.equal(tpms.length, 1, r.stdout);
    assert.equal(tpms[0]!.model, 'tpm-crb');
    assert.equal(tpms[0]!.options.type, 'emulator');
  });

  test('the Secure Boot build of OVMF with SMM starts the signed program, which reports Secure Boot enabled', async () => {
    await waitFor('the signed program to start', () =>
      serial(SIGNED).includes('EFI stub: UEFI Secure Boot is enabled'),
    );
    const log = serial(SIGNED);
    assert.match(log, /BdsDxe: starting Boot0001/);
    assert.doesNotMatch(log, /Access Denied|Security Violation/);
    const cmdline = ct.exec(['cat', `/proc/${show(unit(SIGNED), 'MainPID')}/cmdline`]).stdout.split('\0');
    const machine = cmdline[cmdline.indexOf('-machine') + 1] ?? '';
    assert.match(machine, /^q35,(?:[^,]+,)*smm=on(?:,|$)/, cmdline.join(' '));
    assert.ok(cmdline.includes('driver=cfi.pflash01,property=secure,value=on'));
    assert.ok(cmdline.some((w) => w.includes(`file=${SECBOOT_CODE}`)));
  });

  test('the same firmware refuses the unsigned program of the other guest', async () => {
    const start = ct.exec(['systemctl', 'start', unit(UNSIGNED)]);
    assert.equal(start.code, 0, `${start.stderr}\n${journal(tpmUnit(UNSIGNED))}\n${journal(unit(UNSIGNED))}`);
    await waitFor('the firmware to refuse the program', () =>
      /failed to load Boot0001 .*: Access Denied/.test(serial(UNSIGNED)),
    );
    assert.doesNotMatch(serial(UNSIGNED), /EFI stub/);
  });

  test('Secure Boot with no firmware file named: the Secure Boot build and Microsoft’s keys, which refuse a program they do not sign', async () => {
    const start = ct.exec(['systemctl', 'start', unit(DEFAULTS)]);
    assert.equal(start.code, 0, `${start.stderr}\n${journal(unit(DEFAULTS))}`);
    // Debian's kernel carries Debian's signature, which only shim trusts: Microsoft's keys in db do not.
    await waitFor('the firmware to refuse the program', () =>
      /failed to load Boot0001 .*: Access Denied/.test(serial(DEFAULTS)),
    );
    assert.doesNotMatch(serial(DEFAULTS), /EFI stub/);
    const cmdline = ct.exec(['cat', `/proc/${show(unit(DEFAULTS), 'MainPID')}/cmdline`]).stdout.split('\0');
    assert.ok(
      cmdline.some((w) => w.endsWith(',file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd')),
      cmdline.join(' '),
    );
    assert.ok(cmdline.includes('driver=cfi.pflash01,property=secure,value=on'));
    assert.match(
      readFileSync(join(ct.root, `etc/systemd/system/${unit(DEFAULTS)}`), 'utf8'),
      /^ExecStartPre=.* \/var\/lib\/qemu-harden\/plain\/OVMF_VARS\.fd \/usr\/share\/OVMF\/OVMF_VARS_4M\.ms\.fd$/m,
      'its variables are copied from the template with Microsoft’s keys',
    );
    assert.equal(ct.exec(['systemctl', 'stop', unit(DEFAULTS)]).code, 0);
  });

  test('one guest’s user cannot open the other guest’s TPM socket; the other guest’s own user can', () => {
    assert.equal(show(tpmSocketUnit(UNSIGNED), 'ActiveState'), 'active');
    assert.notEqual(connectAs(SIGNED, tpmSocket(UNSIGNED)), 'connected');
    assert.equal(connectAs(SIGNED, tpmSocket(UNSIGNED)), 'EACCES');
    assert.equal(connectAs(UNSIGNED, tpmSocket(UNSIGNED)), 'connected');
  });

  test('neither a guest’s QEMU nor its swtpm sees the other guest’s TPM, and QEMU does not see its own TPM’s state', () => {
    const qemu = Number(show(unit(SIGNED), 'MainPID'));
    const swtpm = Number(show(tpmUnit(SIGNED), 'MainPID'));
    const inside = (pid: number, script: string) =>
      ct.exec(['nsenter', '-t', String(pid), '-m', '-U', '--preserve-credentials', 'sh', '-c', script]);
    assert.equal(inside(qemu, 'ls /run/qemu-harden').stdout.trim(), SIGNED, 'QEMU sees only its own runtime directory');
    assert.equal(inside(qemu, 'ls /var/lib/qemu-harden').stdout.trim(), SIGNED);
    assert.notEqual(inside(qemu, `test -e ${tpmState(UNSIGNED)}`).code, 0);
    assert.notEqual(inside(qemu, `test -e ${tpmSocket(UNSIGNED)}`).code, 0);
    assert.notEqual(
      inside(qemu, `cat ${tpmState(SIGNED)}/tpm2-00.permall > /dev/null`).code,
      0,
      'QEMU’s view hides its own TPM’s state',
    );
    assert.equal(inside(swtpm, 'ls /var/lib/qemu-harden').stdout.trim(), SIGNED);
    assert.equal(inside(swtpm, `ls /var/lib/qemu-harden/${SIGNED}`).stdout.trim(), 'tpm2', 'swtpm sees only its state');
    assert.equal(
      inside(swtpm, 'ls -A /run /run/systemd/incoming').stdout.replace(/\s+/g, ' ').trim(),
      '/run: systemd /run/systemd/incoming:',
      'swtpm’s /run holds only systemd’s own empty mount point: its socket came from systemd',
    );
    assert.notEqual(inside(swtpm, `test -e ${tpmState(UNSIGNED)}`).code, 0);
  });

  test('stopping the guest stops its TPM and its socket; the state stays, and the next start keeps it', async () => {
    assert.equal(ct.exec(['systemctl', 'stop', unit(SIGNED)]).code, 0);
    assert.equal(show(tpmUnit(SIGNED), 'ActiveState'), 'inactive');
    assert.equal(show(tpmSocketUnit(SIGNED), 'ActiveState'), 'inactive');
    assert.notEqual(ct.exec(['test', '-e', tpmSocket(SIGNED)]).code, 0, 'the socket is removed');
    assert.equal(ct.exec(['test', '-s', `${tpmState(SIGNED)}/tpm2-00.permall`]).code, 0, 'the state is kept');
    const start = ct.exec(['systemctl', 'start', unit(SIGNED)]);
    assert.equal(start.code, 0, `${start.stderr}\n${journal(tpmUnit(SIGNED))}`);
    assert.equal(show(tpmUnit(SIGNED), 'ActiveState'), 'active');
    assert.match(journal(tpmUnit(SIGNED)), /Not overwriting existing state file/, 'swtpm_setup left the state alone');
    assert.equal(journal(tpmUnit(SIGNED)).match(/Successfully authored TPM state/g)?.length, 1);
  });
});
