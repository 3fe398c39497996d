// The published package, as a user gets it: `npm pack`, then `npx --yes ./qemu-harden-<version>.tgz` in an
// empty directory with an empty npm cache and npm offline, so anything npx would have to fetch fails the test.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { REPO } from './helpers.js';

const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };
const TARBALL = `${pkg.name}-${pkg.version}.tgz`;
const MAX_TARBALL_BYTES = 1_000_000;

/** Strings that survive minification and appear only in React's and Ink's own code. */
const REACT_INK_MARKERS = ['react.transitional.element', 'ink-box', 'ink-text'];

/** Strings that survive minification and appear only in Zod, in YAML, or in one of the bundle generators. */
const HEAVY_MARKERS: [what: string, marker: string][] = [
  ['Zod', 'ZodError'],
  ['YAML', 'YAMLParseError'],
  ['the bundle plan (src/plan.ts)', 'the cgroup slice every guest runs in'],
  ['the unit generator (src/gen/systemd.ts)', 'SecureBits=noroot-locked'],
  ['the QEMU command-line generator (src/gen/qemu.ts)', 'debug-threads'],
  ['the AppArmor generator (src/gen/apparmor.ts)', 'include <abstractions/base>'],
  ['the users, directories and udev generator (src/gen/host.ts)', 'KERNEL=="kvm"'],
  ['the bundle README generator (src/gen/readme.ts)', 'QEMU deployment bundle'],
];

/** Commands that read or install a bundle, or read the host, with the module the entry imports when each runs:
 * they run no generator and parse no answers up front. */
const LIGHT_COMMANDS: [command: string, module: string][] = [
  ['apply', 'apply'],
  ['verify', 'verify'],
  ['rollback', 'rollback'],
  ['start', 'start'],
  ['status', 'status'],
  ['sign', 'sign'],
];

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

let tmp = '';
let work = '';
let unpacked = '';
let cache = '';
let pack: PackResult;

function npmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    npm_config_cache: cache,
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    ...extra,
  };
}

