import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** The system calls of generate's main thread that create, write, flush and publish the bundle. */
const TRACED = ['mkdir', 'openat', 'write', 'fsync', 'wait4', 'rename', 'renameat', 'renameat2'];

interface Event {
  syscall: string;
  /** The how-many-th call of this system call in the main thread, counted from the start, as strace counts. */
  nth: number;
  line: string;
}

/** The main thread's traced calls (strace without -f follows that thread alone, and counts per thread). */
function trace(strace: string, args: string[], log: string, inject?: Event) {
  const r = spawnSync(
    strace,
    [
      '-qq',
      '-y',
      '-o',
      log,
      '-e',
      `trace=${TRACED.join(',')}`,
      ...(inject ? ['-e', `inject=${inject.syscall}:signal=KILL:when=${inject.nth}`] : []),
      process.execPath,
      BIN,
      ...args,
    ],
    {
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  const counts = new Map<string, number>();
  const events: Event[] = [];
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const syscall = /^([a-z0-9_]+)\(/.exec(line)?.[1];
    if (!syscall) continue;
    const nth = (counts.get(syscall) ?? 0) + 1;
    counts.set(syscall, nth);
    events.push({ syscall, nth, line });
  }
  return { status: r.status, signal: r.signal, events };
}

test('SIGKILL at every step of generate, from the first file written to the final rename, leaves no OUT or a complete bundle', (t) => {
  const strace = requireTool('strace', 'strace');
  const tmp = tempDir(t);
  const oldAnswers = join(tmp, 'old.json');
  const newAnswers = join(tmp, 'new.json');
  writeFileSync(oldAnswers, JSON.stringify(answers(2, 512)));
  writeFileSync(newAnswers, JSON.stringify(answers(2, 1024)));
  const out = join(tmp, 'out');
  const replace = ['generate', '--answers', newAnswers, '--out', out, '--force'];
  const restoreOld = () => assert.equal(cli(['generate', '--answers', oldAnswers, '--out', out, '--force']).code, 0);

  restoreOld();
  const oldReadme = readFileSync(join(out, 'README.md'), 'utf8');
  const full = trace(strace, replace, join(tmp, 'full.trace'));
  assert.equal(full.status, 0, 'an untouched run completes');
  const newReadme = readFileSync(join(out, 'README.md'), 'utf8');
  assert.notEqual(newReadme, oldReadme);

  // From the first directory of the new bundle to the last call after the rename that publishes it. Writes to
  // wake-up descriptors (pipes and eventfds of libuv and V8, whose number depends on timing) are left out: they are
  // not bundle steps.
  const wakeUp = (line: string) => line.includes('<pipe:') || line.includes('<anon_inode:[eventfd]>');
  const first = full.events.findIndex((e) => e.syscall === 'mkdir' && e.line.includes('.qemu-harden-new-'));
  const publish = full.events.findIndex(
    (e) => e.syscall.startsWith('rename') && /qemu-harden-new-[0-9a-f]+", "[^"]*\/out"/.test(e.line),
  );
  assert.ok(
    first >= 0 && publish > first,
    `the trace shows the bundle made and renamed into place:\n${full.events.map((e) => e.line).join('\n')}`,
  );
  // Opens are left out as kill points too: how many files Node opens before generate's work varies from run to
  // run, so the N-th open is not always the same one; every open of a bundle file is followed by its write.
  const step = (e: Event) => e.syscall !== 'openat' && !(e.syscall === 'write' && wakeUp(e.line));
  const after = full.events.findIndex((e, i) => i > publish && step(e));
  assert.ok(after > publish, 'a step follows the rename (the parent directory is flushed)');
  const points = full.events.slice(first, after + 1).filter(step);
  assert.ok(points.filter((e) => e.syscall === 'write').length >= 10, 'every file write is a kill point');

  const publishAt = points.indexOf(full.events[publish]!);
  const outcomes = new Map<string, number>();
  // The main thread also writes to libuv's and V8's wake-up descriptors (pipes and eventfds), and how many of those
  // come before a given bundle write depends on timing, so the N-th write of one run can be a wake-up or another
  // file in the next. A write is therefore aimed at by the file it writes: when the kill lands elsewhere, the count
  // is corrected by how far this run's writes were ahead of or behind the traced run's, and the kill is tried
  // again (at most 5 times). The other calls are not wake-ups, and their counts do not vary.
  const identity = (e: Event) => {
    const file = e.syscall === 'write' ? /^write\(\d+<([^>]*)>/.exec(e.line)?.[1] : undefined;
    return file === undefined
      ? `${e.syscall} #${e.nth}`
      : `write ${file.replace(/qemu-harden-(new|old)-[0-9a-f]+/, 'qemu-harden-$1').replace(/:\[\d+\]$/, '')}`;
  };
  const once = (events: Event[]) => {
    const seen = new Map<string, Event[]>();
    for (const e of events) seen.set(identity(e), [...(seen.get(identity(e)) ?? []), e]);
    return new Map([...seen].filter(([, es]) => es.length === 1).map(([id, [e]]) => [id, e!]));
  };
  const fullOnce = once(full.events);
  let corrected = 0;
  for (const [i, p] of points.entries()) {
    let killed: ReturnType<typeof trace>;
    let aim = p;
    for (let attempt = 1; ; attempt++) {
      restoreOld();
      killed = trace(strace, replace, join(tmp, `kill-${i}.trace`), aim);
      const landed = killed.events.at(-1);
      if (attempt === 5 || !landed || identity(landed) === identity(p) || p.syscall !== 'write') break;
      const killedOnce = once(killed.events);
      const anchor =
        killedOnce.get(identity(p)) ??
        killed.events.findLast(
          (e) => e.syscall === 'write' && killedOnce.has(identity(e)) && fullOnce.has(identity(e)),
        );
      if (!anchor) break;
      aim = { ...p, nth: p.nth + anchor.nth - fullOnce.get(identity(anchor))!.nth };
      corrected++;
    }
    const last = killed.events.at(-1);
    assert.equal(killed.signal ?? killed.status, 'SIGKILL', `generate was killed at ${p.line}`);
    assert.ok(last, `the trace of the kill aimed at ${p.line} is not empty`);
    assert.equal(
      identity(last),
      identity(p),
      `the kill landed on the step it was aimed at: ${last.line} (aimed at ${p.line})`,
    );
    let state: string;
    if (!existsSync(out)) state = 'absent';
    else {
      assert.deepEqual(checkManifest(out), [], `no partial bundle after a kill at ${p.line}`);
      const readme = readFileSync(join(out, 'README.md'), 'utf8');
      state = readme === oldReadme ? 'old' : readme === newReadme ? 'new' : 'other';
    }
    assert.ok(
      i <= publishAt ? state === 'old' || state === 'absent' : state === 'new',
      `after a kill at ${p.line}: ${state}`,
    );
    outcomes.set(state, (outcomes.get(state) ?? 0) + 1);
  }
  assert.ok(
    outcomes.has('old') && outcomes.has('new'),
    `kills landed before and after the rename: ${JSON.stringify([...outcomes])}`,
  );

  assert.equal(cli(replace).code, 0, 'the next run completes');
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.includes('.qemu-harden-')),
    [],
    'and leaves no temporary directory behind',
  );
  t.diagnostic(
    `${points.length} kill points: ${[...outcomes].map(([k, v]) => `${v} ${k}`).join(', ')}; ${corrected} aims corrected for wake-ups`,
  );
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
