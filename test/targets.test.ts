// Bundles that fit their target release (answers: host.target): what the generators write for Debian 12, Debian 13
// and Ubuntu 24.04, how generate chooses the target, and what verify says on a host of another release — read by
// this host's own systemd and AppArmor parser where they are the point. The live proof on Debian 13 is
// test/trixie.test.ts.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { TARGET_CHECK } from '../src/checks/target.js';
import * as AA from '../src/gen/apparmor.js';
import { plan } from '../src/plan.js';
import { hostTarget } from '../src/probe.js';
import {
  machineDeprecated,
  readOsRelease,
  RELEASES,
  releaseOfOs,
  REMOVED_QEMU_OPTIONS,
  TARGETS,
  type Target,
} from '../src/releases.js';
import { machineProblems } from '../src/rules.js';
import { listPresets, loadPreset } from '../src/sources/preset.js';
import { cli, tempDir } from './helpers.js';
import { execStart, unitSettings } from './unitfile.js';

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
const units = (files: ReturnType<typeof plan>) =>
  files.filter((f) => /^root\/etc\/systemd\/system\/.*\.service$/.test(f.path));

/** Each removed option as it would appear in an argument vector. */
const REMOVED: Record<string, (argv: string[]) => boolean> = {
  '-no-hpet': (a) => a.includes('-no-hpet'),
  '-no-acpi': (a) => a.includes('-no-acpi'),
  '-chroot': (a) => a.includes('-chroot'),
  '-async-teardown': (a) => a.includes('-async-teardown'),
  '-device virtio-blk,scsi=on|off': (a) =>
    a.some((x, i) => a[i - 1] === '-device' && /^(driver=)?virtio-blk[^,]*,(.*,)?scsi=/.test(x)),
  '-fsdev proxy, -virtfs proxy': (a) =>
    a.some((x, i) => (x === '-virtfs' || x === '-fsdev') && /^(fsdriver=)?proxy(,|$)/.test(a[i + 1] ?? '')),
  '-runas': (a) => a.includes('-runas'),
  '-spice password=': (a) => a.some((x, i) => a[i - 1] === '-spice' && /(^|,)password=/.test(x)),
};

