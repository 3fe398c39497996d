// `npm run bench` still runs: CI runs every benchmark once. Its figures are not checked here (a busy CI machine
// is no measure), only that each benchmark ran to a row of the table.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, requireTool } from './helpers.js';

test('the benchmark script runs each benchmark and prints its row', () => {
  requireTool('python3', 'python3');
  const r = spawnSync(process.execPath, [join(REPO, 'scripts/bench.mjs')], {
    encoding: 'utf8',
    env: { ...process.env, BENCH_RUNS: '1' },
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const row of [
    'wizard first frame / node -e ""',
    'generate, 1,000 guests ',
    'generate, 1,000 guests / 1 guest',
    'verify multi-tenant (3 guests)',
    'import libvirt corpus (',
    'wizard keypress to frame, 64 guests, disks',
    'wizard keypress to frame, 64 guests, review',
    'audit, 100 QEMU processes',
    'audit, 200 hostile processes',
  ])
    assert.match(
      r.stdout,
      new RegExp(`^\\| ${row.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*\\| (pass|FAIL) +\\|$`, 'm'),
      `a row for ${row}`,
    );
  assert.match(r.stdout, /wizard's first visible line: "qemu-harden · 1\/12 Host"/);
});
