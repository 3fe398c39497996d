import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { implications } from '../src/implications.js';
import { hostFactsSchema, probeHost, suggestFormat } from '../src/probe.js';
import { network } from '../steps/network.js';
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

test('where passt is not installed the probe says so, and the network step asks for slirp and its reason instead', async () => {
  const facts = await probeHost();
  assert.ok(
    implications({ ...facts, passt: true }).includes(
      'passt is installed: user-mode networking runs in a unit of its own, and QEMU keeps no IP socket',
    ),
  );
  assert.ok(
    implications({ ...facts, passt: false }).includes(
      'passt is not installed (Debian package passt): user-mode networking would run inside QEMU (slirp), a risk to accept with a reason',
    ),
  );
  const draft = (backend: string) =>
    ({ guests: [{ name: 'u', network: { mode: 'user', backend } }] }) as unknown as Parameters<
      NonNullable<typeof network.notes>
    >[0]['draft'];
  const notes = (passt: boolean, backend: string) =>
    network.notes!({ draft: draft(backend), guest: 0, host: { ...facts, passt } }).join('\n');
  assert.match(notes(false, 'passt'), /passt is not installed here: install it .* or choose slirp and give its reason/);
  assert.doesNotMatch(notes(false, 'slirp'), /passt is not installed/);
  assert.doesNotMatch(notes(true, 'passt'), /passt is not installed/);
});
