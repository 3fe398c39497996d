// The homes for checks and confinement backends: the check runner's contract, and the AppArmor backend as the
// one record plan, unit, verify and apply go through.
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { isRunAs, README_VERIFY_COMMENT, readmeRunAs } from '../src/bundle-layout.js';
import { runCheck, type Check } from '../src/checks/check.js';
import { exposureOf, exposuresOf } from '../src/checks/exposure.js';
import { apparmor } from '../src/confine/apparmor.js';
import { plan } from '../src/plan.js';
import { loadPreset } from '../src/sources/preset.js';
import { cli, requireTool, tempDir } from './helpers.js';

describe('the check runner', () => {
  test('a check whose program is missing is skipped, names its Debian package, and never runs', async () => {
    let ran = false;
    const check: Check<string> = {
      name: 'needs a program',
      tool: ['sh', 'qemu-harden-no-such-program'],
      debianPackage: 'no-such-package',
      async run() {
        ran = true;
        return { status: 'passed', findings: [] };
      },
    };
    const r = await runCheck(check, 'subject');
    assert.equal(ran, false);
    assert.deepEqual(r.result, {
      check: 'needs a program',
      status: 'skipped',
      detail: 'sh or qemu-harden-no-such-program not found (Debian package no-such-package)',
    });
    assert.deepEqual(r.findings, []);
  });

  test('with its programs found it runs with their paths, and its findings carry its name', async () => {
    const check: Check<string> = {
      name: 'finds',
      tool: 'sh',
      debianPackage: 'dash',
      async run(subject, tools) {
        assert.match(tools.sh!, /\/sh$/);
        return { status: 'failed', detail: 'one', findings: [{ message: `bad ${subject}`, file: 'f' }] };
      },
    };
    const r = await runCheck(check, 'x');
    assert.deepEqual(r.result, { check: 'finds', status: 'failed', detail: 'one' });
    assert.deepEqual(r.findings, [{ check: 'finds', message: 'bad x', file: 'f' }]);
  });

  test('nothing to check: passed with the reason, without looking for its program', async () => {
    const check: Check<string> = {
      name: 'empty',
      tool: 'qemu-harden-no-such-program',
      debianPackage: 'none',
      nothingToCheck: () => 'nothing here',
      run: () => Promise.reject(new Error('must not run')),
    };
    assert.deepEqual((await runCheck(check, '')).result, { check: 'empty', status: 'passed', detail: 'nothing here' });
  });
});

describe('the AppArmor backend record', () => {
  const tenants = validate(loadPreset('multi-tenant').answers);
  const files = plan(tenants);

  test('the files it emits are in the bundle, each guest’s unit attaches its profile, and apply loads exactly the profiles', () => {
    const emitted = apparmor.files(tenants);
    assert.equal(emitted.length, tenants.guests.length * 2 + 1);
    for (const f of emitted)
      assert.ok(
        files.some((x) => x.path === f.path && x.why === f.why),
        `${f.path} is in the plan`,
      );
    const loaded = files.filter((f) => f.path.startsWith('root/') && apparmor.loads.test(f.path.slice('root'.length)));
    assert.deepEqual(
      loaded.map((f) => f.path),
      tenants.guests.map((g) => `root/etc/apparmor.d/qemu-harden-${g.name}`).sort(),
    );
    for (const g of tenants.guests) {
      const unit = files.find((f) => f.path === `root/etc/systemd/system/qemu-${g.name}.service`)!.content;
      for (const line of apparmor.unitLines(g, tenants).slice(1))
        assert.ok(unit.split('\n').includes(line), `${line} in ${g.name}'s unit`);
    }
  });

  test('a guest it does not confine gets no profile and no unit line', () => {
    const doc = structuredClone(loadPreset('kvm-headless').answers) as {
      guests: { isolation?: object }[];
      acceptedRisks?: unknown[];
    };
    doc.guests[0]!.isolation = { apparmor: false };
    doc.acceptedRisks = [
      ...(doc.acceptedRisks ?? []),
      {
        risk: 'apparmor-off',
        guest: (doc.guests[0] as { name: string }).name,
        reason: 'the host runs another MAC system',
      },
    ];
    const a = validate(doc);
    const out = plan(a);
    assert.deepEqual(apparmor.files(a), []);
    assert.ok(!out.some((f) => f.path.includes('apparmor.d')));
    assert.ok(!out.some((f) => f.content.includes('AppArmorProfile=')));
  });

  test('verify reads each profile with apparmor_parser through the backend’s check: a broken profile is a finding', async (t) => {
    requireTool('apparmor_parser', 'apparmor');
    const out = join(tempDir(t), 'bundle');
    assert.equal((await cli(['generate', '--preset', 'multi-tenant', '--out', out])).code, 0);
    const ok = await cli(['verify', out]);
    assert.match(ok.stdout, /ok {4}apparmor_parser — 3 profiles/);
    appendFileSync(join(out, 'root/etc/apparmor.d/qemu-harden.d/beta'), '  this is not a rule\n');
    const r = await cli(['verify', out]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /FAIL {2}apparmor_parser — 3 profiles/);
    assert.match(r.stdout, /apparmor_parser: root\/etc\/apparmor\.d\/qemu-harden-beta: .*syntax error/);
    assert.doesNotMatch(r.stdout, /apparmor_parser: root\/etc\/apparmor\.d\/qemu-harden-alpha/);
  });
});

