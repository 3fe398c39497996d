import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { walk } from '../src/bundle.js';
import { listPresets } from '../src/sources/preset.js';
import { cli, requireTool, tempDir } from './helpers.js';

const REQUIRED_PRESETS = [
  'kvm-headless',
  'kvm-tap',
  'desktop-vnc',
  'pci-passthrough',
  'multi-tenant',
  'tcg-build-runner',
  'windows-11',
];

describe('presets', () => {
  test('the shipped presets cover the required cases, each with a one-line description', async () => {
    const all = listPresets();
    for (const name of REQUIRED_PRESETS)
      assert.ok(
        all.some((p) => p.name === name),
        `missing preset ${name}`,
      );
    for (const p of all) assert.ok(p.description.length > 10 && !p.description.includes('\n'), `${p.name} description`);
    for (const p of all) for (const n of p.notes) assert.ok(n.length > 20 && !n.includes('\n'), `${p.name} note ${n}`);
    const r = await cli(['presets', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const listed = JSON.parse(r.stdout) as { name: string; description: string }[];
    assert.deepEqual(
      listed.map((p) => p.name),
      all.map((p) => p.name),
    );
    assert.ok(listed.every((p) => typeof p.description === 'string' && p.description.length > 0));
  });

  test('windows-11 says which drivers its virtio disk needs, and what to do without them', async () => {
    const text = await cli(['presets']);
    assert.equal(text.code, 0, text.stderr);
    const notes = listPresets()
      .find((p) => p.name === 'windows-11')!
      .notes.join(' ');
    assert.match(notes, /virtio-win/);
    assert.match(notes, /viostor/);
    assert.match(notes, /DISM \/Add-Driver/, 'without the driver in the installation image, Setup sees no disk');
    assert.match(notes, /INACCESSIBLE_BOOT_DEVICE/, 'an existing installation needs the driver before it moves');
    assert.ok(text.stdout.includes(listPresets().find((p) => p.name === 'windows-11')!.notes[0]!));
  });

  for (const name of REQUIRED_PRESETS) {
    describe(name, () => {
      test('generates, regenerates byte for byte from answers.json, and passes verify with the real tools', async (t) => {
        requireTool('systemd-analyze', 'systemd');
        requireTool('apparmor_parser', 'apparmor');
        requireTool('sha256sum', 'coreutils');
        const tmp = tempDir(t);
        const out = join(tmp, 'bundle');
        const gen = await cli(['generate', '--preset', name, '--out', out]);
        assert.equal(gen.code, 0, gen.stderr);

        const again = join(tmp, 'again');
        const regen = await cli(['generate', '--answers', join(out, 'answers.json'), '--out', again]);
        assert.equal(regen.code, 0, regen.stderr);
        const files = walk(out);
        assert.deepEqual(walk(again), files);
        for (const f of files)
          assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(again, f))), `${f} differs on regeneration`);

        const sums = execFileSync('sha256sum', ['-c', 'MANIFEST.sha256'], { cwd: out, encoding: 'utf8' });
        assert.equal(sums.trim().split('\n').length, files.length - 1);
        assert.ok(
          sums
            .trim()
            .split('\n')
            .every((l) => l.endsWith(': OK')),
        );

        const v = await cli(['verify', out, '--json']);
        const report = JSON.parse(v.stdout) as {
          checks: { check: string; status: string }[];
          findings: unknown[];
          exposure: { unit: string; score: number; target: number }[];
        };
        assert.deepEqual(report.findings, []);
        assert.equal(v.code, 0);
        const status = Object.fromEntries(report.checks.map((c) => [c.check, c.status]));
        assert.deepEqual(status, {
          manifest: 'passed',
          answers: 'passed',
          'target release': 'passed',
          'systemd-analyze verify': 'passed',
          exposure: 'passed',
          apparmor_parser: 'passed',
          'qemu machine and CPU': 'passed',
          'sysusers/tmpfiles': 'passed',
          'disks on this host': 'passed',
        });
        const units = files.filter((f) => /^root\/etc\/systemd\/system\/qemu-[a-z0-9-]+\.service$/.test(f));
        assert.deepEqual(
          report.exposure.map((e) => `root/etc/systemd/system/${e.unit}`).sort(),
          units.sort(),
          'every guest unit and every tap helper unit is scored',
        );
        for (const e of report.exposure) assert.ok(e.score <= e.target, `${e.unit}: ${e.score} > ${e.target}`);
      });
    });
  }
});
