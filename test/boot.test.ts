// Proof 1: the QEMU command line of every preset's unit boots a guest as an unprivileged uid with the sandbox
// on, under TCG always and under KVM where /dev/kvm works. Devices are private nodes bound over /dev in a
// private mount namespace; the host's own nodes are never touched.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { guestService } from '../src/gen/systemd.js';
import { loadPreset } from '../src/sources/preset.js';
import { BOOT_MARKER, DEBUG_EXIT_DEVICE, DEBUG_EXIT_STATUS, writeBootDisk } from './bootdisk.js';
import { guestFilesDir, kvm, requireTool, stopChild, waitUntil } from './helpers.js';
import { execStart, makeStopPipe } from './unitfile.js';

const PRESETS = ['kvm-headless', 'kvm-tap', 'desktop-vnc', 'pci-passthrough', 'multi-tenant', 'tcg-build-runner'];

/**
 * Run argv as uid in private mount and network namespaces. The guest gets a private node of each device it uses
 * (kvm only under KVM, tun only with a tap), owned by uid and bound over the host's path inside the namespace;
 * a device the machine lacks is never created.
 */
function runConfined(dir: string, uid: number, argv: string[], accel: 'tcg' | 'kvm', tap: string | undefined) {
  const privateNode = (name: string, path: string, minor: number) => [
    `mknod -m 0600 ${dir}/dev-${name}-${uid} c 10 ${minor} && chown ${uid}:${uid} ${dir}/dev-${name}-${uid}`,
    `mount --bind ${dir}/dev-${name}-${uid} ${path}`,
  ];
  if (tap)
    assert.ok(existsSync('/dev/net/tun'), 'a tap guest needs /dev/net/tun, which this machine lacks (modprobe tun)');
  const script = [
    'set -e',
    ...(accel === 'kvm' ? privateNode('kvm', '/dev/kvm', 232) : []),
    ...(tap
      ? [
          ...privateNode('tun', '/dev/net/tun', 200),
          `ip tuntap add dev ${tap} mode tap user ${uid} group ${uid}`,
          `ip link set dev ${tap} up`,
        ]
      : []),
    `exec setpriv --reuid=${uid} --regid=${uid} --clear-groups --no-new-privs -- "$@"`,
  ].join('\n');
  return spawnSync('unshare', ['--mount', '--net', '--propagation', 'private', 'sh', '-c', script, 'sh', ...argv], {
    encoding: 'utf8',
    timeout: 600_000,
  });
}

describe('every preset’s QEMU command line boots its guest, unprivileged and sandboxed', () => {
  const k = kvm();
  for (const preset of PRESETS) {
    for (const accel of ['tcg', 'kvm'] as const) {
      test(
        `${preset} under ${accel.toUpperCase()}`,
        { skip: accel === 'kvm' && !k.works ? `not run: ${k.why}; the TCG run proves the rest` : false },
        (t) => {
          requireTool('qemu-system-x86_64', 'qemu-system-x86');
          requireTool('unshare', 'util-linux');
          requireTool('ip', 'iproute2');
          const dir = guestFilesDir(t, 'qh-boot-');
          chmodSync(dir, 0o755);
          const doc = structuredClone(loadPreset(preset).answers) as {
            guests: {
              name: string;
              disks: { path: string; format: string; readOnly?: boolean }[];
              network?: { mode: string; vhost?: boolean };
              passthrough?: unknown;
            }[];
            acceptedRisks?: { risk: string }[];
          };
          for (const g of doc.guests) {
            g.disks = g.disks.map((d, i) => ({
              ...d,
              path: writeBootDisk(join(dir, `${g.name}-${i}.img`)),
              format: 'raw',
            }));
            if (g.network?.mode === 'tap') g.network.vhost = false;
            if (g.passthrough) delete g.passthrough;
          }
          if (doc.acceptedRisks) doc.acceptedRisks = doc.acceptedRisks.filter((r) => r.risk !== 'pci-passthrough');
          const a = validate(doc);

          a.guests.forEach((g, gi) => {
            const uid = 61000 + gi;
            const run = join(dir, 'run', g.name);
            const log = join(dir, 'log', g.name);
            for (const d of [run, log]) {
              mkdirSync(d, { recursive: true });
              chownSync(d, uid, uid);
            }
            for (const d of g.disks) chownSync(d.path, uid, uid);
            makeStopPipe(run, uid);
            let argv = execStart(guestService(a, g)).map((w) =>
              w.replaceAll(`/run/qemu-harden/${g.name}`, run).replaceAll(`/var/log/qemu-harden/${g.name}`, log),
            );
            const at = (opt: string) => argv.indexOf(opt) + 1;
            assert.match(
              argv[at('-sandbox')]!,
              /^on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny$/,
            );
            if (accel === 'tcg') {
              argv[at('-accel')] = 'tcg';
              argv[at('-cpu')] = 'max';
            } else if (argv[at('-accel')] === 'tcg') {
              argv[at('-accel')] = 'kvm';
              argv[at('-cpu')] = 'host,-arch-capabilities';
            } else if (argv[at('-cpu')] === 'host') argv[at('-cpu')] = 'host,-arch-capabilities';
            argv = [...argv, '-device', DEBUG_EXIT_DEVICE];
            const tap = g.network.mode === 'tap' ? (g.network.tapDevice ?? `qh-${g.name}`) : undefined;
            const r = runConfined(dir, uid, argv, accel, tap);
            assert.equal(r.status, DEBUG_EXIT_STATUS, `${g.name}: exit ${r.status}, stderr: ${r.stderr}`);
            const serial = join(log, 'serial.log');
            assert.ok(readFileSync(serial, 'utf8').includes(BOOT_MARKER), `${g.name}: marker on the serial console`);
            assert.equal(statSync(serial).uid, uid, 'the serial log was written by QEMU running as the guest’s uid');
          });
        },
      );
    }
  }
});

