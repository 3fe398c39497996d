// The host's own storage is never a guest's disk, proven with real block devices the test makes: loop devices over
// image files, with ext4 and btrfs (which mountinfo reports by an anonymous device number, not the loop's) mounted
// from them in a private mount namespace of the test's own, so the host's own mount table never changes and the
// mounts end with the namespace. generate, import and verify run inside that namespace, where the file systems are
// the host's; apply refuses on a target tree whose device node is that loop, and on a target whose disk path is a
// character device. Partitions, swap and LVM need a kernel this machine may not have: test/vm/host-storage.ts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, cli, guestFilesDir, requireTool, tempDir, type CliResult } from './helpers.js';

/** Run qemu-harden in a private mount namespace where each [device, directory] pair is mounted first. */
function withMounted(mounts: [device: string, dir: string][], args: string[]): CliResult {
  const script = 'while [ "$1" != -- ]; do mount "$1" "$2" || exit 99; shift 2; done; shift; exec "$@"';
  const r = spawnSync(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
      'sh',
      ...mounts.flat(),
      '--',
      process.execPath,
      BIN,
      ...args,
    ],
    { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  assert.notEqual(r.status, 99, `mount failed: ${r.stderr}`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A digest of a tree: paths, types, modes, owners, contents and link targets. */
function treeHash(dir: string): string {
  const h = createHash('sha256');
  const visit = (rel: string) => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    h.update(`${rel}\0${st.mode}\0${st.uid}\0${st.gid}\0${st.rdev}\0`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isDirectory()) for (const e of readdirSync(p).sort()) visit(rel ? `${rel}/${e}` : e);
    else if (st.isFile()) h.update(readFileSync(p));
  };
  visit('');
  return h.digest('hex');
}

const answers = (disks: Record<string, unknown>[]) => ({
  schemaVersion: 1,
  useCase: 'virtualization',
  guests: [{ name: 'g', memoryMiB: 64, disks }],
});

describe('the host’s own storage is never a guest’s disk (loop devices, mounted in a private namespace)', () => {
  const dir = guestFilesDir({ after }, 'qh-host-storage-');
  const loops: string[] = [];
  let ext4 = '';
  let btrfs = '';
  let free = '';
  const mnt = { ext4: join(dir, 'mnt-ext4'), btrfs: join(dir, 'mnt-btrfs') };

  const attach = (name: string, size: string): string => {
    const img = join(dir, name);
    execFileSync('truncate', ['-s', size, img]);
    const dev = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
    loops.push(dev);
    return dev;
  };

  before(() => {
    for (const [tool, pkg] of [
      ['losetup', 'mount'],
      ['unshare', 'util-linux'],
      ['mkfs.ext4', 'e2fsprogs'],
      ['mkfs.btrfs', 'btrfs-progs'],
      ['systemd-sysusers', 'systemd'],
    ])
      requireTool(tool!, pkg!);
    ext4 = attach('ext4.img', '16M');
    btrfs = attach('btrfs.img', '128M');
    free = attach('free.img', '8M');
    execFileSync('mkfs.ext4', ['-q', ext4]);
    execFileSync('mkfs.btrfs', ['-q', btrfs], { stdio: 'ignore' });
    mkdirSync(mnt.ext4);
    mkdirSync(mnt.btrfs);
  });
  after(() => {
    for (const dev of loops) spawnSync('losetup', ['--detach', dev]);
  });

  const write = (name: string, doc: unknown) => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(doc));
    return file;
  };

  test('generate refuses a block device whose file system is mounted, naming where (ext4, and btrfs by its source); the same device unmounted is accepted', async () => {
    const writable = write('ext4.json', answers([{ path: ext4, format: 'raw', blockDevice: true }]));
    const out = join(dir, 'out-ext4');
    const r = withMounted([[ext4, mnt.ext4]], ['generate', '--answers', writable, '--out', out]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `guests\\.0\\.disks\\.0\\.path: ${ext4} holds the host's own storage, which no guest may write or read: it is mounted on ${mnt.ext4} \\(ext4\\)`,
      ),
    );
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(!existsSync(out), 'nothing written');

    const readOnly = write('btrfs.json', answers([{ path: btrfs, format: 'raw', blockDevice: true, readOnly: true }]));
    const b = withMounted([[btrfs, mnt.btrfs]], ['generate', '--answers', readOnly, '--out', join(dir, 'out-btrfs')]);
    assert.equal(b.code, 2, b.stdout + b.stderr);
    assert.match(b.stderr, new RegExp(`${btrfs} holds the host's own storage.*mounted on ${mnt.btrfs} \\(btrfs\\)`));

    const ok = await cli(['generate', '--answers', writable, '--out', out]);
    assert.equal(ok.code, 0, `unmounted, the same device is a disk like any other: ${ok.stderr}`);
    const other = withMounted(
      [[ext4, mnt.ext4]],
      [
        'generate',
        '--answers',
        write('free.json', answers([{ path: free, format: 'raw', blockDevice: true }])),
        '--out',
        join(dir, 'out-free'),
      ],
    );
    assert.equal(other.code, 0, `a device holding nothing of the host's is accepted: ${other.stderr}`);
  });

  test('import refuses it, naming the element or key it came from', async () => {
    const xml = join(dir, 'domain.xml');
    writeFileSync(
      xml,
      `<domain type='kvm'><name>held</name><memory unit='MiB'>64</memory><devices><disk type='block' device='disk'><driver type='raw'/><source dev='${ext4}'/><target dev='vda'/></disk></devices></domain>`,
    );
    const l = withMounted([[ext4, mnt.ext4]], ['import', 'libvirt', xml, '--out', join(dir, 'imported.json')]);
    assert.equal(l.code, 2, l.stdout + l.stderr);
    assert.match(
      l.stdout,
      new RegExp(
        `devices/disk\\[1\\]/source: ${ext4} holds this host's own storage.*it is mounted on ${mnt.ext4} \\(ext4\\)`,
      ),
    );
    assert.ok(!existsSync(join(dir, 'imported.json')));
    const conf = join(dir, '100.conf');
    writeFileSync(conf, `name: held\nmemory: 64\nscsi0: ${btrfs},format=raw\n`);
    const p = withMounted([[btrfs, mnt.btrfs]], ['import', 'proxmox', conf]);
    assert.equal(p.code, 2, p.stdout + p.stderr);
    assert.match(p.stdout, new RegExp(`scsi0: ${btrfs} holds this host's own storage.*\\(btrfs\\)`));
    const unmounted = await cli(['import', 'libvirt', xml]);
    assert.equal(unmounted.code, 0, unmounted.stdout);
  });

  test('verify reports it as a finding of "disks on this host"', async () => {
    const bundle = join(dir, 'out-ext4');
    assert.ok(existsSync(bundle), 'the bundle generate wrote while the device was unmounted');
    const r = withMounted([[ext4, mnt.ext4]], ['verify', bundle, '--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const report = JSON.parse(r.stdout) as {
      checks: { check: string; status: string }[];
      findings: { check: string; message: string }[];
    };
    assert.deepEqual(
      report.checks.find((c) => c.check === 'disks on this host'),
      { check: 'disks on this host', status: 'failed', detail: '1 disk path present here' },
    );
    assert.deepEqual(
      report.findings.map((f) => f.check),
      ['disks on this host'],
    );
    assert.match(report.findings[0]!.message, new RegExp(`mounted on ${mnt.ext4} \\(ext4\\)`));
    const clean = await cli(['verify', bundle, '--json']);
    assert.equal(clean.code, 0, clean.stdout);
  });

  test('apply on the target refuses it before anything is installed, dry run or not: the node is judged there', async (t) => {
    // The target is a tree whose /dev/vdq is the test's loop device, reached through a udev-style absolute link.
    const bundleDir = join(dir, 'bundle-by-id');
    const gen = await cli([
      'generate',
      '--answers',
      write('by-id.json', answers([{ path: '/dev/disk/by-id/qh-guest-disk', format: 'raw', blockDevice: true }])),
      '--out',
      bundleDir,
    ]);
    assert.equal(gen.code, 0, `made where the path does not exist: ${gen.stderr}`);
    const root = tempDir(t, 'qh-host-storage-root-');
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    mkdirSync(join(root, 'dev/disk/by-id'), { recursive: true });
    const [major, minor] = execFileSync('stat', ['-c', '%Hr %Lr', ext4], { encoding: 'utf8' }).trim().split(' ');
    execFileSync('mknod', ['-m', '0600', join(root, 'dev/vdq'), 'b', major!, minor!]);
    symlinkSync('/dev/vdq', join(root, 'dev/disk/by-id/qh-guest-disk'));
    const before = treeHash(root);
    for (const flags of [['--dry-run'], ['--yes']]) {
      const r = withMounted([[ext4, mnt.ext4]], ['apply', bundleDir, '--root', root, ...flags]);
      assert.equal(r.code, 1, `${flags}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /apply refused: .*; nothing was changed/);
      assert.match(
        r.stderr,
        new RegExp(
          `guests\\.0\\.disks\\.0\\.path: /dev/disk/by-id/qh-guest-disk holds the host's own storage.*mounted on ${mnt.ext4} \\(ext4\\)`,
        ),
      );
      assert.equal(treeHash(root), before, `${flags}: the target is exactly as it was`);
    }
    const ok = await cli(['apply', bundleDir, '--root', root, '--yes']);
    assert.equal(ok.code, 0, `unmounted, the same target takes the bundle: ${ok.stdout}${ok.stderr}`);
    assert.ok(existsSync(join(root, 'etc/systemd/system/qemu-g.service')));
  });

  test('apply on the target refuses a disk path that is a character device there, whatever the generating machine had', async (t) => {
    const bundleDir = join(dir, 'bundle-image');
    const gen = await cli([
      'generate',
      '--answers',
      write('image.json', answers([{ path: '/srv/qh-vm/disk.img', format: 'raw' }])),
      '--out',
      bundleDir,
    ]);
    assert.equal(gen.code, 0, gen.stderr);
    const root = tempDir(t, 'qh-host-storage-chr-');
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    mkdirSync(join(root, 'srv/qh-vm'), { recursive: true });
    execFileSync('mknod', ['-m', '0600', join(root, 'srv/qh-vm/disk.img'), 'c', '1', '3']);
    const before = treeHash(root);
    const r = await cli(['apply', bundleDir, '--root', root, '--yes']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`guests\\.0\\.disks\\.0\\.path: /srv/qh-vm/disk\\.img is a character device in ${root}, not a disk`),
    );
    assert.equal(treeHash(root), before);
  });
});
