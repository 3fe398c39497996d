// `npm test`: typecheck, the layering (dependency-cruiser with .dependency-cruiser.cjs), formatting (prettier), lint
// (eslint), build, then every test file, several at a time. The slowest proofs start first so the short ones run
// beside them; the wall time of the whole run is printed last, whatever the outcome.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
const phases = [];

/**
 * Tests that boot a VM, containers or many guests, longest first (as measured on 2 cores), so that the short
 * ones fill the gaps beside them and the run does not end waiting for one long proof started last.
 */
const SLOW_FIRST = [
  'vm.test.ts',
  'isolation-vm.test.ts',
  'vm-spawn.test.ts',
  'audit-vm.test.ts',
  'ansible.test.ts',
  'uefi-container.test.ts',
  'trixie.test.ts',
  'nspawn.test.ts',
  'property.test.ts',
  'lifecycle.test.ts',
  'audit.test.ts',
  'isolation-container.test.ts',
  'boot.test.ts',
  'atomic.test.ts',
];
const named = process.argv.slice(2);
const files = (
  named.length
    ? named.map((f) => f.replace(/^test\//, ''))
    : readdirSync(join(repo, 'test')).filter((f) => /\.test\.tsx?$/.test(f))
)
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
  .map((f) => join('test', f));

function rank(f) {
  const i = SLOW_FIRST.indexOf(f);
  return i < 0 ? SLOW_FIRST.length : i;
}

function phase(name, cmd, args, env = {}) {
  const t = Date.now();
  const r = spawnSync(cmd, args, { cwd: repo, stdio: 'inherit', env: { ...process.env, ...env } });
  phases.push(`${name} ${seconds(Date.now() - t)}`);
  return r.status ?? 1;
}

function seconds(ms) {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

const concurrency = Number(process.env.QEMU_HARDEN_TEST_CONCURRENCY) || Math.max(2, availableParallelism() + 1);
let status = phase('typecheck', process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '--noEmit']);
if (status === 0)
  status = phase('layering', process.execPath, [
    join(repo, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'),
    'src',
    'steps',
    '--output-type',
    'err',
  ]);
if (status === 0)
  status = phase('formatting', process.execPath, [
    join(repo, 'node_modules/prettier/bin/prettier.cjs'),
    '--check',
    '--log-level=warn',
    '.',
  ]);
if (status === 0) status = phase('lint', process.execPath, [join(repo, 'node_modules/eslint/bin/eslint.js'), '.']);
if (status === 0) status = phase('build', process.execPath, [join(repo, 'scripts/build.mjs')]);
if (status === 0)
  status = phase(
    `tests (${files.length} files, ${concurrency} at a time)`,
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${concurrency}`, ...files],
    { FORCE_COLOR: '0' },
  );
console.log(
  `\nsuite wall time: ${seconds(Date.now() - started)} (${phases.join(', ')})${status === 0 ? '' : ' — FAILED'}`,
);
process.exit(status);