function npx(args: string[], extra: Record<string, string> = {}) {
  const r = spawnSync('npx', ['--yes', `./${TARBALL}`, ...args], {
    cwd: work,
    env: npmEnv(extra),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function distFiles(): string[] {
  return readdirSync(join(unpacked, 'dist')).map((f) => join(unpacked, 'dist', f));
}

describe('the npm package', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'qh-package-'));
    work = join(tmp, 'work');
    unpacked = join(tmp, 'unpacked');
    cache = join(tmp, 'npm-cache');
    mkdirSync(work);
    mkdirSync(unpacked);
    assert.ok(
      existsSync(join(REPO, 'dist', 'qemu-harden.js')),
      'dist/ is built (npm run build): packing does not rebuild it, so other test files can run beside this one',
    );
    const out = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], {
      cwd: REPO,
      env: npmEnv({ npm_config_offline: 'false' }),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 180_000,
    });
    pack = (JSON.parse(out) as PackResult[])[0]!;
    execFileSync('tar', ['-xzf', join(work, TARBALL), '-C', unpacked, '--strip-components=1']);
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the tarball is under 1 MB and holds what the package needs at runtime', () => {
    assert.equal(pack.filename, TARBALL);
    assert.deepEqual(readdirSync(work), [TARBALL], 'the directory npx runs in holds only the tarball');
    assert.ok(pack.size < MAX_TARBALL_BYTES, `tarball is ${pack.size} bytes`);
    const paths = pack.files.map((f) => f.path);
    for (const p of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/qemu-harden.js',
      'presets/kvm-headless.json',
      'presets/multi-tenant.json',
    ])
      assert.ok(paths.includes(p), `${p} is in the tarball`);
    assert.ok(
      paths.every((p) => /^(package\.json|README\.md|LICENSE|dist\/[^/]+\.js|presets\/[^/]+\.json)$/.test(p)),
      `only runtime files: ${paths.join(', ')}`,
    );
    assert.match(
      readFileSync(join(unpacked, 'LICENSE'), 'utf8'),
      /^MIT License\n\nCopyright \(c\) 2026 the qemu-harden authors\n/,
    );
  });

  test('package.json in the tarball has no runtime dependencies and a bin that exists', () => {
    const manifest = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8')) as Record<string, unknown>;
    for (const field of [
      'dependencies',
      'optionalDependencies',
      'peerDependencies',
      'bundleDependencies',
      'bundledDependencies',
    ]) {
      const deps = manifest[field];
      assert.ok(
        deps === undefined || (typeof deps === 'object' && deps !== null && Object.keys(deps).length === 0),
        `${field}: ${JSON.stringify(deps)}`,
      );
    }
    const bin = manifest.bin as Record<string, string>;
    assert.equal(bin['qemu-harden'], 'dist/qemu-harden.js');
    assert.ok(existsSync(join(unpacked, bin['qemu-harden'])));
  });

  test('react-devtools-core is neither bundled nor referenced', () => {
    for (const f of distFiles())
      assert.ok(!readFileSync(f, 'utf8').includes('react-devtools-core'), `${f} mentions react-devtools-core`);
  });

  test('npx runs the tarball: --version, presets, generate, verify', () => {
    const v = npx(['--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, `${pkg.version}\n`);

    const p = npx(['presets']);
    assert.equal(p.code, 0, p.stderr);
    for (const name of ['kvm-headless', 'multi-tenant', 'tcg-build-runner'])
      assert.match(p.stdout, new RegExp(`^${name} `, 'm'));

    const g = npx(['generate', '--preset', 'kvm-headless', '--out', 'bundle']);
    assert.equal(g.code, 0, g.stderr);
    assert.ok(existsSync(join(work, 'bundle', 'MANIFEST.sha256')));
    assert.ok(existsSync(join(work, 'bundle', 'root/etc/systemd/system/qemu-server.service')));

    const r = npx(['verify', 'bundle']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /No findings\./);
    assert.doesNotMatch(r.stdout, /^\s+skip\s/m, 'every real tool ran');
  });

  /** The chunks a chunk loads before it runs: its static imports, followed through every chunk. */
  const chunkGraph = () => {
    const dist = join(unpacked, 'dist');
    const text = (name: string) => readFileSync(join(dist, name), 'utf8');
    const statics = (name: string) =>
      [...text(name).matchAll(/(?:^|[;}\s])(?:import|export)\s*(?:[\w{},\s*$]+from\s*)?["']\.\/([^"']+\.js)["']/g)].map(
        (m) => m[1]!,
      );
    const closure = (start: string[]) => {
      const seen = new Set<string>();
      const todo = [...start];
      while (todo.length) {
        const n = todo.pop()!;
        if (!seen.has(n)) todo.push(...statics((seen.add(n), n)));
      }
      return seen;
    };
    /** The chunk a module is built into, when `from` imports it on demand. */
    const onDemand = (from: string, module: string) =>
      new RegExp(`import\\("\\./(${module}-[A-Z0-9]+\\.js)"\\)`).exec(text(from))?.[1];
    /** Every chunk these load, at once or on demand. */
    const everything = (start: string[]) => {
      const seen = new Set<string>();
      const todo = [...start];
      while (todo.length) {
        const n = todo.pop()!;
        if (seen.has(n)) continue;
        seen.add(n);
        todo.push(...statics(n), ...[...text(n).matchAll(/import\("\.\/([^"]+\.js)"\)/g)].map((m) => m[1]!));
      }
      return seen;
    };
    return { text, closure, onDemand, everything };
  };

  test('the wizard’s first frame waits for neither the answers schema (Zod, YAML) nor the generators', () => {
    const { text, closure, onDemand } = chunkGraph();
    const wizard = onDemand('qemu-harden.js', 'wizard');
    assert.ok(wizard, 'the entry imports the wizard on demand');
    const firstFrame = closure(['qemu-harden.js', wizard]);
    assert.ok(
      [...firstFrame].some((f) => REACT_INK_MARKERS.some((m) => text(f).includes(m))),
      'the first frame’s modules hold Ink: the graph was read',
    );
    const engine = onDemand(wizard, 'engine');
    assert.ok(engine, 'the wizard imports its engine on demand');
    const late = [...closure([engine])].filter((f) => !firstFrame.has(f));
    // YAML comes only with an answers file to start from (`qemu-harden --answers FILE`), which the wizard reads on
    // demand.
    const answersFile = onDemand(wizard, 'file');
    assert.ok(answersFile, 'the wizard imports the answers file reader on demand');
    for (const [what, marker] of HEAVY_MARKERS.slice(0, 3)) {
      assert.ok(
        (what === 'YAML' ? [...closure([answersFile])] : late).some((f) => text(f).includes(marker)),
        `the ${what === 'YAML' ? 'answers file reader' : 'engine'} brings ${what}`,
      );
      for (const f of firstFrame)
        assert.ok(!text(f).includes(marker), `${f}, loaded for the first frame, holds ${what}`);
    }
  });

  test('apply, verify, rollback and status load no Zod, YAML or generator code before they run, and never YAML', () => {
    const { text, closure, onDemand, everything } = chunkGraph();
    const plan = onDemand('qemu-harden.js', 'plan');
    assert.ok(plan, '`generate` imports the plan on demand');
    // The plan loads each confinement backend's generator on demand itself (src/confine/index.ts).
    const generate = everything([plan]);
    for (const [what, marker] of HEAVY_MARKERS.slice(2))
      assert.ok(
        [...generate].some((f) => text(f).includes(marker)),
        `the marker of ${what} is in the built plan: the graph was read`,
      );
    const commands = LIGHT_COMMANDS.map(([c, module]) => [c, onDemand('qemu-harden.js', module)] as const).filter(
      ([, chunk]) => chunk !== undefined,
    );
    assert.deepEqual(
      commands.map(([c]) => c),
      LIGHT_COMMANDS.map(([c]) => c),
      'the entry imports each of these commands on demand',
    );
    for (const [command, chunk] of commands) {
      const loaded = closure([chunk!]);
      for (const [what, marker] of HEAVY_MARKERS)
        for (const f of loaded) assert.ok(!text(f).includes(marker), `${command} loads ${f}, which holds ${what}`);
    }
    // Nor later: a bundle's answers are JSON, so no command that reads a bundle loads the YAML parser at all.
    const yaml = HEAVY_MARKERS.find(([what]) => what === 'YAML')![1];
    const reader = onDemand('qemu-harden.js', 'file');
    assert.ok(reader, '`generate` imports the answers file reader on demand');
    assert.ok(
      [...everything([reader])].some((f) => text(f).includes(yaml)),
      'generate’s answers file reader brings YAML: the marker was read',
    );
    for (const [command, chunk] of commands)
      for (const f of everything([chunk!]))
        assert.ok(!text(f).includes(yaml), `${command} loads ${f} on demand, which holds YAML`);
  });

  test('--version, --help and each command’s help load neither React nor Ink nor the answers model', () => {
    const chunks = distFiles();
    const withReactInk = chunks.filter((f) => {
      const text = readFileSync(f, 'utf8');
      return REACT_INK_MARKERS.some((m) => text.includes(m));
    });
    const wizardSources = [
      join(REPO, 'src/wizard.tsx'),
      ...['src/ui', 'steps'].flatMap((d) =>
        existsSync(join(REPO, d))
          ? readdirSync(join(REPO, d), { recursive: true, encoding: 'utf8' }).map((f) => join(REPO, d, f))
          : [],
      ),
    ];
    const wizardUsesInk = wizardSources.some(
      (f) => /\.tsx?$/.test(f) && /from ['"](ink|react)['"]/.test(readFileSync(f, 'utf8')),
    );
    if (wizardUsesInk)
      assert.ok(
        withReactInk.length > 0,
        'the wizard imports Ink, so some chunk must carry the markers this test looks for',
      );

    const hooks = join(tmp, 'hooks.mjs');
    const register = join(tmp, 'register.mjs');
    writeFileSync(
      hooks,
      "import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) {\n  appendFileSync(process.env.QH_LOAD_LOG, url + '\\n');\n  return next(url, context);\n}\n",
    );
    writeFileSync(
      register,
      `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
    );
    const heavy = chunks.filter((f) => HEAVY_MARKERS.some(([, m]) => readFileSync(f, 'utf8').includes(m)));
    assert.ok(heavy.length > 0, 'some chunk holds the model or the generators: the markers were read');
    for (const args of [['--version'], ['--help'], ['apply', '--help'], ['help', 'status']]) {
      const flag = args.join(' ');
      const log = join(tmp, `loaded-${args.join('-')}.log`);
      writeFileSync(log, '');
      const r = npx(args, { QH_LOAD_LOG: log, NODE_OPTIONS: `--import=${pathToFileURL(register).href}` });
      assert.equal(r.code, 0, r.stderr);
      const loaded = readFileSync(log, 'utf8')
        .split('\n')
        .filter((u) => /\/node_modules\/qemu-harden\/dist\/[^/]+\.js$/.test(u));
      assert.ok(
        loaded.some((u) => u.endsWith('/dist/qemu-harden.js')),
        `the load hook saw the entry point: ${loaded.join(', ')}`,
      );
      for (const u of loaded) {
        const name = u.slice(u.lastIndexOf('/') + 1);
        assert.ok(
          !withReactInk.some((f) => f.endsWith(`/${name}`)),
          `${flag} loaded ${name}, which holds React or Ink`,
        );
        assert.ok(
          !heavy.some((f) => f.endsWith(`/${name}`)),
          `${flag} loaded ${name}, which holds Zod, YAML or a generator`,
        );
        assert.ok(!/react-devtools-core/.test(u));
      }
    }
  });
});
