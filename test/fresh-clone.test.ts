// The README's "run it" commands on a fresh machine: a fresh `git clone` of this repository's HEAD, npm's cache
// empty, then exactly `npm ci`, the README's own example commands, and every command qemu-harden printed for the
// operator to run next, pasted as printed: generate's `Next:` lines, the bundle README's install and check
// commands, import's `Next:` line. The registry is reachable; nothing else is assumed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { invocation, invocationAnywhere, sudoInvocation } from '../src/invocation.js';
import { REPO, requireTool, tempDir } from './helpers.js';

/** What sudo gives a command: root's own PATH (Debian's secure_path) and none of the caller's environment. */
const AS_ROOT = 'env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The lines of the first ```sh block after the paragraph that begins with `after`. */
function shBlock(markdown: string, after: string): string[] {
  const from = markdown.indexOf(`\n${after}`);
  assert.ok(from >= 0, `a paragraph beginning "${after}"`);
  const m = /\n```sh\n([\s\S]*?)\n```/.exec(markdown.slice(from));
  assert.ok(m, `a sh block after "${after}"`);
  return m[1]!.split('\n');
}

test(
  'from a fresh clone with an empty npm cache, the README’s commands and every command qemu-harden prints run as written',
  { timeout: 600_000 },
  (t) => {
    requireTool('git', 'git');
    requireTool('npm', 'npm');
    const dir = tempDir(t, 'qh-clone-');
    const clone = join(dir, 'qemu-harden');
    const cache = join(dir, 'npm-cache');
    const tree = join(dir, 'tree');
    mkdirSync(cache);
    mkdirSync(tree);
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
    /** A line pasted into a shell in `cwd`. */
    const paste = (line: string, cwd = clone) => {
      const r = run('sh', ['-c', line], cwd);
      return { ...r, all: `$ ${line}\n${r.stdout}${r.stderr}` };
    };

    const c = run('git', ['clone', '--quiet', REPO, clone], dir);
    assert.equal(c.status, 0, c.stderr);
    assert.ok(!existsSync(join(clone, 'dist')), 'the clone has no build');
    const ci = run('npm', ['ci']);
    assert.equal(ci.status, 0, `npm ci failed:\n${ci.stdout}\n${ci.stderr}`);
    assert.doesNotMatch(
      ci.stdout + ci.stderr,
      /install-scripts|allowScripts/,
      'no dependency’s install script is left unreviewed',
    );

    const version = run('npm', ['start', '--silent', '--', '--version']);
    assert.equal(version.status, 0, version.stderr);
    assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);

    // The README's example, as written: it writes the default bundle directory, which git ignores.
    const readme = readFileSync(join(clone, 'README.md'), 'utf8');
    const examples = shBlock(readme, 'Without a terminal');
    assert.ok(examples.some((l) => / generate /.test(l)));
    let next = '';
    for (const line of examples) {
      const r = paste(line);
      assert.equal(r.status, 0, r.all);
      next = /^Next: (.*)$/m.exec(r.stdout)?.[1] ?? next;
    }
    const bundle = join(clone, 'qemu-harden-bundle');
    assert.ok(existsSync(join(bundle, 'MANIFEST.sha256')));

    // generate's next commands, pasted. `apply --dry-run` plans against /; here it is pointed at a tree.
    const [verify, dryRun] = next.split(/ {3}then {3}/);
    assert.equal(verify, 'npm start -- verify qemu-harden-bundle');
    assert.equal(dryRun, 'npm start -- apply qemu-harden-bundle --dry-run');
    assert.equal(paste(verify!).status, 0);
    const planned = paste(`${dryRun} --root ${tree}`);
    assert.equal(planned.status, 0, planned.all);

    // The bundle README's commands, pasted in the bundle's directory: the form for this machine works from any
    // directory and, under sudo, without npm or node on root's PATH. apply installs into the tree.
    const bundleReadme = readFileSync(join(bundle, 'README.md'), 'utf8');
    const install = shBlock(bundleReadme, 'Run these from this directory').filter((l) => !/systemctl/.test(l));
    assert.equal(install.length, 3, install.join('\n'));
    const here = install[0]!.replace(/ verify \. .*/, '');
    assert.match(here, /^\S+ \S+\/dist\/qemu-harden\.js$/, 'node and the script, by absolute path');
    assert.ok(bundleReadme.includes('`qemu-harden verify .`'), 'and the form once installed');
    for (const line of install) {
      const r = line.startsWith('sudo ')
        ? paste(`${AS_ROOT} ${line.slice(5).replace(/ +#.*/, '')} --root ${tree} --yes`, bundle)
        : paste(`${line.replace(/ apply \. --dry-run /, ` apply . --dry-run --root ${tree} `)}`, bundle);
      assert.equal(r.status, 0, r.all);
    }
    const checks = shBlock(bundleReadme, '## Checking the host afterwards').filter((l) => l.startsWith(here));
    assert.deepEqual(
      checks.map((l) => l.slice(here.length).replace(/ +#.*/, '')),
      [' verify .', ' status'],
    );
    for (const line of checks) {
      const r = paste(`${line.replace(/ +#.*/, '')}${line.includes(' status') ? ` --root ${tree}` : ''}`, bundle);
      assert.equal(r.status, 0, r.all);
    }

    // import's next command, pasted once the operator has moved the first bundle away.
    const imported = run('npm', [
      'start',
      '--',
      'import',
      'libvirt',
      join(REPO, '..', 'shared', 'corpus', 'libvirt', 'graphics-vnc.xml'),
      '--out',
      'qemu-harden-bundle.answers.json',
    ]);
    assert.ok([0, 1].includes(imported.status!), imported.stdout + imported.stderr);
    const importNext = /Next: (.*)$/m.exec(imported.stdout)?.[1];
    assert.equal(
      importNext,
      'npm start -- generate --answers qemu-harden-bundle.answers.json --out qemu-harden-bundle',
    );
    rmSync(bundle, { recursive: true });
    const fromImport = paste(importNext!);
    assert.equal(fromImport.status, 0, fromImport.all);

    const status = run('git', ['status', '--porcelain']);
    assert.equal(status.stdout, '', 'what the examples write is ignored by git');
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
  assert.equal(invocationAnywhere({ ...base, which: () => '/opt/qh/dist/qemu-harden.js' }), 'qemu-harden');
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
    invocationAnywhere({ ...base, cwd: '/opt/qh', env: npmStart }),
    '/usr/bin/node /opt/qh/dist/qemu-harden.js',
    'npm start runs in the clone, so a file read later names node and the script',
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
  assert.equal(invocationAnywhere({ ...base, cwd: '/opt/qh' }), '/usr/bin/node /opt/qh/dist/qemu-harden.js');
  assert.equal(invocation(base), 'node /opt/qh/dist/qemu-harden.js');
  assert.equal(invocation({ ...base, script: '/opt/q h/x.js' }), "node '/opt/q h/x.js'");
});
