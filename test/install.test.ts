// The install wing against a hostile tree, a forged bundle, a damaged record, an I/O error and a bundle changed
// under the prompt (issue #20 items 1, 7, 9, 10), each with the real binary on a throwaway --root. The "host" a
// symlink points at is a directory this test made outside the tree; each proof checks it is left exactly as it was.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, cli, REPO, requireTool, tempDir } from './helpers.js';

const RECORD = 'var/lib/qemu-harden/.installed';
const UNIT = 'etc/systemd/system/qemu-server.service';

/** A digest of a whole tree: paths, types, modes, owners, contents and link targets. */
function treeHash(dir: string): string {
  const h = createHash('sha256');
  const visit = (rel: string) => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    h.update(`${rel}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isDirectory()) for (const e of readdirSync(p).sort()) visit(rel ? `${rel}/${e}` : e);
    else if (st.isFile()) h.update(readFileSync(p));
  };
  visit('');
  return h.digest('hex');
}

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** A bundle's MANIFEST.sha256 written again for its files as they are now: what a forger does. */
function recomputeManifest(bundle: string): void {
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(bundle, rel)).sort()) {
      const r = rel ? `${rel}/${e}` : e;
      if (lstatSync(join(bundle, r)).isDirectory()) walk(r);
      else if (r !== 'MANIFEST.sha256') files.push(r);
    }
  };
  walk('');
  writeFileSync(
    join(bundle, 'MANIFEST.sha256'),
    files
      .sort()
      .map((f) => `${sha(readFileSync(join(bundle, f)))}  ${f}\n`)
      .join(''),
  );
}

/** The tree holds the bundle's root/ files, and the record's current is the bundle, byte for byte. */
function assertInstalled(root: string, bundle: string): void {
  for (const line of readFileSync(join(bundle, 'MANIFEST.sha256'), 'utf8').trim().split('\n')) {
    const [hash, rel] = line.split('  ') as [string, string];
    assert.equal(sha(readFileSync(join(root, RECORD, 'current', rel))), hash, `record: ${rel}`);
    if (rel.startsWith('root/')) assert.equal(sha(readFileSync(join(root, rel.slice(5)))), hash, rel);
  }
  assert.deepEqual(
    readFileSync(join(root, RECORD, 'current/MANIFEST.sha256')),
    readFileSync(join(bundle, 'MANIFEST.sha256')),
  );
  assert.ok(!existsSync(join(root, RECORD, 'journal.json')), 'no journal left');
}

/** What an expected condition never prints. */
function assertNoInternalError(r: { stderr: string }): void {
  assert.doesNotMatch(r.stderr, /internal error|this is a bug/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/**
 * apply or rollback on a terminal (script(1) gives it a pty): `meanwhile` runs once the question is on the screen,
 * then the answer is typed. Resolves with the exit status and everything the terminal showed.
 */
function onTerminal(
  args: string[],
  meanwhile: () => void | Promise<void>,
  answer = 'y',
): Promise<{ status: number | null; out: string }> {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let asked = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!asked && /\? \[y\/N\]/.test(out)) {
        asked = true;
        Promise.resolve()
          .then(meanwhile)
          .then(
            () => child.stdin.write(`${answer}\n`),
            (e: unknown) => {
              child.kill('SIGKILL');
              reject(e as Error);
            },
          );
      }
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

const bundles = tempDir({ after }, 'qh-install-bundles-');
const server = join(bundles, 'kvm-headless');
const tenants = join(bundles, 'multi-tenant');
before(async () => {
  requireTool('systemd-sysusers', 'systemd');
  requireTool('systemd-tmpfiles', 'systemd');
  chmodSync(bundles, 0o755);
  for (const [preset, out] of [
    ['kvm-headless', server],
    ['multi-tenant', tenants],
  ] as const)
    assert.equal((await cli(['generate', '--preset', preset, '--out', out])).code, 0);
});

type T = { after(fn: () => void): void };

function newRoot(t: T): string {
  const root = tempDir(t, 'qh-install-root-');
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  return root;
}

/** A directory outside the tree standing for the host, with a file in it; its hash, to compare after. */
function host(t: T): { dir: string; file: string; hash: () => string } {
  const dir = tempDir(t, 'qh-install-host-');
  const file = join(dir, 'precious');
  writeFileSync(file, 'the host’s own file\n', { mode: 0o600 });
  chmodSync(dir, 0o755);
  return { dir, file, hash: () => treeHash(dir) };
}

/** A root with `bundle` installed and its unit edited by hand, so that the next apply replaces (and backs up) it. */
async function installedAndEdited(t: T): Promise<string> {
  const root = newRoot(t);
  const r = await cli(['apply', server, '--root', root, '--yes']);
  assert.equal(r.code, 0, r.stderr);
  writeFileSync(join(root, UNIT), readFileSync(join(root, UNIT), 'utf8') + '# edited by hand\n');
  return root;
}

describe('apply, rollback and status never follow a symlink out of --root (#20 item 1)', () => {
  test('the install record (.installed) as a symlink to a host directory: refused, the host directory untouched', async (t) => {
    const root = newRoot(t);
    const h = host(t);
    mkdirSync(join(root, 'var/lib/qemu-harden'), { recursive: true });
    symlinkSync(h.dir, join(root, RECORD));
    const [before, hostBefore] = [treeHash(root), h.hash()];
    const r = await cli(['apply', server, '--root', root, '--yes']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /\.installed.*leads through .*\.installed, a symlink to .*the target leaves .* through a symlink; nothing was changed/,
    );
    assertNoInternalError(r);
    assert.equal(h.hash(), hostBefore, 'the host directory is as it was (mode, files)');
    assert.equal(treeHash(root), before);
  });

  test('a parent of the record (var/lib/qemu-harden) as a symlink to a host directory: refused, the host untouched', async (t) => {
    const root = newRoot(t);
    const h = host(t);
    mkdirSync(join(root, 'var/lib'), { recursive: true });
    symlinkSync(h.dir, join(root, 'var/lib/qemu-harden'));
    const hostBefore = h.hash();
    const r = await cli(['apply', server, '--root', root, '--yes']);
    assert.equal(h.hash(), hostBefore);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /through a symlink; nothing was changed/);
  });

  test('temporaries beside a target and beside the journal planted as symlinks to host files: never written through', async (t) => {
    const root = newRoot(t);
    const h = host(t);
    const plants = [
      `${UNIT}.qemu-harden-new`,
      `${RECORD}/journal.json.new`,
      'etc/systemd/system/.qemu-server.service.qemu-harden-new-000000000000',
      'etc/systemd/system/.qemu-server.service.qemu-harden-new',
    ];
    for (const p of plants) {
      mkdirSync(join(root, p, '..'), { recursive: true });
      symlinkSync(h.file, join(root, p));
    }
    const hostBefore = h.hash();
    const r = await cli(['apply', server, '--root', root, '--yes']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(h.hash(), hostBefore, 'the host file keeps its content, mode and owner');
    assertInstalled(root, server);
  });

  test('the backup directory as a symlink to a host directory: refused before anything changes', async (t) => {
    const root = await installedAndEdited(t);
    const h = host(t);
    mkdirSync(join(root, 'var/backups'), { recursive: true });
    symlinkSync(h.dir, join(root, 'var/backups/qemu-harden'));
    const [before, hostBefore] = [treeHash(root), h.hash()];
    const r = await cli(['apply', server, '--root', root, '--yes']);
    assert.equal(h.hash(), hostBefore);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /\/var\/backups\/qemu-harden: .*through a symlink; nothing was changed/);
    assert.equal(treeHash(root), before);
  });

  test('a symlink inside the backup directory (each second of the next two minutes): the install stops at it, the host untouched', async (t) => {
    const root = await installedAndEdited(t);
    const h = host(t);
    const now = Date.now();
    for (let s = 0; s < 120; s++) {
      const stamp = new Date(now + s * 1000)
        .toISOString()
        .replace(/\.\d+Z$/, 'Z')
        .replace(/[-:]/g, '');
      mkdirSync(join(root, 'var/backups/qemu-harden', stamp), { recursive: true });
      symlinkSync(h.dir, join(root, 'var/backups/qemu-harden', stamp, 'etc'));
    }
    const hostBefore = h.hash();
    const edited = readFileSync(join(root, UNIT));
    const r = await cli(['apply', server, '--root', root, '--yes']);
    assert.equal(h.hash(), hostBefore, 'no backup was copied into the host directory');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /apply stopped midway: \/etc\/systemd\/system\/qemu-server\.service: .*through a symlink/);
    assert.match(r.stderr, /run apply again to complete it/);
    assertNoInternalError(r);
    assert.deepEqual(readFileSync(join(root, UNIT)), edited, 'a file is never replaced before its backup is made');
    rmSync(join(root, 'var/backups'), { recursive: true });
    const again = await cli(['apply', server, '--root', root, '--yes']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assertInstalled(root, server);
  });

  test('a target’s directory swapped for a symlink while apply waits for its answer: stopped at the moment of use', async (t) => {
    requireTool('script', 'util-linux');
    const root = await installedAndEdited(t);
    const h = host(t);
    // The host directory holds what the tree's did: an install that follows the symlink goes through with it.
    const units = join(h.dir, 'units');
    cpSync(join(root, 'etc/systemd/system'), units, { recursive: true });
    const hostBefore = h.hash();
    const r = await onTerminal(['apply', server, '--root', root], () => {
      renameSync(join(root, 'etc/systemd/system'), join(root, 'etc/systemd/system.real'));
      symlinkSync(units, join(root, 'etc/systemd/system'));
    });
    assert.equal(h.hash(), hostBefore, 'nothing was written into the host directory');
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /apply stopped midway: .*through a symlink/);
  });

  test('the record swapped for a symlink while apply waits for its answer: refused, the host untouched', async (t) => {
    requireTool('script', 'util-linux');
    const root = newRoot(t);
    const h = host(t);
    const hostBefore = h.hash();
    const r = await onTerminal(['apply', server, '--root', root], () => {
      mkdirSync(join(root, 'var/lib/qemu-harden'), { recursive: true });
      symlinkSync(h.dir, join(root, RECORD));
    });
    assert.equal(h.hash(), hostBefore);
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /\.installed is not a directory.*nothing was changed/);
  });

  test('rollback: the previous bundle as a symlink to a host directory is refused, never installed from', async (t) => {
    const root = newRoot(t);
    assert.equal((await cli(['apply', tenants, '--root', root, '--yes'])).code, 0);
    assert.equal((await cli(['apply', server, '--root', root, '--yes'])).code, 0);
    const h = host(t);
    cpSync(join(root, RECORD, 'previous'), join(h.dir, 'previous'), { recursive: true });
    rmSync(join(root, RECORD, 'previous'), { recursive: true });
    symlinkSync(join(h.dir, 'previous'), join(root, RECORD, 'previous'));
    const before = treeHash(root);
    const r = await cli(['rollback', '--root', root, '--yes']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /previous is not a directory.*nothing was changed/);
    assert.equal(treeHash(root), before);
  });

  test('status: a FIFO in the record is reported at once, never opened; a unit directory leading out of the tree is drift', async (t) => {
    requireTool('mkfifo', 'coreutils');
    const root = newRoot(t);
    assert.equal((await cli(['apply', server, '--root', root, '--yes'])).code, 0);
    const h = host(t);
    cpSync(join(root, 'etc/systemd/system'), join(h.dir, 'units'), { recursive: true });
    renameSync(join(root, 'etc/systemd/system'), join(root, 'etc/systemd/system.real'));
    symlinkSync(join(h.dir, 'units'), join(root, 'etc/systemd/system'));
    const drift = await cli(['status', '--root', root, '--json']);
    assert.equal(drift.code, 1, drift.stdout + drift.stderr);
    const report = JSON.parse(drift.stdout) as { guests: { drift: { path: string; problem: string }[] }[] };
    assert.deepEqual(report.guests[0]!.drift, [
      { path: '/etc/systemd/system/qemu-server.service', problem: 'not a regular file' },
    ]);

    const answers = join(root, RECORD, 'current/answers.json');
    rmSync(answers);
    execFileSync('mkfifo', [answers]);
    const r = spawnSync(process.execPath, [BIN, 'status', '--root', root], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 2, `status returned (${r.signal ?? r.status}): ${r.stderr}`);
    assert.match(
      r.stderr,
      /current, the copy of the installed bundle, fails its manifest: answers\.json: not a regular file/,
    );
  });

  test('systemd-sysusers and systemd-tmpfiles get the bundle’s configuration, not a path they would follow out of the tree', async (t) => {
    const root = newRoot(t);
    const h = host(t);
    const hostConf = join(h.dir, 'intruder.conf');
    writeFileSync(hostConf, 'u intruder - "from the host" /\n');
    // Stands for whoever wins the race between apply writing the file and the program reading it: the file is a
    // symlink to a host file by the time the real systemd-sysusers opens it.
    const bin = tempDir(t, 'qh-install-bin-');
    const real = requireTool('systemd-sysusers', 'systemd');
    writeFileSync(
      join(bin, 'systemd-sysusers'),
      `#!/bin/sh\nln -sf '${hostConf}' '${root}/etc/sysusers.d/qemu-harden.conf'\nexec '${real}' "$@"\n`,
      { mode: 0o755 },
    );
    const r = await cli(['apply', server, '--root', root, '--yes'], { env: { PATH: `${bin}:${process.env.PATH}` } });
    const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
    assert.doesNotMatch(passwd, /^intruder:/m, 'no user from the host file');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(passwd, /^qemu-server:/m, 'the bundle’s users are created');
  });
});