describe('the exposure check', () => {
  test('one systemd-analyze run scores every unit, and each score goes to its own unit: a weakened one is a finding', async (t) => {
    requireTool('systemd-analyze', 'systemd');
    const out = join(tempDir(t), 'bundle');
    assert.equal((await cli(['generate', '--preset', 'multi-tenant', '--out', out])).code, 0);
    const units = join(out, 'root/etc/systemd/system');
    const files = ['qemu-alpha.service', 'qemu-beta.service', 'qemu-gamma-tap.service'].map((u) => join(units, u));
    const alone = await Promise.all(files.map((f) => exposureOf(f)));
    assert.deepEqual([...(await exposuresOf(files)).values()], alone);
    // beta without its sandbox: far above its target, while alpha's and the tap helper's scores stay as they were.
    const beta = files[1]!;
    const text = readFileSync(beta, 'utf8');
    writeFileSync(
      beta,
      text.replace(/^(Protect|Private|Restrict|Capability|NoNewPrivileges|SystemCall|Lock|Memory).*\n/gm, ''),
    );
    const unreadable = join(units, 'qemu-unreadable.service');
    writeFileSync(unreadable, 'not a unit\n');
    const scores = await exposuresOf([...files, unreadable]);
    assert.equal(scores.get('qemu-alpha.service'), alone[0]);
    assert.equal(scores.get('qemu-gamma-tap.service'), alone[2]);
    assert.ok(scores.get('qemu-beta.service')! > 5, `beta scored ${scores.get('qemu-beta.service')}`);
    assert.equal(scores.has('qemu-unreadable.service'), false, 'a unit it could not read has no score');
    const r = await cli(['verify', out, '--json']);
    const findings = JSON.parse(r.stdout).findings.filter((f: { check: string }) => f.check === 'exposure');
    assert.deepEqual(
      findings.map((f: { file: string; message: string }) => [f.file, f.message.replace(/[0-9.]+ is/, 'N is')]),
      [['root/etc/systemd/system/qemu-beta.service', 'exposure N is above the target 1.5']],
    );
  });
});

describe('host.confinement: none', () => {
  const none = (risks: unknown[]) => {
    const doc = structuredClone(loadPreset('kvm-headless').answers) as {
      host?: object;
      guests: { isolation?: object }[];
      acceptedRisks?: unknown[];
    };
    doc.host = { ...doc.host, confinement: 'none' };
    doc.guests[0]!.isolation = { apparmor: false };
    doc.acceptedRisks = risks;
    return doc;
  };

  test('is an accepted risk with a reason, on host.confinement, and takes no per-guest AppArmor risk besides', () => {
    assert.throws(
      () => validate(none([])),
      (e: Error) => /host\.confinement: takes the risk "confinement-none"/.test(e.message),
    );
    const reason = { risk: 'confinement-none', reason: 'the host enforces no MAC at all' };
    const guest = (loadPreset('kvm-headless').answers as { guests: { name: string }[] }).guests[0]!.name;
    assert.throws(
      () => validate(none([reason, { risk: 'apparmor-off', guest, reason: 'no AppArmor on this host' }])),
      new RegExp(`accepts "apparmor-off" for guest "${guest}", but the answers do not take that risk`),
    );
    assert.equal(validate(none([reason])).host.confinement, 'none');
  });

  test('the bundle holds no MAC file and says so first, loudly; verify says it as a WARNING and reads no profile', async (t) => {
    const out = join(tempDir(t), 'bundle');
    const answers = join(tempDir(t), 'answers.json');
    writeFileSync(answers, JSON.stringify(none([{ risk: 'confinement-none', reason: 'the host enforces no MAC' }])));
    const gen = await cli(['generate', '--answers', answers, '--out', out]);
    assert.equal(gen.code, 0, gen.stderr);
    const files = plan(JSON.parse(readFileSync(join(out, 'answers.json'), 'utf8')) as never);
    assert.ok(!files.some((f) => f.path.includes('apparmor.d')));
    assert.ok(!files.some((f) => f.content.includes('AppArmorProfile=')));
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    assert.match(readme.split('\n')[2]!, /^> \*\*No mandatory access control\.\*\* `host\.confinement` is `none`/);
    assert.match(readme, /mandatory access control: \*\*none\*\*/);
    assert.doesNotMatch(readme, /apparmor_parser|aa-status|profile `qemu-harden-|only while AppArmor enforces/);
    const v = await cli(['verify', out]);
    assert.match(v.stdout.split('\n')[1]!, /^ {2}WARNING {2}NO MANDATORY ACCESS CONTROL: host\.confinement is none/);
    assert.doesNotMatch(v.stdout, /apparmor_parser/);
    assert.deepEqual(JSON.parse((await cli(['verify', out, '--json'])).stdout).warnings.length, 1);
  });
});

describe('how a bundle README may name qemu-harden', () => {
  test('qemu-harden, or node and qemu-harden.js by absolute path; any other command line is not read back', () => {
    for (const ok of [
      'qemu-harden',
      '/usr/bin/node /opt/qh/dist/qemu-harden.js',
      "'/root/my node/bin/node' '/srv/a b/dist/qemu-harden.js'",
    ])
      assert.ok(isRunAs(ok), ok);
    for (const bad of [
      '/bin/rm /etc/qemu-harden.js',
      '/usr/bin/node /etc/passwd',
      'curl -s x',
      'node dist/qemu-harden.js',
    ])
      assert.ok(!isRunAs(bad), bad);
    const readme = (runAs: string) => `# x\n\n${runAs} verify .   ${README_VERIFY_COMMENT}\n`;
    assert.equal(
      readmeRunAs(readme('/usr/bin/node /opt/qh/dist/qemu-harden.js')),
      '/usr/bin/node /opt/qh/dist/qemu-harden.js',
    );
    assert.equal(readmeRunAs(readme('/bin/sh /tmp/evil')), undefined);
  });
});
