// The QEMU options removed since Debian 12, as the one table in src/releases.ts has them (import and audit read
// it): the table read from command lines, then proven against the real QEMU of Debian 12 (this host) and of
// Debian 13 (from the cached Debian 13 root, in a mount namespace), which refuse or take each option as the
// table says and start the bundle's -machine acpi=off,hpet=off.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { plan } from '../src/plan.js';
import { splitArgv, splitOpts } from '../src/qemuargs.js';
import { describeRemoval, removedOption, REMOVED_QEMU_OPTIONS, type Target } from '../src/releases.js';
import { debianRoot, TRIXIE_PACKAGES } from './debian-root.js';
import { requireTool, tempDir } from './helpers.js';
import { execStart } from './unitfile.js';

const forTarget = (doc: unknown, target: Target) => {
  const d = structuredClone(doc) as { host?: Record<string, unknown> };
  return validate({ ...d, host: { ...d.host, target } });
};
const doc = (guests: Record<string, unknown>[], useCase = 'virtualization') => ({
  schemaVersion: 1,
  useCase,
  ...(useCase === 'emulation' ? { acceptedRisks: [{ risk: 'emulation', reason: 'test guests under TCG only' }] } : {}),
  guests: guests.map((g) => ({ disks: [{ path: `/srv/${String(g.name)}.img`, format: 'raw' }], ...g })),
});

/** Each removed option as a command line uses it, and what QEMU says once it no longer has it. */
const SAMPLE: Record<string, { argv: string[]; refused: RegExp }> = {
  '-no-hpet': { argv: ['-no-hpet'], refused: /-no-hpet: invalid option/ },
  '-no-acpi': { argv: ['-no-acpi'], refused: /-no-acpi: invalid option/ },
  '-async-teardown': { argv: ['-async-teardown'], refused: /-async-teardown: invalid option/ },
  '-chroot': { argv: ['-chroot', '/'], refused: /-chroot: invalid option/ },
  '-device virtio-blk,scsi=on|off': {
    argv: ['-device', 'virtio-blk-pci,scsi=off'],
    refused: /Property 'virtio-blk-pci\.scsi' not found/,
  },
  '-fsdev proxy, -virtfs proxy': { argv: ['-fsdev', 'proxy,id=f,sock_fd=3'], refused: /fsdriver proxy not found/ },
  '-runas': { argv: ['-runas', 'nobody'], refused: /-runas: invalid option/ },
  '-spice password=': {
    argv: ['-spice', 'addr=127.0.0.1,port=5999,password=x'],
    refused: /-spice [^:]*: Invalid parameter 'password'/,
  },
};

/** The table entry each option of an argument vector is, as import and audit find it. */
const removedIn = (argv: string[]) =>
  splitArgv(['qemu', ...argv]).map(
    (o) => removedOption(o.name, (implied) => splitOpts(o.value ?? '', implied))?.option,
  );

/** A QEMU that starts, answers QMP on stdin and quits, or refuses its command line: status and stderr. */
function startQemu(run: (args: string[], input: string) => ReturnType<typeof spawnSync>, argv: string[]) {
  const r = run(
    ['-nodefaults', '-display', 'none', '-accel', 'tcg', '-S', '-qmp', 'stdio', ...argv],
    [
      '{"execute":"qmp_capabilities"}',
      '{"execute":"qom-get","arguments":{"path":"/machine","property":"acpi"}}',
      '{"execute":"qom-get","arguments":{"path":"/machine","property":"hpet"}}',
      '{"execute":"quit"}',
      '',
    ].join('\n'),
  );
  const replies = String(r.stdout)
    .split('\n')
    .filter((l) => l.startsWith('{"return"'))
    .map((l) => (JSON.parse(l) as { return: unknown }).return);
  return { status: r.status, stderr: String(r.stderr), acpi: replies[1], hpet: replies[2] };
}

