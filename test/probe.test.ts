import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { implications } from '../src/implications.js';
import { hostFactsSchema, probeHost, suggestFormat } from '../src/probe.js';
import { REPO, requireTool } from './helpers.js';

test('probeHost returns schema-checked facts about this machine', async () => {
  const facts = await probeHost();
  assert.deepEqual(hostFactsSchema.parse(facts), facts);
  assert.ok(facts.cpus > 0);
  assert.ok(facts.memoryMiB > 0);
});

test('a QEMU binary that is not there is reported as absent, and nothing waits on it: no program is run for it', async () => {
  const facts = await probeHost('/nonexistent/qemu-system-x86_64');
  assert.equal(facts.qemu.binary, null);
  assert.equal(facts.qemu.sandbox, false);
  assert.ok(implications(facts).some((l) => l.startsWith('QEMU is not installed here')));

  // The same probe in a process of its own, every program it starts seen by strace.
  const dir = mkdtempSync(join(tmpdir(), 'probe-'));
  try {
    const log = join(dir, 'execve.trace');
    const script = `import(${JSON.stringify(join(REPO, 'src/probe.ts'))}).then((m) => m.probeHost('/nonexistent/qemu-system-x86_64')).then((f) => console.log(f.qemu.binary))`;
    const r = spawnSync(
      requireTool('strace', 'strace'),
      ['-f', '-qq', '-e', 'trace=execve', '-o', log, process.execPath, '--import', 'tsx', '-e', script],
      { cwd: REPO, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'null');
    const started = readFileSync(log, 'utf8')
      .split('\n')
      .map((l) => /execve\("([^"]+)"/.exec(l)?.[1])
      .filter((p) => p !== undefined)
      .slice(1);
    assert.ok(
      started.every((p) => !p.includes('qemu')),
      `programs started or tried: ${started.join(' ')}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without /dev/kvm the implications say only emulation runs', async () => {
  const facts = await probeHost();
  const lines = implications({ ...facts, kvm: { present: false, owner: '', group: '', mode: '' } });
  assert.match(lines[0]!, /only emulation \(TCG\)/);
});

test('suggestFormat gives nothing for a file qemu-img cannot read, and what qemu-img reads for one it can', async () => {
  requireTool('qemu-img', 'qemu-utils');
  const dir = mkdtempSync(join(tmpdir(), 'probe-'));
  try {
    assert.equal(await suggestFormat(join(dir, 'missing.img')), undefined);
    writeFileSync(join(dir, 'raw.img'), Buffer.alloc(4096));
    assert.equal(await suggestFormat(join(dir, 'raw.img')), 'raw');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
