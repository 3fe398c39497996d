// `npm run bench` still runs: CI runs every benchmark once. Its figures are not checked here (a busy CI machine
// is no measure), only that each benchmark ran to a row of the table, and that the table is written where
// docs/performance.md keeps it (into a copy here).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO, requireTool, tempDir } from './helpers.js';

test('the benchmark script runs each benchmark, prints its row and writes the table into the performance doc', (t) => {
  requireTool('python3', 'python3');
  const doc = join(tempDir(t), 'performance.md');
  const before = readFileSync(join(REPO, 'docs/performance.md'), 'utf8');
  writeFileSync(doc, before);
  const r = spawnSync(process.execPath, [join(REPO, 'scripts/bench.mjs'), '--write', doc], {
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
    'sign + check signatures, 100 guests',
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
  const after = readFileSync(doc, 'utf8');
  const figures = (s: string) =>
    /<!-- figures: written by npm run bench -->([\s\S]*)<!-- end of figures -->/.exec(s)?.[1];
  const table = /^\| benchmark [\s\S]*?\n(?!\|)/m.exec(r.stdout)![0];
  assert.ok(figures(after)!.includes(table), 'the printed table is the written one');
  assert.match(
    figures(after)!,
    new RegExp(`^Measured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: \\d+ cores`, 'm'),
  );
  assert.equal(after.replace(figures(after)!, ''), before.replace(figures(before)!, ''), 'nothing else changed');
});