describe('apply installs only what qemu-harden generates from the bundle’s own answers (#20 item 7)', () => {
  const forge = (t: T, sudoers: boolean) => {
    const dir = tempDir(t, 'qh-install-forged-');
    const bundle = join(dir, 'forged');
    cpSync(server, bundle, { recursive: true });
    const unit = join(bundle, 'root', UNIT);
    const text = readFileSync(unit, 'utf8');
    assert.match(text, /^User=qemu-server$/m);
    assert.match(text, / -sandbox \S+/);
    writeFileSync(unit, text.replace(/^User=qemu-server$/m, 'User=root').replace(/ -sandbox \S+/, ''));
    if (sudoers) {
      mkdirSync(join(bundle, 'root/etc/sudoers.d'), { recursive: true });
      writeFileSync(join(bundle, 'root/etc/sudoers.d/qemu-harden'), 'ALL ALL=(ALL) NOPASSWD: ALL\n');
    }
    recomputeManifest(bundle);
    return bundle;
  };

  test('a consistent forged bundle (User=root, no -sandbox, a sudoers file, manifest recomputed) is refused, naming the files', async (t) => {
    const root = newRoot(t);
    const bundle = forge(t, true);
    const before = treeHash(root);
    const r = await cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /holds files qemu-harden never installs; nothing was changed:\n {2}root\/etc\/sudoers\.d\/qemu-harden: not a path qemu-harden installs/,
    );
    assert.match(r.stderr, /not what qemu-harden \S+ generates from its own answers\.json/);
    assert.match(
      r.stderr,
      /^ {2}root\/etc\/systemd\/system\/qemu-server\.service: differs from what answers\.json produces$/m,
    );
    assertNoInternalError(r);
    assert.equal(treeHash(root), before, 'nothing on the tree changed');
  });

  test('the forged unit alone is refused by regeneration; export ansible refuses it too, writing nothing', async (t) => {
    const root = newRoot(t);
    const bundle = forge(t, false);
    const r = await cli(['apply', bundle, '--root', root, '--yes']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      /root\/etc\/systemd\/system\/qemu-server\.service: differs from what answers\.json produces/,
    );
    assert.doesNotMatch(r.stderr, /never installs/);
    const out = join(tempDir(t), 'export');
    const e = await cli(['export', 'ansible', '--host', `h=${bundle}`, '--out', out]);
    assert.equal(e.code, 2, e.stderr);
    assert.match(e.stderr, /is refused; nothing was written: .*differs from what answers\.json produces/s);
    assert.ok(!existsSync(out));
  });

  test('every file every preset generates is on the list of installable paths, and so is a guest with every unit', async () => {
    const [{ validate }, { plan }, { listPresets, loadPreset }, { guestPart, installable }] = await Promise.all([
      import('../src/answers.js'),
      import('../src/plan.js'),
      import('../src/sources/preset.js'),
      import('../src/install/paths.js'),
    ]);
    const docs = listPresets().map((p) => loadPreset(p.name).answers);
    let files = 0;
    for (const doc of docs) {
      const a = validate(doc);
      const allowed = installable(a.guests.map((g) => g.name));
      for (const f of plan(a))
        if (f.path.startsWith('root/')) {
          files++;
          assert.ok(allowed.has(f.path.slice(4)), f.path);
        }
    }
    assert.ok(files > 20, `${files} files checked`);
    for (const unit of [
      'qemu-x.service',
      'qemu-x-tap.service',
      'qemu-x-incoming.service',
      'qemu-x-tpm.service',
      'qemu-x-tpm.socket',
    ])
      assert.ok(installable(['x']).has(`/etc/systemd/system/${unit}`));
    // A guest's helper units and their profile are the guest's own: a change to one restarts the guest.
    for (const unit of ['qemu-x-tpm.service', 'qemu-x-tpm.socket'])
      assert.equal(guestPart(`/etc/systemd/system/${unit}`, 'x'), 'unit', unit);
    for (const file of ['qemu-harden-x-tpm', 'qemu-harden.d/x-tpm'])
      assert.equal(guestPart(`/etc/apparmor.d/${file}`, 'x'), 'profile', file);
    assert.equal(guestPart('/etc/systemd/system/qemu-x-tpm.service', 'y'), undefined, 'and no other guest’s');
    assert.ok(!installable(['../x']).has('/etc/systemd/system/qemu-../x.service'), 'a name that is not a guest name');
  });
});

