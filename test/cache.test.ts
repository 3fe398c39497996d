// test/cache.ts: a directory is built once per key, renamed into place whole, and two builders racing for one
// key both end with the same complete directory.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CACHE_ROOT, cachedDir, cacheKey } from './cache.js';
import { CACHE_NOTICE, tempDir } from './helpers.js';

test('the key is a hash of the inputs, whatever the order of their keys', () => {
  assert.equal(cacheKey({ a: 1, b: { c: [1, 2], d: 'x' } }), cacheKey({ b: { d: 'x', c: [1, 2] }, a: 1 }));
  assert.notEqual(cacheKey({ a: 1 }), cacheKey({ a: 2 }));
  assert.notEqual(cacheKey({ a: { b: 1 } }), cacheKey({ a: { b: 2 } }), 'nested values count');
  assert.match(cacheKey({}), /^[0-9a-f]{16}$/);
});

test('two builders racing for one key end with the same whole directory; the next call builds nothing', async (t) => {
  const root = tempDir(t, 'qh-cache-');
  let builds = 0;
  let release!: () => void;
  const bothStarted = new Promise<void>((r) => (release = r));
  let started = 0;
  const build = async (dir: string) => {
    builds++;
    writeFileSync(join(dir, 'made-by'), String(builds));
    if (++started === 2) release();
    // Both builds are under way before either is renamed into place.
    await bothStarted;
  };
  const inputs = { suite: 'test', packages: ['a', 'b'] };
  const [one, two] = await Promise.all([
    cachedDir({ kind: 'k', inputs, what: 'a test directory', root, build }),
    cachedDir({ kind: 'k', inputs, what: 'a test directory', root, build }),
  ]);
  assert.equal(builds, 2);
  assert.equal(one, two);
  assert.equal(one, join(root, 'k', cacheKey(inputs)));
  assert.match(readFileSync(join(one, 'made-by'), 'utf8'), /^[12]$/);
  assert.deepEqual(
    readdirSync(join(root, 'k')).sort(),
    [cacheKey(inputs), `${cacheKey(inputs)}.inputs.json`],
    'no half-built directory is left',
  );
  assert.deepEqual(JSON.parse(readFileSync(`${one}.inputs.json`, 'utf8')), inputs);

  const again = await cachedDir({ kind: 'k', inputs, what: 'a test directory', root, build });
  assert.equal(again, one);
  assert.equal(builds, 2, 'a cached key is not built again');
});

test('a build that fails leaves nothing under its key, and the error reaches the caller', async (t) => {
  const root = tempDir(t, 'qh-cache-');
  await assert.rejects(
    cachedDir({
      kind: 'k',
      inputs: { x: 1 },
      what: 'a failing build',
      root,
      build: (dir) => {
        writeFileSync(join(dir, 'half'), '');
        throw new Error('the build broke');
      },
    }),
    /the build broke/,
  );
  assert.deepEqual(readdirSync(join(root, 'k')), []);
  assert.ok(!existsSync(join(root, 'k', cacheKey({ x: 1 }))));
});

test('what a killed builder left behind is removed by the next build; a live builder’s directory is not', async (t) => {
  const root = tempDir(t, 'qh-cache-');
  const key = cacheKey({ y: 1 });
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  const dead = spawn('true', { stdio: 'ignore' });
  await new Promise((r) => dead.once('exit', r));
  const abandoned = `.building-${key}-${dead.pid}-abc123`;
  const live = `.building-${key}-${sleeper.pid}-def456`;
  for (const d of [abandoned, live]) mkdirSync(join(root, 'k', d), { recursive: true });
  await cachedDir({ kind: 'k', inputs: { y: 1 }, what: 'a test directory', root, build: () => undefined });
  const left = readdirSync(join(root, 'k'));
  assert.ok(!left.includes(abandoned), 'the dead builder’s directory is gone');
  assert.ok(left.includes(live), 'a builder that still runs keeps its directory');
});

test('a build kept for the next run is announced with the suite’s cache notice as it starts and ends; a throwaway root’s is not', async (t) => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => (lines.push(String(chunk)), true)) as typeof write;
  const kind = `.cache-test-${process.pid}`;
  t.after(() => rmSync(join(CACHE_ROOT, kind), { recursive: true, force: true }));
  try {
    await cachedDir({ kind, inputs: { z: 1 }, what: 'a kept directory', build: () => undefined });
    await cachedDir({
      kind: 'k',
      inputs: { z: 1 },
      what: 'a throwaway directory',
      root: tempDir(t, 'qh-cache-'),
      build: () => undefined,
    });
  } finally {
    process.stderr.write = write;
  }
  const kept = lines.filter((l) => l.includes('a kept directory'));
  assert.equal(kept.length, 2, lines.join(''));
  for (const l of kept) assert.ok(l.startsWith(`${CACHE_NOTICE} `), l);
  assert.match(kept[0]!, /building a kept directory into .*: once, later runs reuse it/);
  assert.match(kept[1]!, /built a kept directory in \d+ s/);
  const throwaway = lines.filter((l) => l.includes('a throwaway directory'));
  assert.equal(throwaway.length, 2, lines.join(''));
  for (const l of throwaway) assert.ok(!l.startsWith(CACHE_NOTICE), l);
});