/** The QEMU of this host's release and that of Debian 13 (its cached root, run over an overlay in a namespace). */
async function qemus(t: { after(fn: () => void): void }) {
  requireTool('qemu-system-x86_64', 'qemu-system-x86');
  requireTool('unshare', 'util-linux');
  const tree = await debianRoot('trixie', TRIXIE_PACKAGES);
  const version = (out: string) => /QEMU emulator version (\d+\.\d+)/.exec(out)?.[1] ?? '?';
  const here = (args: string[], input: string) =>
    spawnSync('qemu-system-x86_64', args, { input, encoding: 'utf8', timeout: 120_000 });
  const work = tempDir(t, 'qh-qemu10-');
  // An overlay over the cached root, in a mount namespace of its own: QEMU writes nothing into the cache, and the
  // mounts end with the namespace.
  const script = [
    'w=$2',
    'mkdir -p "$w/u" "$w/w" "$w/m"',
    'mount -t overlay overlay -o "lowerdir=$1,upperdir=$w/u,workdir=$w/w" "$w/m"',
    'mount --rbind /dev "$w/m/dev"',
    'mount -t proc proc "$w/m/proc"',
    'shift 2',
    'exec chroot "$w/m" /usr/bin/qemu-system-x86_64 "$@"',
  ].join(' && ');
  const trixie = (args: string[], input: string) =>
    spawnSync(
      'unshare',
      ['--mount', '--propagation', 'private', '--fork', '--kill-child', 'sh', '-c', script, 'sh', tree, work, ...args],
      {
        input,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
  return [
    { name: 'this host', run: here, version: version(here(['--version'], '').stdout) },
    { name: 'Debian 13', run: trixie, version: version(trixie(['--version'], '').stdout) },
  ];
}

describe('the QEMU options removed since Debian 12: one table for import and audit', () => {
  test('the table names each one, read from a command line as import and audit read it', () => {
    assert.deepEqual(Object.keys(SAMPLE).sort(), REMOVED_QEMU_OPTIONS.map((o) => o.option).sort());
    for (const [option, s] of Object.entries(SAMPLE)) assert.deepEqual(removedIn(s.argv), [option], option);
    for (const fine of [
      ['-machine', 'q35,acpi=off,hpet=off'],
      ['-device', 'virtio-blk-pci,drive=d'],
      ['-fsdev', 'local,id=f,path=/srv,security_model=mapped'],
      ['-spice', 'unix=on,addr=/run/s.sock,password-secret=p'],
      ['-run-with', 'user=nobody'],
    ])
      assert.deepEqual(removedIn(fine), [undefined], fine.join(' '));
    const runas = REMOVED_QEMU_OPTIONS.find((o) => o.option === '-runas')!;
    assert.equal(
      describeRemoval(runas),
      'QEMU deprecated -runas in 9.1 and removed it in 10.0: Debian 13 "trixie" (QEMU 10.0) refuses to start with it',
    );
    const spice = REMOVED_QEMU_OPTIONS.find((o) => o.option === '-spice password=')!;
    assert.match(
      describeRemoval(spice),
      /Debian 13 "trixie" \(QEMU 10\.0\) and Ubuntu 24\.04 "noble" \(QEMU 8\.2\) refuse to start with it; Debian 12 "bookworm" \(QEMU 7\.2\) still takes it, deprecated$/,
    );
  });

  test('the real QEMU of Debian 12 (this host) and of Debian 13 agree with the table, and start the bundle’s -machine acpi=off,hpet=off', async (t) => {
    const a = forTarget(doc([{ name: 'm', acpi: false, hpet: false }]), 'debian-13');
    const argv = execStart(plan(a).find((f) => f.path === 'root/etc/systemd/system/qemu-m.service')!.content);
    const machine = argv[argv.indexOf('-machine') + 1]!;
    assert.match(machine, /^q35,acpi=off,hpet=off,/);
    for (const q of await qemus(t)) {
      assert.match(q.version, /^\d+\.\d+$/, `${q.name}: QEMU's version`);
      const bundle = startQemu(q.run, ['-machine', machine]);
      assert.equal(bundle.status, 0, `${q.name} (QEMU ${q.version}): ${bundle.stderr}`);
      assert.deepEqual([bundle.acpi, bundle.hpet], ['off', false], `${q.name}: the guest has no ACPI and no HPET`);
      const plain = startQemu(q.run, ['-machine', 'q35']);
      assert.deepEqual([plain.acpi, plain.hpet], ['auto', true], `${q.name}: without them, QEMU's defaults`);
      for (const r of REMOVED_QEMU_OPTIONS) {
        const s = SAMPLE[r.option]!;
        const [major = 0, minor = 0] = q.version.split('.').map(Number);
        const [rMajor = 0, rMinor = 0] = r.removedIn.split('.').map(Number);
        const gone = major > rMajor || (major === rMajor && minor >= rMinor);
        const got = startQemu(q.run, s.argv);
        if (gone) {
          assert.notEqual(got.status, 0, `${q.name} (QEMU ${q.version}) refuses ${r.option}`);
          assert.match(got.stderr, s.refused, `${q.name}: ${r.option}`);
        } else if (!r.uses)
          // A property is only judged where QEMU no longer has it: taking it would need the whole device.
          assert.equal(got.status, 0, `${q.name} (QEMU ${q.version}) still takes ${r.option}: ${got.stderr}`);
      }
      t.diagnostic(`${q.name}: QEMU ${q.version}`);
    }
  });
});