describe('a damaged record, an I/O error: an exit status, what was done, the way out (#20 item 9)', () => {
  test('a truncated journal.json: apply, rollback and status exit 2 naming it and the way out; nothing changes', async (t) => {
    const root = await installedAndEdited(t);
    writeFileSync(join(root, RECORD, 'journal.json'), '{"action": "apply", "fr');
    const before = treeHash(root);
    for (const args of [
      ['apply', server, '--root', root, '--yes'],
      ['rollback', '--root', root, '--yes'],
      ['status', '--root', root],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args[0]}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /the install record is damaged: .*journal\.json is not valid JSON/);
      assert.match(r.stderr, /To go on: move it aside \(mv .*journal\.json .*journal\.json\.damaged\)/);
      assertNoInternalError(r);
      assert.equal(treeHash(root), before, `${args[0]} changed nothing`);
    }
  });

  test('a truncated file in the record’s copy of the installed bundle: exit 2 naming it; moved aside, apply completes', async (t) => {
    const root = await installedAndEdited(t);
    const copy = join(root, RECORD, 'current/root', UNIT);
    truncateSync(copy, 100);
    for (const args of [
      ['apply', server, '--root', root, '--yes'],
      ['status', '--root', root],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args[0]}: ${r.stdout}${r.stderr}`);
      assert.match(
        r.stderr,
        /current, the copy of the installed bundle, fails its manifest: root\/etc\/systemd\/system\/qemu-server\.service: changed/,
      );
      assertNoInternalError(r);
    }
    renameSync(join(root, RECORD, 'current'), join(root, RECORD, 'current.damaged'));
    const r = await cli(['apply', server, '--root', root, '--yes']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assertInstalled(root, server);
  });

  test('an I/O error while a file is put in place: exit 1, what was done, and the next apply completes the install', async (t) => {
    const strace = requireTool('strace', 'strace');
    const root = newRoot(t);
    assert.equal((await cli(['apply', tenants, '--root', root, '--yes'])).code, 0);
    const traced = (inject?: number) => {
      const log = join(root, '..', `${root.split('/').pop()}.trace`);
      t.after(() => rmSync(log, { force: true }));
      const r = spawnSync(
        strace,
        [
          '-qq',
          '-o',
          log,
          '-e',
          'trace=rename',
          ...(inject ? ['-e', `inject=rename:error=EIO:when=${inject}`] : []),
          process.execPath,
          BIN,
          'apply',
          server,
          '--root',
          root,
          '--yes',
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      return {
        r,
        renames: readFileSync(log, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('rename(')),
      };
    };
    // The rename that puts the server's unit in place, counted in a dry copy of the same install.
    const copy = tempDir(t, 'qh-install-count-');
    cpSync(root, copy, { recursive: true });
    const count = spawnSync(
      strace,
      [
        '-qq',
        '-o',
        join(copy, 'trace'),
        '-e',
        'trace=rename',
        process.execPath,
        BIN,
        'apply',
        server,
        '--root',
        copy,
        '--yes',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(count.status, 0, count.stderr);
    const renames = readFileSync(join(copy, 'trace'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('rename('));
    const nth = renames.findIndex((l) => /qemu-server\.service"\) = 0$/.test(l)) + 1;
    assert.ok(nth > 0, renames.join('\n'));

    const { r } = traced(nth);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /apply stopped midway: \/etc\/systemd\/system\/qemu-server\.service: rename failed: EIO/);
    assert.match(
      r.stderr,
      /done so far: \d+ files backed up \(under .*var\/backups\/qemu-harden\/\d{8}T\d{6}Z\), \d+ installed, 0 removed/,
    );
    assert.match(r.stderr, /run apply again to complete it \(or rollback/);
    assertNoInternalError(r);
    assert.ok(existsSync(join(root, RECORD, 'journal.json')), 'the journal records the unfinished install');

    const again = await cli(['apply', server, '--root', root, '--yes']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /^Interrupted install: the last apply .* stopped midway/m);
    assertInstalled(root, server);
  });
});

test('what the operator confirmed is what is installed and recorded, however the bundle changes during the question (#20 item 10)', async (t) => {
  requireTool('script', 'util-linux');
  const root = newRoot(t);
  const dir = tempDir(t, 'qh-install-swap-');
  const bundle = join(dir, 'bundle');
  cpSync(server, bundle, { recursive: true });
  // The same files with other contents (the guest's memory): a second read would install or record these.
  const r = await onTerminal(['apply', bundle, '--root', root], async () => {
    const g = await cli([
      'generate',
      '--preset',
      'kvm-headless',
      '--set',
      'guests.0.memoryMiB=3072',
      '--out',
      bundle,
      '--force',
    ]);
    assert.equal(g.code, 0, g.stderr);
  });
  assert.match(readFileSync(join(bundle, 'root', UNIT), 'utf8'), /3072/, 'the bundle did change during the question');
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /new +\/etc\/systemd\/system\/qemu-server\.service/);
  assertInstalled(root, server);
});

test('the wizard’s answers file is written atomically: a write cut short leaves the file as it was', (t) => {
  requireTool('prlimit', 'util-linux');
  const dir = tempDir(t, 'qh-install-answers-');
  const out = join(dir, 'site');
  const file = `${out}.answers.json`;
  // An ES module wherever it is (plan.ts awaits the confinement backends' generators at the top level).
  const script = join(dir, 'write.mts');
  writeFileSync(
    script,
    [
      `import { validate } from ${JSON.stringify(join(REPO, 'src/answers.ts'))};`,
      `import { write } from ${JSON.stringify(join(REPO, 'src/ui/engine.ts'))};`,
      `const r = write('answers', ${JSON.stringify(out)}, validate(JSON.parse(process.argv[2]!)), [], false);`,
      `if (r.type !== 'written') throw new Error(r.type);`,
    ].join('\n'),
  );
  const doc = JSON.stringify({
    schemaVersion: 1,
    useCase: 'virtualization',
    guests: [{ name: 'kept', memoryMiB: 512, disks: [{ path: '/srv/vm/kept.qcow2', format: 'qcow2' }] }],
  });
  const old = 'the answers written before\n';
  const run = (limit: string[]) => {
    writeFileSync(file, old);
    return spawnSync('prlimit', [...limit, process.execPath, '--import', 'tsx', script, doc], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 60_000,
    });
  };
  const whole = run([]);
  assert.equal(whole.status, 0, whole.stderr);
  assert.match(readFileSync(file, 'utf8'), /"kept"/, 'without a limit the new answers are written');
  // RLIMIT_FSIZE cuts the write of the answers short (SIGXFSZ, or EFBIG where the signal is ignored): what a full
  // disk or a crash does in the middle of a write.
  const cut = run(['--fsize=64']);
  assert.ok(cut.status !== 0, 'the write was cut short');
  assert.equal(readFileSync(file, 'utf8'), old, 'the file is the one written before, whole');
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('qemu-harden-new')),
    [],
    'no temporary left beside it',
  );
});

test('inside the tree a symlink is followed as the tree sees it; one that leads out, or loops, is refused', async (t) => {
  const { Tree, OutsideTree } = await import('../src/install/tree.js');
  const root = newRoot(t);
  const outside = tempDir(t, 'qh-install-out-');
  mkdirSync(join(root, 'real/deep'), { recursive: true });
  writeFileSync(join(root, 'real/deep/file'), 'in the tree\n');
  symlinkSync('real', join(root, 'relative'));
  symlinkSync(join(root, 'real'), join(root, 'absolute-inside'));
  symlinkSync('../..', join(root, 'real/deep/up'));
  symlinkSync(outside, join(root, 'absolute-outside'));
  symlinkSync('loop', join(root, 'loop'));
  symlinkSync('deep/file', join(root, 'real/to-file'));
  const tree = Tree.open(root);
  t.after(() => tree.close());
  for (const p of ['relative/deep/file', 'absolute-inside/deep/file', 'real/deep/up/real/deep/file'])
    assert.equal(tree.read(p)?.content.toString(), 'in the tree\n', p);
  const refused = (p: string, leaves: boolean) =>
    assert.throws(
      () => tree.read(p),
      (e: unknown) => e instanceof OutsideTree && e.leaves === leaves,
      p,
    );
  refused('absolute-outside/x', true);
  refused('real/deep/up/../x', true);
  refused('loop/x', true);
  refused('real/to-file', false);
  assert.equal(tree.read('missing/x'), undefined);
  mkdirSync(join(outside, 'made'));
  assert.throws(() => tree.dir('absolute-outside/made/new', 0o755), OutsideTree);
  assert.deepEqual(readdirSync(join(outside, 'made')), [], 'nothing was made outside');
});
