// test/cache.ts: a directory is built once per key and renamed into place whole; a second builder of a key waits
// for the first, and builders that raced both end with the same complete directory.
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

test('a second builder of a key another is building waits for that build and builds nothing; the next call builds nothing', async (t) => {
  const root = tempDir(t, 'qh-cache-');
  let builds = 0;
  let finish!: () => void;
  const gate = new Promise<void>((r) => (finish = r));
  const build = async (dir: string) => {
    builds++;
    writeFileSync(join(dir, 'made-by'), String(builds));
    await gate;
  };
  const inputs = { suite: 'test', packages: ['a', 'b'] };
  const first = cachedDir({ kind: 'k', inputs, what: 'a test directory', root, build });
  const second = cachedDir({ kind: 'k', inputs, what: 'a test directory', root, build });
  // The second is waiting, not building, while the first build is held.
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(builds, 1);
  finish();
  const [one, two] = await Promise.all([first, second]);
  assert.equal(builds, 1);
  assert.equal(one, two);
  assert.equal(one, join(root, 'k', cacheKey(inputs)));
  assert.equal(readFileSync(join(one, 'made-by'), 'utf8'), '1');
  assert.deepEqual(
    readdirSync(join(root, 'k')).sort(),
    [cacheKey(inputs), `${cacheKey(inputs)}.inputs.json`],
    'no half-built directory is left',
  );
  assert.deepEqual(JSON.parse(readFileSync(`${one}.inputs.json`, 'utf8')), inputs);

  const again = await cachedDir({ kind: 'k', inputs, what: 'a test directory', root, build });
  assert.equal(again, one);
  assert.equal(builds, 1, 'a cached key is not built again');
});

test('a builder that finds the key built by another when its own build ends keeps that one and removes its copy', async (t) => {
  const root = tempDir(t, 'qh-cache-');
  const inputs = { suite: 'test', raced: true };
  const done = join(root, 'k', cacheKey(inputs));
  const got = await cachedDir({
    kind: 'k',
    inputs,
    what: 'a test directory',
    root,
    build: (dir) => {
      writeFileSync(join(dir, 'made-by'), 'this one');
      // Another builder, which began at the same moment and did not see this one, renamed its copy first.
      mkdirSync(done);
      writeFileSync(join(done, 'made-by'), 'the other');
    },
  });
  assert.equal(got, done);
  assert.equal(readFileSync(join(done, 'made-by'), 'utf8'), 'the other');
  assert.deepEqual(readdirSync(join(root, 'k')).sort(), [cacheKey(inputs), `${cacheKey(inputs)}.inputs.json`]);
});

test('a builder waiting for one that fails, or whose process is killed, builds the key itself', async (t) => {
  const root = tempDir(t, 'qh-cache-');
  let attempts = 0;
  const failing = cachedDir({
    kind: 'k',
    inputs: { w: 1 },
    what: 'a test directory',
    root,
    build: async () => {
      attempts++;
      await new Promise((r) => setTimeout(r, 1500));
      throw new Error('the first build broke');
    },
  });
  const waiting = cachedDir({
    kind: 'k',
    inputs: { w: 1 },
    what: 'a test directory',
    root,
    build: (dir) => {
      attempts++;
      writeFileSync(join(dir, 'made-by'), 'the waiter');
    },
  });
  await assert.rejects(failing, /the first build broke/);
  assert.equal(readFileSync(join(await waiting, 'made-by'), 'utf8'), 'the waiter');
  assert.equal(attempts, 2);

  // Another process holds the key's lock: this one waits while it runs and builds once it is killed.
  const key = cacheKey({ w: 2 });
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  writeFileSync(join(root, 'k', `${key}.lock`), String(sleeper.pid));
  let built = false;
  const pending = cachedDir({
    kind: 'k',
    inputs: { w: 2 },
    what: 'a test directory',
    root,
    build: () => void (built = true),
  });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(built, false, 'it waits while the other builder runs');
  sleeper.kill('SIGKILL');
  await new Promise((r) => sleeper.once('exit', r));
  await pending;
  assert.equal(built, true);
  assert.deepEqual(
    readdirSync(join(root, 'k')).filter((e) => e.includes('.lock')),
    [],
    'no lock is left, the dead one included',
  );
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
