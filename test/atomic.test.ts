import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkManifest, walk } from '../src/bundle.js';
import { BIN, cli, requireTool, tempDir } from './helpers.js';
import { aimAt, killAt, traceCalls, type Call } from './killpoints.js';

function answers(guests: number, memoryMiB: number) {
  return {
    schemaVersion: 1,
    useCase: 'virtualization',
    guests: Array.from({ length: guests }, (_, i) => ({
      name: `g${i}`,
      memoryMiB,
      disks: [{ path: `/srv/vm/g${i}.qcow2`, format: 'qcow2' }],
      network: { mode: 'tap' },
    })),
  };
}

/** The system calls by which generate creates, writes, flushes, publishes the bundle and removes the one it replaced. */
const STEPS = ['mkdir', 'openat', 'write', 'fsync', 'rename', 'renameat', 'renameat2', 'unlink', 'unlinkat', 'rmdir'];

test('SIGKILL at every step of generate, from the first directory made to the removal of the old bundle, leaves no OUT or a complete bundle', async (t) => {
  const tmp = tempDir(t);
  const oldAnswers = join(tmp, 'old.json');
  const newAnswers = join(tmp, 'new.json');
  writeFileSync(oldAnswers, JSON.stringify(answers(2, 512)));
  writeFileSync(newAnswers, JSON.stringify(answers(2, 1024)));
  const out = join(tmp, 'out');
  const replace = [process.execPath, BIN, 'generate', '--answers', newAnswers, '--out', out, '--force'];
  const pristine = join(tmp, 'pristine');
  assert.equal((await cli(['generate', '--answers', oldAnswers, '--out', pristine])).code, 0);
  const oldReadme = readFileSync(join(pristine, 'README.md'), 'utf8');
  // Each run starts from the same tree: OUT holding the old bundle and nothing left by an earlier run, so that
  // every call is counted alike in every run.
  const restoreOld = () => {
    for (const f of readdirSync(tmp))
      if (f === 'out' || f.startsWith('.out.')) rmSync(join(tmp, f), { recursive: true });
    cpSync(pristine, out, { recursive: true });
  };

  restoreOld();
  const full = traceCalls(replace, STEPS, { log: join(tmp, 'full.trace') });
  assert.equal(full.status, 0, `an untouched run completes: ${full.stderr}`);
  const newReadme = readFileSync(join(out, 'README.md'), 'utf8');
  assert.notEqual(newReadme, oldReadme);

  // The steps are the calls on OUT's directory and what is in it (the new bundle, OUT, the old bundle); Node's own
  // calls (its modules, the wake-up pipes and eventfds) are not. Every step from the first directory of the new
  // bundle to the rename that publishes it is a kill point; after it, the parent directory's flush and the removal
  // of the old bundle are all alike, and the first call of each system call there and the very last one stand for
  // them.
  const mine = (c: Call) =>
    c.paths.some((p) => p === tmp || p.startsWith(`${tmp}/.out.`) || p === out || p.startsWith(`${out}/`));
  const tmpDir = `${tmp}/.out.qemu-harden-new`;
  const first = full.calls.findIndex((c) => c.syscall === 'mkdir' && c.paths[0] === tmpDir);
  const publish = full.calls.findIndex(
    (c) => c.syscall.startsWith('rename') && c.paths.join(' ') === `${tmpDir} ${out}`,
  );
  assert.ok(
    first >= 0 && publish > first,
    `the trace shows the bundle made and renamed into place:\n${full.calls.map((c) => c.line).join('\n')}`,
  );
  const steps = full.calls.map((c, i) => ({ c, i })).filter(({ c, i }) => i >= first && mine(c));
  const afterPublish = steps.filter(({ i }) => i > publish);
  const points = [
    ...steps.filter(({ i }) => i <= publish),
    ...afterPublish.filter(
      ({ c }, k) => k === afterPublish.length - 1 || afterPublish.findIndex((s) => s.c.syscall === c.syscall) === k,
    ),
  ];
  const count = (syscall: string, from: number, to: number) =>
    points.filter(({ c, i }) => c.syscall === syscall && i >= from && i < to).length;
  assert.equal(count('write', first, publish), walk(out).length, 'every file written is a kill point');
  assert.ok(
    ['fsync', 'unlink', 'rmdir'].every((s) => count(s, publish, full.calls.length) > 0),
    'so are the flush of the parent directory and the removal of the old bundle',
  );

  const outcomes = new Map<string, number>();
  for (const [k, { c, i }] of points.entries()) {
    restoreOld();
    killAt(replace, aimAt(full.calls, i), c, { log: join(tmp, `kill-${k}.trace`) });
    let state: string;
    if (!existsSync(out)) state = 'absent';
    else {
      assert.deepEqual(checkManifest(out), [], `no partial bundle after a kill at ${c.line}`);
      const readme = readFileSync(join(out, 'README.md'), 'utf8');
      state = readme === oldReadme ? 'old' : readme === newReadme ? 'new' : 'other';
    }
    assert.ok(
      i <= publish ? state === 'old' || state === 'absent' : state === 'new',
      `after a kill at ${c.line}: ${state}`,
    );
    outcomes.set(state, (outcomes.get(state) ?? 0) + 1);
  }
  assert.ok(
    outcomes.has('old') && outcomes.has('new'),
    `kills landed before and after the rename: ${JSON.stringify([...outcomes])}`,
  );

  assert.equal((await cli(replace.slice(2))).code, 0, 'the next run completes');
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.includes('.qemu-harden-')),
    [],
    'and leaves no temporary directory behind',
  );
  t.diagnostic(`${points.length} kill points: ${[...outcomes].map(([k, v]) => `${v} ${k}`).join(', ')}`);
});

