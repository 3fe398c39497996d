import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { implications } from '../src/implications.js';
import { hostFactsSchema, probeHost, suggestFormat } from '../src/probe.js';

test('probeHost returns schema-checked facts about this machine', async () => {
  const facts = await probeHost();
  assert.deepEqual(hostFactsSchema.parse(facts), facts);
  assert.ok(facts.cpus > 0);
  assert.ok(facts.memoryMiB > 0);
});

test('a QEMU binary that is not there is reported as absent, quickly', async () => {
  const started = Date.now();
  const facts = await probeHost('/nonexistent/qemu-system-x86_64');
  assert.equal(facts.qemu.binary, null);
  assert.equal(facts.qemu.sandbox, false);
  assert.ok(Date.now() - started < 6000);
  assert.ok(implications(facts).some((l) => l.startsWith('QEMU is not installed here')));
});

test('without /dev/kvm the implications say only emulation runs', async () => {
  const facts = await probeHost();
  const lines = implications({ ...facts, kvm: { present: false, owner: '', group: '', mode: '' } });
  assert.match(lines[0]!, /only emulation \(TCG\)/);
});

test('suggestFormat gives nothing for a file qemu-img cannot read', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'probe-'));
  try {
    assert.equal(await suggestFormat(join(dir, 'missing.img')), undefined);
    writeFileSync(join(dir, 'raw.img'), Buffer.alloc(4096));
    const f = await suggestFormat(join(dir, 'raw.img'));
    assert.ok(f === undefined || f === 'raw');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