describe('what each target release gets', () => {
  test('no preset, on any target, gives QEMU an option removed upstream', () => {
    assert.deepEqual(Object.keys(REMOVED).sort(), REMOVED_QEMU_OPTIONS.map((o) => o.option).sort());
    for (const p of listPresets())
      for (const t of TARGETS) {
        const files = plan(forTarget(loadPreset(p.name).answers, t));
        for (const u of units(files).filter(
          (f) => /\/qemu-[^/]+\.service$/.test(f.path) && !f.path.endsWith('-tap.service'),
        )) {
          const argv = execStart(u.content);
          if (!argv[0]?.includes('qemu-system')) continue;
          for (const [option, present] of Object.entries(REMOVED))
            assert.ok(!present(argv), `${p.name} on ${t}: ${u.path} uses ${option}`);
        }
      }
  });

  test('systemd settings follow the target’s systemd: 257’s on Debian 13, MemoryKSM= from 254, neither on Debian 12', () => {
    const a = doc([{ name: 'n' }, { name: 'u', network: { mode: 'user' } }, { name: 't', network: { mode: 'tap' } }]);
    const expect: Record<Target, Record<string, string[]>> = {
      'debian-12': { PrivateTmp: ['yes'], ProtectControlGroups: ['yes'], PrivatePIDs: [], MemoryKSM: [] },
      'debian-13': {
        PrivateTmp: ['disconnected'],
        ProtectControlGroups: ['strict'],
        PrivatePIDs: ['yes'],
        MemoryKSM: ['no'],
      },
      'ubuntu-24.04': { PrivateTmp: ['yes'], ProtectControlGroups: ['yes'], PrivatePIDs: [], MemoryKSM: ['no'] },
    };
    for (const t of TARGETS) {
      const files = plan(forTarget(a, t));
      for (const g of ['n', 'u', 't']) {
        const unit = unitSettings(files.find((f) => f.path === `root/etc/systemd/system/qemu-${g}.service`)!.content);
        for (const [key, values] of Object.entries(expect[t]))
          assert.deepEqual(
            unit.filter(([k]) => k === key).map(([, v]) => v),
            values,
            `${t}: qemu-${g}.service ${key}=`,
          );
      }
      for (const helper of ['qemu-t-tap.service', 'qemu-harden-logrotate.service']) {
        const unit = unitSettings(files.find((f) => f.path === `root/etc/systemd/system/${helper}`)!.content);
        const value = (key: string) => unit.filter(([k]) => k === key).map(([, v]) => v);
        assert.deepEqual(value('PrivateTmp'), expect[t].PrivateTmp, `${t}: ${helper}`);
        assert.deepEqual(value('ProtectControlGroups'), expect[t].ProtectControlGroups, `${t}: ${helper}`);
      }
    }
  });

  test('QEMU’s guest RAM is kept out of KSM on every target (mem-merge=off)', () => {
    for (const t of TARGETS) {
      const a = forTarget(doc([{ name: 'm' }]), t);
      const argv = execStart(plan(a).find((f) => f.path === 'root/etc/systemd/system/qemu-m.service')!.content);
      assert.match(argv[argv.indexOf('-machine') + 1]!, /(^|,)mem-merge=off(,|$)/, t);
    }
  });

  test('AppArmor profiles declare the newest abi the target’s parser ships', () => {
    for (const t of TARGETS) {
      const a = forTarget(doc([{ name: 'p' }]), t);
      assert.match(
        AA.profile(a, a.guests[0]!),
        new RegExp(`^abi <abi/${RELEASES[t].apparmorAbi.replace('.', '\\.')}>,$`, 'm'),
        t,
      );
    }
    assert.equal(RELEASES['debian-12'].apparmorAbi, '3.0');
    assert.equal(RELEASES['debian-13'].apparmorAbi, '4.0');
    assert.equal(RELEASES['ubuntu-24.04'].apparmorAbi, '4.0');
  });

  test('the bundle README names the target, and the SPICE modules package where the release splits it out', () => {
    const a = doc([
      { name: 's', display: { mode: 'spice-unix' } },
      { name: 'v', display: { mode: 'vnc-unix' } },
    ]);
    for (const t of TARGETS) {
      const files = plan(forTarget(a, t));
      const readme = files.find((f) => f.path === 'README.md')!.content;
      assert.ok(readme.includes(`Made for ${RELEASES[t].name.replaceAll('"', '"')}`), t);
      assert.equal(JSON.parse(files.find((f) => f.path === 'answers.json')!.content).host.target, t);
      const spice = /SPICE \(`s`\) needs QEMU’s SPICE modules, package `qemu-system-modules-spice`/.test(readme);
      assert.equal(spice, t !== 'debian-12', `${t}: ${spice ? 'names' : 'does not name'} the SPICE modules package`);
    }
    const noSpice = plan(forTarget(doc([{ name: 'v', display: { mode: 'vnc-unix' } }]), 'debian-13'));
    assert.doesNotMatch(noSpice.find((f) => f.path === 'README.md')!.content, /qemu-system-modules-spice/);
  });

  test('a machine type newer than the target’s QEMU, or deprecated by it, is named against that QEMU', () => {
    const problems = (machine: string, t: Target) => machineProblems(forTarget(doc([{ name: 'm', machine }]), t));
    assert.deepEqual(problems('pc-q35-8.0', 'debian-13'), { missing: [], deprecated: [] });
    assert.match(
      problems('pc-q35-8.0', 'debian-12').missing[0]!,
      /^guests\.0\.machine: "pc-q35-8\.0" is newer than QEMU 7\.2 of Debian 12 "bookworm" \(host\.target\), which has no such machine type and cannot start the guest/,
    );
    assert.match(
      problems('pc-q35-6.2', 'debian-13').deprecated[0]!,
      /^guests\.0\.machine: "pc-q35-6\.2" is deprecated by QEMU 10\.0 of Debian 13 "trixie"/,
    );
    assert.deepEqual(problems('pc-q35-6.2', 'debian-12'), { missing: [], deprecated: [] });
    assert.equal(machineDeprecated('pc-q35-7.0', RELEASES['debian-13']), true);
    assert.equal(machineDeprecated('pc-q35-7.1', RELEASES['debian-13']), false);
    assert.equal(machineDeprecated('pc-i440fx-6.2', RELEASES['debian-13']), true);
    assert.equal(machineDeprecated('q35', RELEASES['debian-13']), false);
    assert.equal(
      machineDeprecated('pc-q35-7.0', RELEASES['ubuntu-24.04']),
      false,
      'the 3-year rule came with QEMU 9.1',
    );
  });
});