describe('UEFI firmware with a per-guest vars file', () => {
  test('the QEMU command line starts OVMF as the guest’s uid, reading its own copy of the vars', async (t) => {
    requireTool('qemu-system-x86_64', 'qemu-system-x86');
    const dir = guestFilesDir(t, 'qh-uefi-');
    chmodSync(dir, 0o755);
    const uid = 61100;
    const disk = writeBootDisk(join(dir, 'efi.img'));
    chownSync(disk, uid, uid);
    const a = validate({
      schemaVersion: 1,
      useCase: 'virtualization',
      guests: [{ name: 'efi', firmware: { type: 'uefi' }, memoryMiB: 256, disks: [{ path: disk, format: 'raw' }] }],
    });
    const g = a.guests[0]!;
    if (g.firmware.type !== 'uefi') throw new Error('expected a UEFI guest');
    requireFile(g.firmware.code, 'ovmf');
    const state = join(dir, 'state');
    const log = join(dir, 'log');
    const run = join(dir, 'run');
    for (const d of [state, log, run]) {
      mkdirSync(d);
      chownSync(d, uid, uid);
    }
    makeStopPipe(run, uid);
    copyFileSync(g.firmware.varsTemplate, join(state, 'OVMF_VARS.fd'));
    chownSync(join(state, 'OVMF_VARS.fd'), uid, uid);
    const argv = execStart(guestService(a, g)).map((w) =>
      w
        .replaceAll('/var/lib/qemu-harden/efi', state)
        .replaceAll('/var/log/qemu-harden/efi', log)
        .replaceAll('/run/qemu-harden/efi', run),
    );
    argv[argv.indexOf('-accel') + 1] = 'tcg';
    argv[argv.indexOf('-cpu') + 1] = 'max';
    const child = spawn(
      'setpriv',
      [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--no-new-privs', '--', ...argv],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    t.after(() => stopChild(child));
    const serial = join(log, 'serial.log');
    const text = () => (existsSync(serial) ? readFileSync(serial, 'latin1') : '');
    await waitUntil(
      'OVMF to reach its boot manager (or QEMU to exit)',
      () => text().includes('BdsDxe') || child.exitCode !== null,
      {
        timeoutMs: 600_000,
      },
    );
    assert.ok(text().includes('BdsDxe'), `OVMF reached its boot manager; QEMU stderr: ${stderr}`);
    assert.equal(statSync(serial).uid, uid);
  });
});

function requireFile(path: string, pkg: string): void {
  if (!existsSync(path)) throw new Error(`${path} is required for this test: install the Debian package ${pkg}`);
}