/** The system calls that put data on disk, and the rename that publishes the bundle, in the order they ran. */
function durabilityTrace(t: Parameters<typeof tempDir>[0], path: string): string[] {
  const strace = requireTool('strace', 'strace');
  const tmp = tempDir(t);
  const answersFile = join(tmp, 'a.json');
  writeFileSync(answersFile, JSON.stringify(answers(3, 512)));
  const log = join(tmp, 'trace');
  const r = spawnSync(
    strace,
    [
      '-f',
      '-qq',
      '-o',
      log,
      '-e',
      'trace=fsync,syncfs,rename,renameat,renameat2',
      process.execPath,
      BIN,
      'generate',
      '--answers',
      answersFile,
      '--out',
      join(tmp, 'out'),
    ],
    {
      encoding: 'utf8',
      env: { ...process.env, PATH: path },
    },
  );
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => /\b(fsync|syncfs|rename\w*)\(/.test(l) && !l.includes('= -1'));
}

test('the new bundle is on disk before it is renamed into place: one syncfs through sync -f', (t) => {
  const calls = durabilityTrace(t, process.env.PATH ?? '/usr/bin:/bin');
  const sync = calls.findIndex((l) => l.includes('syncfs('));
  const publish = calls.findIndex((l) => /rename\w*\(.*qemu-harden-new"/.test(l));
  assert.ok(sync >= 0 && publish > sync, `syncfs, then the rename:\n${calls.join('\n')}`);
  assert.ok(calls.filter((l) => l.includes('fsync(')).length <= 2, 'no fsync per file when syncfs did it');
});

test('without sync(1) on PATH, every file is fsynced before the rename', (t) => {
  const empty = tempDir(t);
  mkdirSync(join(empty, 'bin'));
  const calls = durabilityTrace(t, join(empty, 'bin'));
  const publish = calls.findIndex((l) => /rename\w*\(.*qemu-harden-new"/.test(l));
  const before = calls.slice(0, publish).filter((l) => l.includes('fsync(')).length;
  assert.ok(publish > 0 && !calls.some((l) => l.includes('syncfs(')));
  assert.ok(before >= 20, `each of the bundle's files and directories fsynced first (${before} calls)`);
});