describe('generate chooses the target', () => {
  test('--target wins, then the answers’ host.target, then this host’s release; the choice is said and recorded', async (t) => {
    const dir = tempDir(t);
    const here = releaseOfOs(readOsRelease()!);
    const answers = join(dir, 'a.json');
    writeFileSync(answers, JSON.stringify(doc([{ name: 'g' }])));
    const gen = async (out: string, ...flags: string[]) => {
      const r = await cli(['generate', '--answers', answers, '--out', join(dir, out), ...flags]);
      assert.equal(r.code, 0, r.stderr);
      return { r, target: JSON.parse(readFileSync(join(dir, out, 'answers.json'), 'utf8')).host.target };
    };
    const plain = await gen('plain');
    if (here) {
      assert.equal(plain.target, here.target);
      assert.match(plain.r.stdout, new RegExp(`^For ${RELEASES[here.target].name} .*: this host runs `, 'm'));
    }
    const chosen = await gen('chosen', '--target', 'ubuntu-24.04');
    assert.equal(chosen.target, 'ubuntu-24.04');
    assert.match(
      chosen.r.stdout,
      /^For Ubuntu 24\.04 "noble" \(QEMU 8\.2, systemd 255, AppArmor 4\.0\): chosen with --target\.$/m,
    );
    writeFileSync(answers, JSON.stringify({ ...doc([{ name: 'g' }]), host: { target: 'debian-13' } }));
    const recorded = await gen('recorded');
    assert.equal(recorded.target, 'debian-13');
    assert.match(recorded.r.stdout, /: as the answers say \(host\.target\)\.$/m);
    assert.equal((await gen('overridden', '--target', 'debian-12')).target, 'debian-12');
    const json = await cli(['generate', '--answers', answers, '--dry-run', '--json', '--target', 'debian-13']);
    assert.deepEqual(JSON.parse(json.stdout).target, { target: 'debian-13', how: 'chosen with --target' });
  });

  test('an unknown --target or host.target is refused naming the flag or field, with exit 2 and nothing written', async (t) => {
    const dir = tempDir(t);
    const answers = join(dir, 'a.json');
    writeFileSync(answers, JSON.stringify(doc([{ name: 'g' }])));
    const flag = await cli(['generate', '--answers', answers, '--out', join(dir, 'b'), '--target', 'debian-11']);
    assert.equal(flag.code, 2);
    assert.equal(
      flag.stderr,
      'qemu-harden: --target: "debian-11" is not a release qemu-harden knows; use one of debian-12, debian-13, ubuntu-24.04\n',
    );
    writeFileSync(answers, JSON.stringify({ ...doc([{ name: 'g' }]), host: { target: 'fedora-42' } }));
    const field = await cli(['generate', '--answers', answers, '--out', join(dir, 'b')]);
    assert.equal(field.code, 2);
    assert.match(field.stderr, /^qemu-harden: host\.target: must be one of "debian-12", "debian-13", "ubuntu-24\.04"/);
    assert.doesNotMatch(flag.stderr + field.stderr, /\n\s+at /, 'no stack trace');
    assert.throws(() => readFileSync(join(dir, 'b', 'answers.json')), /ENOENT/);
  });

  test('generate warns about a machine type the target’s QEMU deprecates or lacks; verify fails on one it lacks', async (t) => {
    const dir = tempDir(t);
    const answers = join(dir, 'a.json');
    writeFileSync(answers, JSON.stringify(doc([{ name: 'g', machine: 'pc-q35-7.0' }])));
    const r = await cli(['generate', '--answers', answers, '--out', join(dir, 'old'), '--target', 'debian-13']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^qemu-harden: warning: guests\.0\.machine: "pc-q35-7\.0" is deprecated by QEMU 10\.0/);
    writeFileSync(answers, JSON.stringify(doc([{ name: 'g', machine: 'pc-q35-9.2' }])));
    const here = releaseOfOs(readOsRelease()!);
    const newer = await cli(['generate', '--answers', answers, '--out', join(dir, 'new'), '--target', 'debian-12']);
    assert.equal(newer.code, 0, newer.stderr);
    assert.match(newer.stderr, /^qemu-harden: warning: guests\.0\.machine: "pc-q35-9\.2" is newer than QEMU 7\.2/);
    if (here?.target === 'debian-12') {
      const v = await cli(['verify', join(dir, 'new')]);
      assert.equal(v.code, 1);
      assert.match(
        v.stdout,
        /target release: answers\.json: guests\.0\.machine: "pc-q35-9\.2" is newer than QEMU 7\.2/,
      );
    }
  });

  test('the probe: os-release names the release; an unknown one falls back to the versions installed here', (t) => {
    const root = tempDir(t);
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/os-release'), 'PRETTY_NAME="Ubuntu 24.04.2 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n');
    assert.deepEqual(hostTarget(root), { target: 'ubuntu-24.04', how: 'this host runs Ubuntu 24.04.2 LTS' });
    writeFileSync(join(root, 'etc/os-release'), 'PRETTY_NAME="Somewhere 1"\nID=somewhere\nVERSION_ID=1\n');
    const fallback = hostTarget(root);
    // This machine's own QEMU, systemd and AppArmor decide; on Debian 12 they are Debian 12's.
    assert.ok(fallback, 'the versions here fit a known release');
    assert.match(
      fallback.how,
      /^Somewhere 1 is not a release qemu-harden knows by name; its versions \(QEMU [0-9.]+, systemd \d+, AppArmor [0-9.]+\) fit /,
    );
    const here = releaseOfOs(readOsRelease()!);
    if (here) assert.equal(fallback.target, here.target);
  });
});

