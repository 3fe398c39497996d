// A confinement backend is one record (docs/architecture.md, "A confinement backend"): a do-nothing backend,
// registered here through the registry at run time, is taken up by plan, verify, apply --root, status, audit and
// the Ansible export, none of which is edited for it or names a backend. Its every answer is counted, so each
// command is seen asking it, not merely surviving it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { validate } from '../src/answers.js';
import { audit } from '../src/audit/command.js';
import { readHost } from '../src/audit/live.js';
import { finding, type AuditCheck } from '../src/audit/types.js';
import { writeBundle } from '../src/bundle.js';
import type { ConfinementBackend } from '../src/confine/backend.js';
import { CONFINEMENT, registerBackend } from '../src/confine/index.js';
import { exportAnsible } from '../src/export/ansible.js';
import { apply } from '../src/install/apply.js';
import { installable } from '../src/install/paths.js';
import type { Io } from '../src/io.js';
import { plan } from '../src/plan.js';
import { guestReach } from '../src/reach.js';
import { loadPreset } from '../src/sources/preset.js';
import { formatStatus, status } from '../src/status.js';
import { formatReport, verifyBundle } from '../src/verify.js';

/** How often each command asked the do-nothing backend each question. */
const asked = { files: 0, unitLines: 0, check: 0, activate: 0, expectedLabel: 0, processLabel: 0, judged: 0 };

const DIR = '/etc/qemu-harden-nothing';
const label = (guest: string) => `nothing-${guest}`;

const judge: AuditCheck = {
  name: 'process.nothing',
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view, expect) => {
    asked.judged++;
    return view.processes.flatMap((p) => {
      const raw = p.labels.nothing;
      const want = expect(p).label('nothing');
      if (raw === undefined || want === undefined) return [];
      return [
        finding(
          'process.nothing',
          'info',
          p,
          `marked ${raw}${want === null ? '' : `, asked for ${want}`}`,
          `/proc/${p.pid}: ${raw}`,
          'The do-nothing backend marks every QEMU it is asked about.',
          'The do-nothing backend gives each guest its mark.',
          null,
        ),
      ];
    });
  },
};

/** What the do-nothing backend's generator writes. */
interface Text {
  shared(): string;
  guest(name: string): string;
}

const nothing: ConfinementBackend<Text> = {
  id: 'nothing',
  name: 'Nothing',
  noun: 'mark',
  chosen: () => true,
  confines: () => true,
  guestLabel: (g) => label(g.name),
  generator: async () => ({ shared: () => '# marks every guest\n', guest: (name) => `# the mark of ${name}\n` }),
  files: (a) => {
    asked.files++;
    return [
      { path: `root${DIR}/shared`, why: 'what every mark shares', text: (t: Text) => t.shared() },
      ...a.guests.map((g) => ({
        path: `root${DIR}/${g.name}`,
        why: `guest ${g.name}'s mark`,
        text: (t: Text) => t.guest(g.name),
      })),
    ];
  },
  guestFiles: (guest) => [`${DIR}/${guest}`],
  sharedFiles: [`${DIR}/shared`],
  unitLines: (g) => {
    asked.unitLines++;
    // systemd ignores keys that begin with X- in every section: the unit stays what systemd-analyze accepts.
    return ['Marked by the do-nothing backend.', `X-Nothing-Label=${label(g.name)}`];
  },
  helperUnitLines: (g, kind) => ['Its helper marked too.', `X-Nothing-Label=${label(g.name)}-${kind}`],
  readme: {
    gives: 'a Nothing mark',
    byHand: '`true` for each mark',
    isolation: '- **Nothing.** Each guest carries a mark that keeps nothing from it.',
    release: () => 'its marks declare nothing',
    requires: '- Nothing at all.',
    helper: (g, kind) => `its guest's mark (${label(g.name)}-${kind})`,
    checking: ['true                                   # every mark in place'],
  },
  reach: (_a, g) => [`nothing more than without mark ${label(g.name)}`],
  check: {
    name: 'nothing-marks',
    run: async (b) => {
      asked.check++;
      return { status: 'passed', detail: `${b.answers.guests.length} marks`, findings: [] };
    },
  },
  activationStep: 'load Nothing marks',
  loads: /^\/etc\/qemu-harden-nothing\/[a-z0-9-]+$/,
  activate: async (files) => {
    asked.activate++;
    return { step: 'load Nothing marks', status: 'done', detail: files.join(' ') };
  },
  unload: async (files) => ({ step: 'unload Nothing marks', status: 'done', detail: files.join(' ') }),
  probe: () => ({ enforced: false, evidence: 'nothing: never enforced' }),
  processLabel: () => {
    asked.processLabel++;
    return 'nothing-fake (marked)';
  },
  parseLabel: (raw) => {
    const m = /^(.*?)(?: \((\w+)\))?$/.exec(raw)!;
    return { label: m[1]!, mode: m[2] ?? null };
  },
  enforces: () => false,
  expectedLabel: (setting) => {
    asked.expectedLabel++;
    return setting('X-Nothing-Label') ?? null;
  },
  auditChecks: [judge],
  ansible: {
    handlers: ({ files, listen }) => `- name: Load the Nothing marks
  ansible.builtin.debug:
    msg: "{{ ${files} }}"
  listen: ${listen}
`,
    unload: ({ files }) => `- name: Unload the Nothing marks of guests that left
  ansible.builtin.debug:
    msg: "{{ ${files} }}"
`,
  },
};

