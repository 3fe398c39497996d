import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
  before(() => {
    requireTool('systemd-sysusers', 'systemd');
    chmodSync(bundles, 0o755);
    for (const preset of ['multi-tenant', 'kvm-headless']) {
      const r = cli(['generate', '--preset', preset, '--out', join(bundles, preset)]);
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

  test('--dry-run changes nothing at all', (t) => {
    const root = newRoot(t);
    const before = treeHash(root);
    const r = cli(['apply', join(bundles, 'multi-tenant'), '--root', root, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /new +\/etc\/systemd\/system\/qemu-alpha\.service/);
    assert.match(r.stdout, /Dry run: nothing was changed/);
    assert.equal(treeHash(root), before);
  });

  test('without a terminal and without --yes: exit 2, nothing changed', (t) => {
    const root = newRoot(t);
    const before = treeHash(root);
    const r = cli(['apply', join(bundles, 'multi-tenant'), '--root', root]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /pass --yes/);
    assert.equal(treeHash(root), before);
  });

  test('installs with owners and modes, creates users and directories offline, says what it skipped; twice is harmless', (t) => {
    requireTool('systemd-tmpfiles', 'systemd');
    const root = newRoot(t);
    const bundle = join(bundles, 'multi-tenant');
    const r = cli(['apply', bundle, '--root', root, '--yes']);
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
    const again = cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /Nothing to change/);
    assert.equal(treeHash(root), before);
  });

  test('a changed installed file is shown as a diff and backed up before it is replaced', (t) => {
    const root = newRoot(t);
    const bundle = join(bundles, 'kvm-headless');
    assert.equal(cli(['apply', bundle, '--root', root, '--yes']).code, 0);
    const unit = join(root, 'etc/systemd/system/qemu-server.service');
    appendFileSync(unit, 'Environment=LOCAL=1\n');
    const edited = readFileSync(unit);
    const dry = cli(['apply', bundle, '--root', root, '--dry-run']);
    assert.match(dry.stdout, /changed +\/etc\/systemd\/system\/qemu-server\.service/);
    assert.match(dry.stdout, /^-Environment=LOCAL=1$/m);
    const r = cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(r.code, 0, r.stderr);
    const m = /backed up under (\S+)\./.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.ok(m[1]!.startsWith(join(root, 'var/backups/qemu-harden/')));
    assert.ok(readFileSync(join(m[1]!, 'etc/systemd/system/qemu-server.service')).equals(edited));
    assert.ok(readFileSync(unit).equals(readFileSync(join(bundle, 'root/etc/systemd/system/qemu-server.service'))));
  });

  test('a tampered bundle is refused with exit 1 and nothing changes', (t) => {
    const root = newRoot(t);
    const tmp = tempDir(t);
    const bundle = join(tmp, 'b');
    assert.equal(cli(['generate', '--preset', 'kvm-headless', '--out', bundle]).code, 0);
    appendFileSync(join(bundle, 'root/etc/udev/rules.d/65-qemu-harden.rules'), 'KERNEL=="kvm", MODE="0666"\n');
    const before = treeHash(root);
    const r = cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not match its manifest.*nothing was changed/s);
    assert.match(r.stderr, /65-qemu-harden\.rules: changed since the bundle was generated/);
    assert.equal(treeHash(root), before);
  });

  test('a target that leaves --root through a symlink is refused', (t) => {
    const root = newRoot(t);
    const outside = tempDir(t);
    mkdirSync(join(root, 'etc/systemd'), { recursive: true });
    symlinkSync(outside, join(root, 'etc/systemd/system'));
    const before = treeHash(root);
    const r = cli(['apply', join(bundles, 'kvm-headless'), '--root', root, '--yes']);
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
