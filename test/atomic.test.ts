import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkManifest } from '../src/bundle.js';
import { BIN, cli, requireTool, tempDir } from './helpers.js';

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

function runAndKill(args: string[], afterMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), afterMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

test('SIGKILL at any moment of generate leaves no OUT or a complete bundle, never a partial one', async (t) => {
  const tmp = tempDir(t);
  const oldAnswers = join(tmp, 'old.json');
  const newAnswers = join(tmp, 'new.json');
  writeFileSync(oldAnswers, JSON.stringify(answers(150, 512)));
  writeFileSync(newAnswers, JSON.stringify(answers(150, 1024)));
  const out = join(tmp, 'out');

  const started = Date.now();
  assert.equal(cli(['generate', '--answers', newAnswers, '--out', join(tmp, 'timing')]).code, 0);
  const full = Date.now() - started;
  const newReadme = readFileSync(join(tmp, 'timing', 'README.md'), 'utf8');
  assert.equal(cli(['generate', '--answers', oldAnswers, '--out', out]).code, 0);
  const oldReadme = readFileSync(join(out, 'README.md'), 'utf8');

  const points = 24;
  let killed = 0;
  const seen = new Set<string>();
  for (let i = 0; i < points; i++) {
    const at = Math.round((full * 1.2 * i) / points);
    const code = await runAndKill(['generate', '--answers', newAnswers, '--out', out, '--force'], at);
    if (code === null) killed++;
    if (!existsSync(out)) {
      seen.add('absent');
      assert.equal(cli(['generate', '--answers', oldAnswers, '--out', out]).code, 0);
      continue;
    }
    assert.deepEqual(checkManifest(out), [], `partial bundle after a kill at ${at} ms`);
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    assert.ok(readme === oldReadme || readme === newReadme, 'OUT is the previous or the new bundle');
    seen.add(readme === oldReadme ? 'old' : 'new');
    if (readme === newReadme) assert.equal(cli(['generate', '--answers', oldAnswers, '--out', out, '--force']).code, 0);
  }
  assert.ok(killed >= points / 2, `only ${killed} of ${points} runs were killed before finishing; the test proved little`);
  assert.ok(seen.has('old'), 'some kills landed before the rename');
});

/** The system calls that put data on disk, and the rename that publishes the bundle, in the order they ran. */
function durabilityTrace(t: Parameters<typeof tempDir>[0], path: string): string[] {
  const strace = requireTool('strace', 'strace');
  const tmp = tempDir(t);
  const answersFile = join(tmp, 'a.json');
  writeFileSync(answersFile, JSON.stringify(answers(3, 512)));
  const log = join(tmp, 'trace');
  const r = spawnSync(strace, ['-f', '-qq', '-o', log, '-e', 'trace=fsync,syncfs,rename,renameat,renameat2', process.execPath, BIN, 'generate', '--answers', answersFile, '--out', join(tmp, 'out')], {
    encoding: 'utf8',
    env: { ...process.env, PATH: path },
  });
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(log, 'utf8').split('\n').filter((l) => /\b(fsync|syncfs|rename\w*)\(/.test(l) && !l.includes('= -1'));
}

test('the new bundle is on disk before it is renamed into place: one syncfs through sync -f', (t) => {
  const calls = durabilityTrace(t, process.env.PATH ?? '/usr/bin:/bin');
  const sync = calls.findIndex((l) => l.includes('syncfs('));
  const publish = calls.findIndex((l) => /rename\w*\(.*qemu-harden-new-/.test(l));
  assert.ok(sync >= 0 && publish > sync, `syncfs, then the rename:\n${calls.join('\n')}`);
  assert.ok(calls.filter((l) => l.includes('fsync(')).length <= 2, 'no fsync per file when syncfs did it');
});

test('without sync(1) on PATH, every file is fsynced before the rename', (t) => {
  const empty = tempDir(t);
  mkdirSync(join(empty, 'bin'));
  const calls = durabilityTrace(t, join(empty, 'bin'));
  const publish = calls.findIndex((l) => /rename\w*\(.*qemu-harden-new-/.test(l));
  const before = calls.slice(0, publish).filter((l) => l.includes('fsync(')).length;
  assert.ok(publish > 0 && !calls.some((l) => l.includes('syncfs(')));
  assert.ok(before >= 20, `each of the bundle's files and directories fsynced first (${before} calls)`);
});
