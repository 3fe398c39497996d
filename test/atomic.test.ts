import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkManifest } from '../src/bundle.js';
import { BIN, cli, tempDir } from './helpers.js';

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
