// The README's "run it" commands on a fresh machine: a fresh `git clone` of this repository's HEAD, npm's cache
// empty, then exactly `npm ci` and `npm start`. The registry is reachable; nothing else is assumed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { invocation, sudoInvocation } from '../src/invocation.js';
import { REPO, requireTool, tempDir } from './helpers.js';

test(
  'from a fresh clone with an empty npm cache, `npm ci` then `npm start` run qemu-harden, and it suggests `npm start --`',
  { timeout: 600_000 },
  (t) => {
    requireTool('git', 'git');
    requireTool('npm', 'npm');
    const dir = tempDir(t, 'qh-clone-');
    const clone = join(dir, 'qemu-harden');
    const cache = join(dir, 'npm-cache');
    mkdirSync(cache);
    const env: Record<string, string | undefined> = {
      ...process.env,
      npm_config_cache: cache,
      npm_config_update_notifier: 'false',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
    };
    for (const k of Object.keys(env)) if (k.startsWith('npm_') && !k.startsWith('npm_config_')) delete env[k];
    const run = (cmd: string, args: string[], cwd = clone) =>
      spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 500_000 });

    const c = run('git', ['clone', '--quiet', REPO, clone], dir);
    assert.equal(c.status, 0, c.stderr);
    assert.ok(!existsSync(join(clone, 'dist')), 'the clone has no build');
    const ci = run('npm', ['ci']);
    assert.equal(ci.status, 0, `npm ci failed:\n${ci.stdout}\n${ci.stderr}`);

    const version = run('npm', ['start', '--silent', '--', '--version']);
    assert.equal(version.status, 0, version.stderr);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
    const gen = run('npm', [
      'start',
      '--silent',
      '--',
      'generate',
      '--preset',
      'kvm-headless',
      '--out',
      'qemu-harden-bundle',
    ]);
    assert.equal(gen.status, 0, gen.stderr);
    assert.match(
      gen.stdout,
      /Next: npm start -- verify qemu-harden-bundle {3}then {3}npm start -- apply qemu-harden-bundle --dry-run/,
    );
    const verify = run('npm', ['start', '--silent', '--', 'verify', 'qemu-harden-bundle']);
    assert.equal(verify.status, 0, verify.stdout);
    const status = run('git', ['status', '--porcelain']);
    assert.equal(status.stdout, '', 'the default output directory is ignored by git');
  },
);

test('the next commands are suggested the way this process was started', () => {
  const base = {
    script: '/opt/qh/dist/qemu-harden.js',
    cwd: '/srv',
    env: {},
    which: () => undefined,
    node: '/usr/bin/node',
  };
  assert.equal(invocation({ ...base, which: () => '/opt/qh/dist/qemu-harden.js' }), 'qemu-harden', 'on PATH');
  assert.equal(sudoInvocation({ ...base, which: () => '/opt/qh/dist/qemu-harden.js' }), 'sudo qemu-harden');
  const npmStart = {
    npm_lifecycle_event: 'start',
    npm_package_name: 'qemu-harden',
    npm_config_local_prefix: '/opt/qh',
    INIT_CWD: '/opt/qh',
  };
  assert.equal(invocation({ ...base, cwd: '/opt/qh', env: npmStart }), 'npm start --');
  assert.equal(
    invocation({ ...base, cwd: '/opt/qh', env: { ...npmStart, INIT_CWD: '/srv' } }),
    'npm --prefix /opt/qh start --',
    'npm start from another directory',
  );
  assert.equal(
    sudoInvocation({ ...base, cwd: '/opt/qh', env: npmStart }),
    'sudo /usr/bin/node /opt/qh/dist/qemu-harden.js',
    'root need not have npm',
  );
  assert.equal(
    invocation({
      ...base,
      script: '/root/.npm/_npx/ab12/node_modules/qemu-harden/dist/qemu-harden.js',
      env: { npm_command: 'exec' },
    }),
    'npx qemu-harden',
  );
  assert.equal(
    invocation({ ...base, cwd: '/opt/qh' }),
    'node dist/qemu-harden.js',
    'node with the path as typed from here',
  );
  assert.equal(invocation(base), 'node /opt/qh/dist/qemu-harden.js');
  assert.equal(invocation({ ...base, script: '/opt/q h/x.js' }), "node '/opt/q h/x.js'");
});