function quietIo(): Io & { text: () => string } {
  const out: string[] = [];
  return { out: (s) => out.push(s), err: (s) => out.push(s), isTTY: false, text: () => out.join('') };
}

describe('a confinement backend registered at run time', async () => {
  await registerBackend(nothing);
  const answers = validate(loadPreset('multi-tenant').answers);
  const guests = answers.guests.map((g) => g.name);

  test('the registry holds it after the built-in backends, and refuses a second backend of the same id', async () => {
    assert.deepEqual(
      CONFINEMENT.map((b) => b.id),
      ['apparmor', 'selinux', 'nothing'],
    );
    await assert.rejects(registerBackend(nothing), /"nothing" is registered already/);
  });

  test('plan: its files in the bundle with its generator’s text, its unit lines, its words in the README', () => {
    const files = plan(answers);
    const text = (path: string) => files.find((f) => f.path === path)?.content;
    assert.equal(text(`root${DIR}/shared`), '# marks every guest\n');
    for (const g of guests) {
      assert.equal(text(`root${DIR}/${g}`), `# the mark of ${g}\n`);
      assert.match(
        text(`root/etc/systemd/system/qemu-${g}.service`)!,
        new RegExp(`^X-Nothing-Label=${label(g)}$`, 'm'),
      );
      assert.ok(installable(guests).has(`${DIR}/${g}`), 'its guest files are paths a bundle may install');
    }
    const readme = text('README.md')!;
    assert.match(readme, /a seccomp filter, an AppArmor profile, a Nothing mark and a resource budget\./);
    assert.match(readme, /reload udev, AppArmor, Nothing, systemd/);
    assert.match(readme, /- only while Nothing enforces: nothing more than without mark nothing-alpha/);
    assert.match(readme, /seccomp or AppArmor or Nothing denials/);
    assert.deepEqual(
      guestReach(answers, answers.guests[0]!).enforcedOnly.map((e) => e.by),
      ['AppArmor', 'Nothing'],
    );
    assert.ok(asked.files > 0 && asked.unitLines > 0);
  });

  const dir = mkdtempSync(join(tmpdir(), 'qh-backend-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'bundle');
  const root = join(dir, 'root');

  test('verify: its check runs on the bundle', async () => {
    writeBundle(bundle, plan(answers), false);
    const before = asked.check;
    const report = await verifyBundle(bundle);
    assert.deepEqual(
      report.checks.find((c) => c.check === 'nothing-marks'),
      { check: 'nothing-marks', status: 'passed', detail: `${guests.length} marks` },
      formatReport(report),
    );
    assert.equal(asked.check, before + 1);
    const answersCheck = report.checks.find((c) => c.check === 'answers');
    assert.equal(answersCheck?.status, 'passed', 'its files regenerate unchanged from answers.json');
  });

  test('apply --root: its files installed, its activation step named (a tree: skipped, it needs the running system)', async () => {
    mkdirSync(root);
    const io = quietIo();
    const { outcome } = await apply(
      bundle,
      root,
      { dryRun: false, yes: true, start: false, again: 'qemu-harden start' },
      io,
    );
    assert.equal(outcome, 'ok', io.text());
    assert.equal(readFileSync(join(root, DIR, 'shared'), 'utf8'), '# marks every guest\n');
    for (const g of guests) assert.equal(readFileSync(join(root, DIR, g), 'utf8'), `# the mark of ${g}\n`);
    assert.match(io.text(), /load Nothing marks: needs the running system/);
    assert.equal(asked.activate, 0, 'a tree is never activated');
  });

  test('status: it reads the label each installed unit asks for, runs its check, and a drifted mark is its guest’s', async () => {
    const [judged, expected] = [asked.judged, asked.expectedLabel];
    const before = await status(root);
    assert.equal(asked.judged, judged + 1, 'its check ran (a tree has no process for it to judge)');
    assert.equal(asked.expectedLabel, expected + guests.length);
    for (const g of before.guests) assert.equal(g.expected.nothingMark, label(g.name));
    writeFileSync(join(root, DIR, guests[1]!), '# changed by hand\n');
    const after = await status(root);
    assert.deepEqual(
      after.guests.map((g) => g.drift.map((d) => d.path)),
      guests.map((g) => (g === guests[1] ? [`${DIR}/${g}`] : [])),
      formatStatus(after),
    );
  });

  test('audit: it reads a live QEMU’s label and its check judges it', async (t) => {
    // A process that is QEMU by its command line (audit finds QEMU by its argv), started by the test and stopped
    // by it, whatever the outcome.
    const fake = spawn('sleep', ['300'], { argv0: '/usr/bin/qemu-system-x86_64', stdio: 'ignore' });
    t.after(() => fake.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      fake.once('spawn', resolve);
      fake.once('error', reject);
    });
    // The fake's command line is its own only once sleep runs: until then it is node's.
    while (!readFileSync(`/proc/${fake.pid}/cmdline`, 'utf8').startsWith('/usr/bin/qemu-system-x86_64\0'))
      await new Promise((r) => setTimeout(r, 10));
    const read = asked.processLabel;
    const report = audit(await readHost());
    assert.ok(asked.processLabel > read, 'its label was read');
    const mine = report.findings.filter((f) => f.pid === fake.pid && f.check === 'process.nothing');
    assert.deepEqual(
      mine.map((f) => f.summary),
      ['marked nothing-fake (marked)'],
    );
  });

  test('the Ansible export: its files installed by their pattern, its handler in the role, valid YAML throughout', async () => {
    const out = join(dir, 'ansible');
    await exportAnsible([bundle], [], out, false);
    const role = join(out, 'roles/qemu_harden');
    const read = (f: string) => readFileSync(join(role, f), 'utf8');
    for (const f of readdirSync(role, { recursive: true, encoding: 'utf8' }).filter((x) => x.endsWith('.yml')))
      parseYaml(read(f));
    const vars = parseYaml(read('vars/main.yml')) as Record<string, string | string[]>;
    assert.equal(vars.qemu_harden_nothing_paths, "^(?:{{ qemu_harden_nothing_patterns | join('|') }})$");
    const paths = new RegExp(`^(?:${(vars.qemu_harden_nothing_patterns as string[]).join('|')})$`);
    for (const g of guests) assert.ok(paths.test(`${DIR}/${g}`));
    assert.ok(paths.test(`${DIR}/shared`) && !paths.test(`${DIR}/shared/x`));
    assert.equal(vars.qemu_harden_nothing_loads, nothing.loads.source);
    assert.equal(
      vars.qemu_harden_nothing_gone,
      "{{ qemu_harden_gone | select('match', qemu_harden_nothing_loads) | list }}",
    );
    type Task = { name: string; loop?: string; notify?: string };
    const main = parseYaml(read('tasks/main.yml')) as Task[];
    // The install's tasks are in the file main.yml includes when a run has something to install or remove.
    const tasks = parseYaml(read('tasks/install.yml')) as Task[];
    assert.ok(main.some((x) => (x as Record<string, unknown>)['ansible.builtin.include_tasks'] === 'install.yml'));
    const install = tasks.find((x) => x.name === 'Install the Nothing files')!;
    assert.match(install.loop!, /select\('match', qemu_harden_nothing_paths\)/);
    assert.equal(install.notify, 'qemu-harden nothing changed');
    const restart = main.find((x) => x.name === 'Work out which guests restart') as unknown as {
      'ansible.builtin.set_fact': { qemu_harden_restart: string };
    };
    assert.match(restart['ansible.builtin.set_fact'].qemu_harden_restart, /\['\/etc\/qemu-harden-nothing\/' ~ g\]/);
    // Its unload task runs on the files of guests that left that it loads, before they are moved away.
    const names = tasks.map((x) => x.name);
    const unload = tasks.find((x) => x.name === 'Unload the Nothing marks of guests that left') as unknown as {
      'ansible.builtin.debug': { msg: string };
    };
    assert.equal(unload['ansible.builtin.debug'].msg, '{{ qemu_harden_nothing_gone }}');
    assert.ok(
      names.indexOf('Unload the Nothing marks of guests that left') <
        names.indexOf('Move the files of guests that left into the backup directory'),
    );
    const handlers = parseYaml(read('handlers/main.yml')) as { name: string; listen: string }[];
    assert.deepEqual(
      handlers.filter((h) => h.name === 'Load the Nothing marks').map((h) => h.listen),
      ['qemu-harden nothing changed'],
    );
    assert.ok(existsSync(join(out, 'bundles', 'bundle', 'root', DIR.slice(1), 'shared')));
  });
});
