import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { walk } from '../src/bundle.js';
import { readPasswd, uidOf, userOf } from '../src/passwd.js';
import { BIN, cli, requireTool, tempDir } from './helpers.js';

/** A digest of a whole tree: paths, types, modes, owners, contents and link targets. */
function treeHash(dir: string): string {
  const h = createHash('sha256');
  const visit = (rel: string) => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    h.update(`${rel}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isDirectory()) for (const e of readdirSync(p).sort()) visit(rel ? `${rel}/${e}` : e);
    else h.update(readFileSync(p));
  };
  visit('');
  return h.digest('hex');
}

describe('qemu-harden apply', () => {
  const bundles = tempDir({ after }, 'qh-apply-bundles-');
  before(async () => {
    requireTool('systemd-sysusers', 'systemd');
    chmodSync(bundles, 0o755);
    for (const preset of ['multi-tenant', 'kvm-headless']) {
      const r = await cli(['generate', '--preset', preset, '--out', join(bundles, preset)]);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  const newRoot = (t: { after(fn: () => void): void }) => {
    const root = tempDir(t, 'qh-apply-root-');
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    return root;
  };

  test('--dry-run changes nothing at all', async (t) => {
    const root = newRoot(t);
    const before = treeHash(root);
    const r = await cli(['apply', join(bundles, 'multi-tenant'), '--root', root, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /new +\/etc\/systemd\/system\/qemu-alpha\.service/);
    assert.match(r.stdout, /Dry run: nothing was changed/);
    assert.equal(treeHash(root), before);
  });

  test('without a terminal and without --yes: exit 2, nothing changed', async (t) => {
    const root = newRoot(t);
    const before = treeHash(root);
    const r = await cli(['apply', join(bundles, 'multi-tenant'), '--root', root]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /pass --yes/);
    assert.equal(treeHash(root), before);
  });

  test('installs with owners and modes, creates users and directories offline, says what it skipped; twice is harmless', async (t) => {
    requireTool('systemd-tmpfiles', 'systemd');
    const root = newRoot(t);
    const bundle = join(bundles, 'multi-tenant');
    const r = await cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    for (const rel of walk(join(bundle, 'root'))) {
      const st = statSync(join(root, rel));
      assert.equal(st.mode & 0o7777, 0o644, rel);
      assert.equal(st.uid, 0);
      assert.ok(readFileSync(join(root, rel)).equals(readFileSync(join(bundle, 'root', rel))), rel);
    }
    const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
    for (const g of ['alpha', 'beta', 'gamma'])
      assert.match(
        passwd,
        new RegExp(`^qemu-${g}:x:\\d+:\\d+:qemu-harden guest ${g}:/var/lib/qemu-harden/${g}:/usr/sbin/nologin$`, 'm'),
      );
    assert.match(readFileSync(join(root, 'etc/group'), 'utf8'), /^qemu-net:x:\d+:$/m);
    const state = statSync(join(root, 'var/lib/qemu-harden/alpha'));
    assert.equal(state.mode & 0o7777, 0o700);
    assert.equal(state.uid, uidOf(readPasswd(root), 'qemu-alpha'), "the guest's state directory belongs to its user");
    assert.match(r.stdout, /skip +reload udev rules.*is a tree/);
    assert.match(r.stdout, /skip +load AppArmor profiles/);
    assert.match(r.stdout, /skip +reload systemd/);

    const before = treeHash(root);
    const again = await cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /Nothing to change/);
    assert.equal(treeHash(root), before);
  });

  test('a rollback that stops at a failed step: what it prints, `rollback` again, completes it; `rollback` once more returns', async (t) => {
    const root = newRoot(t);
    const [older, newer] = ['multi-tenant', 'kvm-headless'].map((b) => join(bundles, b));
    for (const b of [older!, newer!]) assert.equal((await cli(['apply', b, '--root', root, '--yes'])).code, 0);
    const installedIs = (b: string, why: string) => {
      for (const rel of walk(join(b, 'root')))
        assert.ok(readFileSync(join(root, rel)).equals(readFileSync(join(b, 'root', rel))), `${why}: ${rel}`);
      const units = (dir: string) =>
        readdirSync(join(dir, 'etc/systemd/system'))
          .filter((u) => /^qemu-.*\.service$/.test(u))
          .sort();
      assert.deepEqual(units(root), units(join(b, 'root')), why);
    };
    // A systemd-sysusers that refuses stands in for any step that fails once the files are in place.
    const stand = tempDir(t, 'qh-apply-failing-');
    writeFileSync(join(stand, 'systemd-sysusers'), '#!/bin/sh\necho stand-in refuses >&2\nexit 1\n', { mode: 0o755 });
    const failed = await cli(['rollback', '--root', root, '--yes'], { env: { PATH: `${stand}:${process.env.PATH}` } });
    assert.equal(failed.code, 1, failed.stderr + failed.stdout);
    assert.match(
      failed.stderr,
      /a step failed, so this rollback is not recorded as complete; fix the cause, then run rollback again to complete it \(or apply the bundle installed before it\)/,
    );
    const status = await cli(['status', '--root', root]);
    assert.match(status.stdout, /INTERRUPTED: a rollback started .* did not finish; run rollback again to complete it/);

    const completed = await cli(['rollback', '--root', root, '--yes']);
    assert.equal(completed.code, 0, completed.stderr + completed.stdout);
    installedIs(older!, 'the rollback completed to the bundle before');
    assert.match(completed.stdout + completed.stderr, /The last rollback stopped midway; completing it\./);
    const back = await cli(['rollback', '--root', root, '--yes']);
    assert.equal(back.code, 0, back.stderr + back.stdout);
    installedIs(newer!, 'a second rollback returns to the bundle rolled back from');
  });

  test('a changed installed file is shown as a diff and backed up before it is replaced', async (t) => {
    const root = newRoot(t);
    const bundle = join(bundles, 'kvm-headless');
    assert.equal((await cli(['apply', bundle, '--root', root, '--yes'])).code, 0);
    const unit = join(root, 'etc/systemd/system/qemu-server.service');
    appendFileSync(unit, 'Environment=LOCAL=1\n');
    const edited = readFileSync(unit);
    const dry = await cli(['apply', bundle, '--root', root, '--dry-run']);
    assert.match(dry.stdout, /changed +\/etc\/systemd\/system\/qemu-server\.service/);
    assert.match(dry.stdout, /^-Environment=LOCAL=1$/m);
    const r = await cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(r.code, 0, r.stderr);
    const m = /backed up under (\S+)\./.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.ok(m[1]!.startsWith(join(root, 'var/backups/qemu-harden/')));
    assert.ok(readFileSync(join(m[1]!, 'etc/systemd/system/qemu-server.service')).equals(edited));
    assert.ok(readFileSync(unit).equals(readFileSync(join(bundle, 'root/etc/systemd/system/qemu-server.service'))));
  });

  test('a tampered bundle is refused with exit 1 and nothing changes', async (t) => {
    const root = newRoot(t);
    const tmp = tempDir(t);
    const bundle = join(tmp, 'b');
    assert.equal((await cli(['generate', '--preset', 'kvm-headless', '--out', bundle])).code, 0);
    appendFileSync(join(bundle, 'root/etc/udev/rules.d/65-qemu-harden.rules'), 'KERNEL=="kvm", MODE="0666"\n');
    const before = treeHash(root);
    const r = await cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not match its manifest.*nothing was changed/s);
    assert.match(r.stderr, /65-qemu-harden\.rules: changed since the bundle was generated/);
    assert.equal(treeHash(root), before);
  });

  test('a target that leaves --root through a symlink is refused', async (t) => {
    const root = newRoot(t);
    const outside = tempDir(t);
    mkdirSync(join(root, 'etc/systemd'), { recursive: true });
    symlinkSync(outside, join(root, 'etc/systemd/system'));
    const before = treeHash(root);
    const r = await cli(['apply', join(bundles, 'kvm-headless'), '--root', root, '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /leaves .* through a symlink; nothing was changed/);
    assert.deepEqual(readdirSync(outside), []);
    assert.equal(treeHash(root), before);
  });

  test('on a terminal it asks first: "n" changes nothing and exits 130, "y" installs', (t) => {
    requireTool('script', 'util-linux');
    const root = newRoot(t);
    const before = treeHash(root);
    const cmd = `${process.execPath} ${BIN} apply ${join(bundles, 'kvm-headless')} --root ${root}`;
    const no = spawnSync('script', ['-qec', cmd, '/dev/null'], { input: 'n\n', encoding: 'utf8', timeout: 300_000 });
    assert.equal(no.status, 130, no.stdout);
    assert.match(no.stdout, /Apply these \d+ changes to .*\? \[y\/N\]/);
    assert.match(no.stdout, /Nothing was changed/);
    assert.equal(treeHash(root), before);
    const yes = spawnSync('script', ['-qec', cmd, '/dev/null'], { input: 'y\n', encoding: 'utf8', timeout: 300_000 });
    assert.equal(yes.status, 0, yes.stdout);
    assert.ok(existsSync(join(root, 'etc/systemd/system/qemu-server.service')));
  });

  test('on a tree: the printed `systemctl --root` line, pasted, enables every guest there; apply --start and start do the same; a second paste changes nothing; nothing claims a process runs', async (t) => {
    requireTool('systemctl', 'systemd');
    const root = newRoot(t);
    const bundle = join(bundles, 'multi-tenant');
    const wants = join(root, 'etc/systemd/system/multi-user.target.wants');
    const r = await cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.doesNotMatch(r.stdout, /enable --now|until restarted|with --start|not running|guests? running/);
    const hint = /^Not enabled in (\S+): alpha, beta, gamma\. .*\n {2}(.*)$/m.exec(r.stdout);
    assert.ok(hint, r.stdout);
    assert.equal(hint[2], `systemctl --root=${root} enable qemu-alpha.service qemu-beta.service qemu-gamma.service`);
    assert.ok(!existsSync(wants), 'nothing is enabled before the paste');
    const paste = () => spawnSync('sh', ['-c', hint[2]!], { encoding: 'utf8', timeout: 60_000 });
    const pasted = paste();
    assert.equal(pasted.status, 0, pasted.stderr);
    assert.deepEqual(readdirSync(wants).sort(), ['qemu-alpha.service', 'qemu-beta.service', 'qemu-gamma.service']);
    for (const g of ['alpha', 'beta', 'gamma'])
      assert.equal(readlinkSync(join(wants, `qemu-${g}.service`)), `/etc/systemd/system/qemu-${g}.service`);
    const enabled = treeHash(root);
    assert.equal(paste().status, 0);
    assert.equal(treeHash(root), enabled, 'a second paste changes nothing');
    const again = await cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Every guest is enabled in \S+, so each starts when a system boots from it/m);
    assert.doesNotMatch(again.stdout, /systemctl/);

    // --start on a tree enables, offline, and starts nothing; `start --root` is the same alone.
    const other = newRoot(t);
    const started = await cli(['apply', bundle, '--root', other, '--yes', '--start']);
    assert.equal(started.code, 0, started.stderr + started.stdout);
    assert.match(started.stdout, /^ {2}done {2}enable alpha, beta, gamma in \S+: they start when a system boots/m);
    assert.equal(readdirSync(join(other, 'etc/systemd/system/multi-user.target.wants')).length, 3);
    const third = newRoot(t);
    assert.equal((await cli(['apply', bundle, '--root', third, '--yes'])).code, 0);
    const alone = await cli(['start', '--root', third, '--json']);
    assert.equal(alone.code, 0, alone.stderr);
    const report = JSON.parse(alone.stdout) as { looked: string; next: null; guests: Record<string, unknown>[] };
    assert.equal(report.looked, 'tree');
    assert.equal(report.next, null);
    for (const g of report.guests) {
      assert.equal(g.running, null, 'nothing runs in a tree: not looked at');
      assert.equal(g.older, null);
      assert.equal(g.enabled, false, 'what was found before');
      assert.equal(g.action, 'enable');
      assert.equal(g.result, 'done');
    }
    assert.equal(readdirSync(join(third, 'etc/systemd/system/multi-user.target.wants')).length, 3);
  });

  test('status on a tree looks at no process and says so: "not looked at", running null, no claim about running guests', async (t) => {
    const root = newRoot(t);
    assert.equal((await cli(['apply', join(bundles, 'multi-tenant'), '--root', root, '--yes'])).code, 0);
    const st = await cli(['status', '--root', root]);
    assert.equal(st.code, 0, st.stdout);
    for (const g of ['alpha', 'beta', 'gamma'])
      assert.match(st.stdout, new RegExp(`^${g} {2}qemu-${g}\\.service {2}not looked at \\(a tree\\)$`, 'm'));
    assert.doesNotMatch(st.stdout, /not running|every running guest/);
    assert.match(st.stdout, /^OK: the files match the record \(in a tree no process is looked at\)\.$/m);
    const sj = JSON.parse((await cli(['status', '--root', root, '--json'])).stdout) as {
      guests: { running: unknown; process: unknown }[];
    };
    assert.equal(sj.guests.length, 3);
    for (const g of sj.guests) assert.deepEqual([g.running, g.process], [null, null]);
  });

  test('--root that does not exist is refused, with --dry-run too, naming --root; nothing is made', async (t) => {
    const parent = tempDir(t);
    for (const args of [
      ['apply', join(bundles, 'kvm-headless'), '--dry-run'],
      ['apply', join(bundles, 'kvm-headless'), '--yes'],
      ['rollback', '--dry-run'],
      ['start', '--dry-run'],
      ['status'],
    ]) {
      const r = await cli([...args, '--root', join(parent, 'not-yet')]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(
        r.stderr,
        /^qemu-harden: --root: \S+\/not-yet does not exist; the tree must exist \(also for --dry-run\)/,
      );
      assert.equal(r.stdout, '');
    }
    assert.deepEqual(readdirSync(parent), []);
    const help = (await cli(['apply', '--help'])).stdout.replace(/\s+/g, ' ');
    assert.match(help, /--root PATH install into the tree at PATH instead of \/; it must exist \(with --dry-run too\)/);
  });

  test('--json: one document on stdout for the plan and the outcome, the text on stderr; exit 2 leaves stdout empty', async (t) => {
    requireTool('systemctl', 'systemd');
    const root = newRoot(t);
    const bundle = join(bundles, 'kvm-headless');
    const parse = (r: { code: number; stdout: string; stderr: string }) => {
      try {
        return JSON.parse(r.stdout) as Record<string, any>;
      } catch (e) {
        assert.fail(`stdout is not one JSON document (${String(e)}):\n${r.stdout}\n--- stderr:\n${r.stderr}`);
      }
    };
    const KEYS = [
      'action',
      'backups',
      'bundle',
      'dryRun',
      'ok',
      'plan',
      'problem',
      'recovered',
      'removedGuests',
      'result',
      'root',
      'start',
      'steps',
    ];

    const dry = await cli(['apply', bundle, '--root', root, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const d = parse(dry);
    assert.deepEqual(Object.keys(d).sort(), KEYS);
    assert.equal(d.result, 'dry-run');
    assert.equal(d.dryRun, true);
    assert.equal(d.start, null);
    assert.equal(d.root, realpathSync(root));
    assert.equal(
      d.bundle.manifest,
      createHash('sha256')
        .update(readFileSync(join(bundle, 'MANIFEST.sha256')))
        .digest('hex'),
    );
    assert.deepEqual(
      d.plan.files.map((f: { path: string }) => f.path).sort(),
      walk(join(bundle, 'root'))
        .map((f) => `/${f}`)
        .sort(),
    );
    assert.ok(d.plan.files.every((f: { change: string; diff: null }) => f.change === 'new' && f.diff === null));
    assert.deepEqual(d.plan.guests, [
      {
        name: 'server',
        state: 'new',
        parts: ['profile', 'unit', 'users'],
        units: ['qemu-server.service'],
        helpers: [],
        droppedHelpers: [],
      },
    ]);
    assert.match(dry.stderr, /Dry run: nothing was changed/, 'the text goes to stderr');

    const applied = await cli(['apply', bundle, '--root', root, '--yes', '--json']);
    assert.equal(applied.code, 0, applied.stderr);
    const a = parse(applied);
    assert.equal(a.result, 'installed');
    assert.equal(a.ok, true);
    assert.ok(
      a.steps.some((s: { step: string; status: string }) => /systemd-sysusers/.test(s.step) && s.status === 'done'),
    );
    assert.equal(a.start.looked, 'tree');
    assert.equal(a.start.acted, false);
    assert.equal(a.start.next, `systemctl --root=${realpathSync(root)} enable qemu-server.service`);
    assert.match(applied.stderr, /^ {2}systemctl --root=\S+ enable qemu-server\.service$/m, 'the hint, on stderr');

    // A changed bundle: the diff is the exact text, the replaced file backed up; then rollback, as JSON too.
    const tmp = tempDir(t);
    const changed = join(tmp, 'b');
    assert.equal(
      (await cli(['generate', '--preset', 'kvm-headless', '--set', 'guests.0.vcpus=3', '--out', changed])).code,
      0,
    );
    const second = parse(await cli(['apply', changed, '--root', root, '--yes', '--json']));
    const unit = second.plan.files.find((f: { path: string }) => f.path === '/etc/systemd/system/qemu-server.service');
    assert.equal(unit.change, 'changed');
    assert.match(unit.diff, /^-.*-smp 2.*$/m);
    assert.match(unit.diff, /^\+.*-smp 3.*$/m);
    assert.ok(existsSync(join(second.backups, 'etc/systemd/system/qemu-server.service')));
    assert.deepEqual(second.plan.guests[0], {
      name: 'server',
      state: 'changed',
      parts: ['unit'],
      units: ['qemu-server.service'],
      helpers: [],
      droppedHelpers: [],
    });
    const rb = await cli(['rollback', '--root', root, '--yes', '--json']);
    assert.equal(rb.code, 0, rb.stderr);
    const back = parse(rb);
    assert.equal(back.action, 'rollback');
    assert.equal(back.result, 'installed');
    assert.match(back.bundle.from, /\/var\/lib\/qemu-harden\/\.installed\/previous$/);
    const idle = parse(await cli(['rollback', '--root', root, '--dry-run', '--json']));
    assert.equal(idle.plan.guests[0].state, 'changed', 'a second rollback returns to the other bundle');

    // Refused before anything changed: exit 1, the document says why.
    const tampered = join(tmp, 't');
    execFileSync('cp', ['-a', bundle, tampered]);
    appendFileSync(join(tampered, 'root/etc/udev/rules.d/65-qemu-harden.rules'), 'KERNEL=="kvm", MODE="0666"\n');
    const refused = await cli(['apply', tampered, '--root', root, '--yes', '--json']);
    assert.equal(refused.code, 1);
    const f = parse(refused);
    assert.equal(f.result, 'refused');
    assert.equal(f.ok, false);
    assert.equal(f.plan, null);
    assert.match(f.problem, /65-qemu-harden\.rules: changed since the bundle was generated/);

    // Exit 2 (no terminal, no --yes): nothing on stdout, the reason on stderr.
    const noYes = await cli(['apply', changed, '--root', root, '--json']);
    assert.equal(noYes.code, 2);
    assert.equal(noYes.stdout, '');
    assert.match(noYes.stderr, /pass --yes/);
  });

  test('refuses / when not root', (t) => {
    requireTool('setpriv', 'util-linux');
    const tmp = tempDir(t);
    chmodSync(tmp, 0o755);
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        BIN,
        'apply',
        join(bundles, 'kvm-headless'),
        '--yes',
      ],
      {
        encoding: 'utf8',
        cwd: tmp,
      },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /must run as root/);
    assert.ok(!existsSync('/etc/systemd/system/qemu-server.service'));
  });
});

test('the passwd reader takes the users of a root and skips lines that are not users', (t) => {
  const root = tempDir(t);
  mkdirSync(join(root, 'etc'));
  writeFileSync(
    join(root, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/bash\n\n# a comment\nbroken:x:abc:0::/:/bin/false\nshort:x:5\nqemu-a:x:990:991::/var/lib/qemu-harden/a:/usr/sbin/nologin\n',
  );
  const users = readPasswd(root);
  assert.deepEqual(users, [
    { name: 'root', uid: 0, gid: 0 },
    { name: 'qemu-a', uid: 990, gid: 991 },
  ]);
  assert.equal(uidOf(users, 'qemu-a'), 990);
  assert.equal(uidOf(users, 'nobody'), undefined);
  assert.equal(userOf(users, 0), 'root');
  assert.deepEqual(readPasswd(join(root, 'missing')), [], 'a root without /etc/passwd has no users');
});