describe('verify on a host of another release', () => {
  const here = releaseOfOs(readOsRelease()!);
  test(
    'says the bundle is for another release, and this host’s own systemd and AppArmor parser show why',
    { skip: here ? false : 'this host is not a release qemu-harden knows by name' },
    async (t) => {
      const other: Target = here!.systemd < RELEASES['debian-13'].systemd ? 'debian-13' : 'debian-12';
      const dir = tempDir(t);
      writeFileSync(join(dir, 'a.json'), JSON.stringify(doc([{ name: 'g' }], 'emulation')));
      const out = join(dir, 'b');
      assert.equal(
        (await cli(['generate', '--answers', join(dir, 'a.json'), '--out', out, '--target', other])).code,
        0,
      );
      const r = await cli(['verify', out, '--json']);
      assert.equal(r.code, 1, r.stdout);
      const report = JSON.parse(r.stdout) as { findings: { check: string; message: string }[] };
      const target = report.findings.filter((f) => f.check === 'target release');
      assert.equal(target.length, 1);
      assert.match(
        target[0]!.message,
        new RegExp(
          `^made for ${RELEASES[other].name} .*, but this host runs ${RELEASES[here!.target].name} .*--target ${here!.target}$`,
        ),
      );
      if (other === 'debian-13') {
        // What Debian 12's own programs make of a Debian 13 bundle: the reason a bundle is made for one release.
        const messages = report.findings.map((f) => `${f.check}: ${f.message}`).join('\n');
        assert.match(
          messages,
          /systemd-analyze verify: .*qemu-g\.service:\d+: Failed to parse boolean value, ignoring: disconnected/,
        );
        assert.match(messages, /systemd-analyze verify: .*Unknown key 'PrivatePIDs'/);
        assert.match(messages, /apparmor_parser: .*Could not open 'abi\/4\.0'/);
        t.diagnostic(`${report.findings.length} findings on ${here!.name}`);
      }
    },
  );

  test('on a host whose release qemu-harden does not know, the check is skipped with the reason, never passed', async (t) => {
    const root = tempDir(t);
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/os-release'), 'PRETTY_NAME="Somewhere 1"\nID=somewhere\nVERSION_ID=1\n');
    const { target } = await import('../src/checks/target.js');
    const saved = TARGET_CHECK.root;
    TARGET_CHECK.root = root;
    try {
      assert.equal(
        target.unavailable!({ dir: '', answers: forTarget(doc([{ name: 'g' }]), 'debian-12'), expected: [] }),
        'this host runs Somewhere 1, which is not a release qemu-harden knows by name',
      );
    } finally {
      TARGET_CHECK.root = saved;
    }
  });
});
