import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { cliReference } from '../scripts/docs.js';
import { commandHelp, parse, reference, shapeOf, usageLines, type Command } from '../src/command.js';
import { COMMANDS } from '../src/commands.js';
import { AUDIT_FORMAT, formatAudit, type AuditReport } from '../src/audit/command.js';
import { listed, plural } from '../src/words.js';
import { BIN, cli, guestFilesDir, REPO, requireTool, tempDir } from './helpers.js';
import { traceCalls } from './killpoints.js';

const CORPUS = join(REPO, '..', 'shared', 'corpus');

const noTrace = (s: string) => assert.doesNotMatch(s, /\n\s+at |Error:|node:internal/, 'no stack trace');

describe('qemu-harden CLI', () => {
  test('--version and --help', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const v = await cli(['--version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout, `${pkg.version}\n`);
    const h = await cli(['--help']);
    assert.equal(h.code, 0);
    for (const word of ['generate', 'presets', 'verify', '--set', '--dry-run', '--force', '--json'])
      assert.ok(h.stdout.includes(word), word);
    assert.equal((await cli(['help'])).stdout, h.stdout, '`help` alone is --help');
    for (const c of COMMANDS.filter((x) => x.name !== 'interview'))
      assert.match(h.stdout, new RegExp(`^  ${c.name} +\\S`, 'm'), `${c.name} is in the list of commands`);
  });

  test('usage errors exit 2 with a message, no stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['generate', '--out', '/tmp/x'], /exactly one of --preset NAME or --answers FILE/],
      [['generate', '--preset', 'kvm-headless'], /needs --out DIR/],
      [['generate', '--preset', 'nope', '--out', '/tmp/x'], /no preset named "nope" \(available: .*kvm-headless/],
      [['generate', '--preset'], /--preset needs a value/],
      [['presets', '--bogus'], /unknown option --bogus/],
      [['verify'], /verify needs the bundle directory/],
      [['verify', '/nonexistent/bundle'], /does not exist/],
      [['presets', '--out', 'x'], /--out does not apply to 'presets'/],
    ];
    for (const [args, msg] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}`);
      assert.match(r.stderr, msg);
      noTrace(r.stderr);
      assert.equal(r.stdout, '');
    }
  });

  test('the interview without a terminal exits 2 and points to generate', async () => {
    const r = await cli([]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /needs a terminal/);
    assert.match(r.stderr, /Without one, use: node dist\/qemu-harden\.js generate --preset NAME --out DIR/);
  });

  test('invalid answers: exit 2, every bad field named, nothing written', async (t) => {
    const tmp = tempDir(t);
    const out = join(tmp, 'out');
    const r = await cli([
      'generate',
      '--preset',
      'kvm-headless',
      '--out',
      out,
      '--set',
      'guests.0.disks.0.path=relative.img',
      '--set',
      'guests.0.vcpus="two"',
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /guests\.0\.disks\.0\.path: must be an absolute path/);
    assert.match(r.stderr, /guests\.0\.vcpus: must be a whole number, not the text "two"/);
    noTrace(r.stderr);
    assert.deepEqual(readdirSync(tmp), []);
  });

  test('answers files: JSON, YAML, bad syntax, too large, not an object', async (t) => {
    const tmp = tempDir(t);
    const yaml = join(tmp, 'a.yaml');
    writeFileSync(
      yaml,
      'schemaVersion: 1\nuseCase: virtualization\nguests:\n  - name: y\n    disks:\n      - {path: /srv/y.img, format: raw}\n',
    );
    const ok = await cli(['generate', '--answers', yaml, '--out', join(tmp, 'y')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(existsSync(join(tmp, 'y', 'root/etc/systemd/system/qemu-y.service')));

    const broken = join(tmp, 'broken.json');
    writeFileSync(broken, '{"schemaVersion": 1,');
    const b = await cli(['generate', '--answers', broken, '--out', join(tmp, 'b')]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /broken\.json: not valid JSON/);
    noTrace(b.stderr);

    const big = join(tmp, 'big.json');
    writeFileSync(big, `{"x": "${'a'.repeat(10 * 1024 * 1024)}"}`);
    // Refused by its size, before a byte of it is read: strace sees every call on the file.
    const g = traceCalls([process.execPath, BIN, 'generate', '--answers', big, '--out', join(tmp, 'g')], ['all'], {
      paths: [big],
      log: join(tempDir(t), 'big.trace'),
    });
    assert.equal(g.status, 2);
    assert.match(g.stderr, /at most 1048576 bytes/);
    assert.deepEqual(
      g.calls.filter((c) => /^(read|pread64|readv|preadv2?|mmap|sendfile|copy_file_range)$/.test(c.syscall)),
      [],
      `a huge file is refused without reading it:\n${g.calls.map((c) => c.line).join('\n')}`,
    );

    const newer = join(tmp, 'newer.json');
    writeFileSync(newer, JSON.stringify({ schemaVersion: 7, useCase: 'virtualization', guests: [{ name: 'n' }] }));
    const nv = await cli(['generate', '--answers', newer, '--out', join(tmp, 'nv')]);
    assert.equal(nv.code, 2);
    assert.match(nv.stderr, /schemaVersion: is 7, newer than this qemu-harden understands \(1\); upgrade qemu-harden/);
    noTrace(nv.stderr);

    const unknown = join(tmp, 'unknown.yaml');
    writeFileSync(unknown, 'schemaVersion: 1\nuseCase: virtualization\nguests:\n  - name: u\n    cdrom: /srv/x.iso\n');
    const uk = await cli(['generate', '--answers', unknown, '--out', join(tmp, 'uk')]);
    assert.equal(uk.code, 2);
    assert.match(uk.stderr, /guests\.0: unknown key "cdrom"/);

    const wrongType = join(tmp, 'wrong.json');
    writeFileSync(wrongType, JSON.stringify({ schemaVersion: 1, useCase: 'virtualization', guests: { name: 'w' } }));
    const wt = await cli(['generate', '--answers', wrongType, '--out', join(tmp, 'wt')]);
    assert.equal(wt.code, 2);
    assert.match(wt.stderr, /guests: must be a list, not a group of settings/);

    const arr = join(tmp, 'arr.json');
    writeFileSync(arr, '[1,2]');
    const a = await cli(['generate', '--answers', arr, '--out', join(tmp, 'a')]);
    assert.equal(a.code, 2);
    assert.match(a.stderr, /must hold one object/);

    const missing = await cli(['generate', '--answers', join(tmp, 'nope.json'), '--out', join(tmp, 'm')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read .*nope\.json: ENOENT/);
    assert.deepEqual(readdirSync(tmp).sort(), [
      'a.yaml',
      'arr.json',
      'big.json',
      'broken.json',
      'newer.json',
      'unknown.yaml',
      'wrong.json',
      'y',
    ]);
  });

  test('an existing non-empty OUT is refused without --force and replaced whole with it', async (t) => {
    const tmp = tempDir(t);
    const out = join(tmp, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'keep.txt'), 'mine');
    const r = await cli(['generate', '--preset', 'kvm-headless', '--out', out]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /exists and is not empty; pass --force/);
    assert.equal(readFileSync(join(out, 'keep.txt'), 'utf8'), 'mine');
    const f = await cli(['generate', '--preset', 'kvm-headless', '--out', out, '--force']);
    assert.equal(f.code, 0, f.stderr);
    assert.ok(!existsSync(join(out, 'keep.txt')));
    assert.ok(existsSync(join(out, 'MANIFEST.sha256')));
    assert.deepEqual(readdirSync(tmp), ['out'], 'no temporary directories left behind');
  });

  test('--dry-run lists the files and writes nothing; --json is machine-readable', async (t) => {
    const tmp = tempDir(t);
    const out = join(tmp, 'out');
    const r = await cli(['generate', '--preset', 'multi-tenant', '--out', out, '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /would write root\/etc\/systemd\/system\/qemu-alpha\.service/);
    assert.ok(!existsSync(out));
    const j = await cli(['generate', '--preset', 'multi-tenant', '--out', out, '--dry-run', '--json']);
    const doc = JSON.parse(j.stdout) as { written: boolean; files: { path: string; mode: string }[] };
    assert.equal(doc.written, false);
    assert.ok(doc.files.some((f) => f.path === 'MANIFEST.sha256' && f.mode === '644'));
    assert.ok(!existsSync(out));
  });

  test('verify: 0 on an intact bundle, 1 with findings on a tampered one', async (t) => {
    const tmp = tempDir(t);
    const out = join(tmp, 'out');
    assert.equal((await cli(['generate', '--preset', 'kvm-headless', '--out', out])).code, 0);
    assert.equal((await cli(['verify', out])).code, 0);
    appendFileSync(join(out, 'root/etc/systemd/system/qemu-server.service'), 'ProtectSystem=no\n');
    writeFileSync(join(out, 'root/etc/extra.conf'), 'x');
    const r = await cli(['verify', out]);
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /manifest: root\/etc\/systemd\/system\/qemu-server\.service: changed since the bundle was generated/,
    );
    assert.match(r.stdout, /manifest: root\/etc\/extra\.conf: not listed in the manifest/);
    assert.match(
      r.stdout,
      /answers: root\/etc\/systemd\/system\/qemu-server\.service: differs from what answers\.json produces/,
    );
  });

  test('verify and generate: a disk under /home or /tmp, which the unit hides, is refused with the reason', async (t) => {
    const out = join(tempDir(t), 'out');
    const g = await cli([
      'generate',
      '--preset',
      'kvm-headless',
      '--set',
      'guests.0.disks.0.path=/home/alice/vm.qcow2',
      '--out',
      out,
    ]);
    assert.equal(g.code, 2);
    assert.match(
      g.stderr,
      /guests\.0\.disks\.0\.path: is under \/home, which QEMU's unit cannot see \(ProtectHome=yes\)/,
    );
    assert.equal((await cli(['generate', '--preset', 'kvm-headless', '--out', out])).code, 0);
    const answers = join(out, 'answers.json');
    writeFileSync(answers, readFileSync(answers, 'utf8').replace('/srv/qemu/server/disk.qcow2', '/tmp/disk.qcow2'));
    const v = await cli(['verify', out]);
    assert.equal(v.code, 1);
    assert.match(v.stdout, /guests\.0\.disks\.0\.path: is under \/tmp, which QEMU's unit cannot see \(PrivateTmp=yes/);
  });

  test('verify: a machine type or CPU model the bundle’s QEMU binary does not have is a finding', async (t) => {
    requireTool('qemu-system-x86_64', 'qemu-system-x86');
    const out = join(tempDir(t), 'out');
    const g = await cli([
      'generate',
      '--preset',
      'kvm-headless',
      '--out',
      out,
      '--set',
      'host.qemuBinary=' + requireTool('qemu-system-x86_64', 'qemu-system-x86'),
      '--set',
      'guests.0.machine=virt',
      '--set',
      'guests.0.cpu.model=cortex-a57',
      '--set',
      'acceptedRisks.0={"risk":"machine-unsupported","guest":"server","reason":"an arm board on an x86 host, by mistake"}',
    ]);
    assert.equal(g.code, 0, g.stderr);
    const r = await cli(['verify', out]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /FAIL {2}qemu machine and CPU/);
    assert.match(
      r.stdout,
      /guests\.0\.machine: "virt" is not a machine type of \S*qemu-system-x86_64 \(see qemu-system-x86_64 -machine help\)/,
    );
    assert.match(r.stdout, /guests\.0\.cpu\.model: "cortex-a57" is not a CPU model of/);
  });
});

describe('paths as they are on this machine', () => {
  test('a disk path that is a symlink is refused, naming where it leads', async (t) => {
    const tmp = guestFilesDir(t);
    const link = join(tmp, 'disk.img');
    symlinkSync('/etc/passwd', link);
    const r = await cli([
      'generate',
      '--preset',
      'kvm-headless',
      '--set',
      `guests.0.disks.0.path=${link}`,
      '--set',
      'guests.0.disks.0.format=raw',
      '--out',
      join(tmp, 'out'),
    ]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /guests\.0\.disks\.0\.path: .*disk\.img resolves through a symlink to \/etc\/passwd \(under \/etc\)/,
    );
    assert.ok(!existsSync(join(tmp, 'out')));
  });

  test('a directory is not a disk; a missing path is fine (bundles are made away from their host)', async (t) => {
    const tmp = guestFilesDir(t);
    const r = await cli([
      'generate',
      '--preset',
      'kvm-headless',
      '--set',
      `guests.0.disks.0.path=${tmp}`,
      '--out',
      join(tmp, 'out'),
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /guests\.0\.disks\.0\.path: .* is a directory, not a disk image/);
    const ok = await cli([
      'generate',
      '--preset',
      'kvm-headless',
      '--set',
      `guests.0.disks.0.path=${join(tmp, 'later.qcow2')}`,
      '--out',
      join(tmp, 'out2'),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});

describe('commands as records', () => {
  /** How the binary the tests run is started from the repository: the form every printed command uses. */
  const ME = 'node dist/qemu-harden.js';

  test('each command’s own help: its usage, every option with its default, its exit statuses and one example', async () => {
    const global = (await cli(['--help'])).stdout;
    for (const c of COMMANDS) {
      const viaHelp = await cli(['help', c.name]);
      assert.equal(viaHelp.code, 0, `help ${c.name}: ${viaHelp.stderr}`);
      const h = viaHelp.stdout;
      if (c.name !== 'interview') {
        const viaFlag = await cli([c.name, '--help']);
        assert.equal(viaFlag.code, 0, viaFlag.stderr);
        assert.equal(viaFlag.stdout, h, `${c.name} --help is help ${c.name}`);
      }
      assert.notEqual(h, global, `${c.name} has help of its own`);
      assert.match(h, new RegExp(`^Usage:\n  ${ME} ${c.name === 'interview' ? '' : `${c.name} `}`, 'm'));
      for (const f of c.flags) {
        assert.ok(h.includes(`  ${f.flag}`), `${c.name}: ${f.flag} is listed`);
        if (f.default)
          assert.ok(h.replace(/\s+/g, ' ').includes(`(default: ${f.default})`), `${c.name}: ${f.flag}’s default`);
      }
      const exits = /\nExit status:\n((?: .*\n)+)/.exec(h)?.[1] ?? '';
      assert.deepEqual(
        [...exits.matchAll(/^ {2}(\d+) /gm)].map((m) => Number(m[1])),
        [...new Set([...c.exits.map(([s]) => s), 70])].sort((a, b) => a - b),
        `${c.name}: every exit status, 70 included`,
      );
      const example = /\nExample:\n {2}(.*)\n/.exec(h)?.[1];
      assert.equal(example, `${c.example.asRoot ? `sudo ${process.execPath} ${BIN}` : ME} ${c.example.args}`);
      for (const line of h.split('\n')) assert.ok(line.length <= 80 || line === `  ${example}`, `${c.name}: ${line}`);
    }
  });

  test('the examples in the help run as printed', async (t) => {
    const dir = tempDir(t);
    const run = (line: string) => spawnSync('sh', ['-c', line], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    const example = async (name: string) => {
      const h = (await cli(['help', name], { cwd: dir })).stdout;
      return /\nExample:\n {2}(.*)\n/.exec(h)![1]!;
    };
    const presets = run(await example('presets'));
    assert.equal(presets.status, 0, presets.stderr);
    assert.match(presets.stdout, /^kvm-headless /m);
    const generate = run(await example('generate'));
    assert.equal(generate.status, 0, generate.stderr);
    assert.ok(existsSync(join(dir, 'qemu-harden-bundle', 'MANIFEST.sha256')));
    const verify = run(await example('verify'));
    assert.equal(verify.status, 0, verify.stdout);
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    // apply's example plans against /; pointed at a tree of the test's own, it is the same command otherwise.
    const apply = run(`${await example('apply')} --root ${tree}`);
    assert.equal(apply.status, 0, apply.stderr);
    assert.match(apply.stdout, /Dry run: nothing was changed/);
    assert.deepEqual(readdirSync(tree), [], 'the dry run changed nothing');
    copyFileSync(join(CORPUS, 'libvirt', 'graphics-vnc.xml'), join(dir, 'web.xml'));
    const imported = run(await example('import'));
    assert.ok([0, 1].includes(imported.status!), imported.stdout + imported.stderr);
    assert.ok(existsSync(join(dir, 'web.json')));
    const help = run(await example('help'));
    assert.equal(help.stdout, (await cli(['apply', '--help'], { cwd: dir })).stdout);
  });

  test('help for what is not a command exits 2 and says so', async () => {
    for (const [args, msg] of [
      [['help', 'frobnicate'], /no command 'frobnicate'/],
      [['frobnicate', '--help'], /unknown command 'frobnicate'/],
      [['help', 'export', 'yaml'], /unexpected argument yaml/],
      [['interview'], /unknown command 'interview'/],
    ] as [string[], RegExp][]) {
      const r = await cli(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, msg);
      assert.equal(r.stdout, '');
    }
    assert.equal((await cli(['help', 'export', 'ansible'])).stdout, (await cli(['export', '--help'])).stdout);
    // Words from argv come back with their control characters shown, not sent to the terminal.
    for (const args of [['\u001b[2Jfrob'], ['presets', '\u001b]0;x\u0007'], ['--\u001b[31m'], ['help', '\u202ex']]) {
      const r = await cli(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.doesNotMatch(r.stderr, /[\u001b\u0007\u202e]/, JSON.stringify(r.stderr));
      assert.match(r.stderr, /\\x1b|\\u202e/);
    }
  });

  test('docs/cli.md is what the command records produce (npm run docs writes it)', async () => {
    const committed = readFileSync(join(REPO, 'docs', 'cli.md'), 'utf8');
    assert.ok(committed === (await cliReference()), 'docs/cli.md differs from the records: run npm run docs');
    for (const c of COMMANDS) assert.match(committed, new RegExp(`^## ${c.name}$`, 'm'));
  });

  test('a flag is one line in its record: the parser, the usage, the help and the reference follow', () => {
    const audit = COMMANDS.find((c) => c.name === 'audit')!;
    const more: Command = { ...audit, flags: [...audit.flags, { flag: '--only PID ...', help: 'judge only PID' }] };
    const commands = COMMANDS.map((c) => (c === audit ? more : c));
    const runAs = () => ({ me: 'qemu-harden', sudo: 'sudo qemu-harden', anywhere: 'qemu-harden' });
    const p = parse(['audit', '--only', '12', '--only=34', '--json'], commands, runAs);
    assert.deepEqual(p.args.values('--only'), ['12', '34']);
    assert.ok(p.args.has('--json'));
    assert.match(
      usageLines(more)[0]!,
      /^audit \[--json\] \[--answers-out FILE\] \[--force\] \[--include-user-process PID\|NAME \.\.\.\] \[--only PID \.\.\.\]$/,
    );
    assert.match(commandHelp(more, runAs()), /^ {2}--only PID \.\.\. +judge only PID$/m);
    assert.match(reference(commands), /^\| `--only PID \.\.\.` \| +\| judge only PID \|$/m);
    assert.throws(() => parse(['audit', '--only'], commands, runAs), /--only needs a value/);
  });

  test('a flag takes a value in every command that has it, or in none', () => {
    const takes = new Map<string, boolean>();
    for (const f of COMMANDS.flatMap((c) => c.flags)) {
      const s = shapeOf(f);
      assert.equal(takes.get(s.name) ?? s.value !== undefined, s.value !== undefined, s.name);
      takes.set(s.name, s.value !== undefined);
    }
  });
});

describe('what the commands print reads right', () => {
  test('counts agree with their nouns, and lists name what is there', () => {
    assert.equal(plural(1, 'file'), '1 file');
    assert.equal(plural(0, 'file'), '0 files');
    assert.equal(plural(2, 'entry', 'entries'), '2 entries');
    assert.equal(listed(['DRIFT']), 'DRIFT');
    assert.equal(listed(['WEAKER', 'DRIFT']), 'WEAKER and DRIFT');
    assert.equal(listed(['WEAKER', 'DRIFT', 'INTERRUPTED']), 'WEAKER, DRIFT and INTERRUPTED');
  });

  test('apply and status on a tree: one file installed is "1 file", the tools’ lines are not glued with ".;", drift alone is named alone, and the previous bundle is restorable, not rolled back to', async (t) => {
    requireTool('systemd-sysusers', 'systemd');
    const dir = tempDir(t);
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    const bundle = join(dir, 'bundle');
    assert.equal((await cli(['generate', '--preset', 'kvm-headless', '--out', bundle])).code, 0);
    const first = await cli(['apply', bundle, '--root', tree, '--yes']);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    const sysusers = /^ {2}done {2}create users and groups \(systemd-sysusers\): (.*)$/m.exec(first.stdout)?.[1];
    assert.ok(sysusers && /Creating/.test(sysusers), first.stdout);
    assert.doesNotMatch(first.stdout, /\.;/);
    assert.doesNotMatch(
      await (await cli(['status', '--root', tree])).stdout.split('\n')[0]!,
      /previous bundle|rollback/,
    );

    const g = await cli([
      'generate',
      '--preset',
      'kvm-headless',
      '--set',
      'guests.0.vcpus=3',
      '--out',
      bundle,
      '--force',
    ]);
    assert.equal(g.code, 0, g.stderr);
    const second = await cli(['apply', bundle, '--root', tree, '--yes']);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.match(second.stdout, /^Installed 1 file, removed 0\./m);

    appendFileSync(join(tree, 'etc/systemd/system/qemu-server.service'), '# edited by hand\n');
    const s = await cli(['status', '--root', tree]);
    assert.equal(s.code, 1, s.stdout);
    assert.match(
      s.stdout,
      /^Installed under \S+: bundle [0-9a-f]{12}; previous bundle [0-9a-f]{12}, restorable with rollback$/m,
    );
    assert.match(s.stdout, /^FINDINGS: see DRIFT above\.$/m);
  });

  test('the next commands of generate and export, pasted into a shell, run on a directory whose name a shell would split', async (t) => {
    const dir = join(tempDir(t), "the lab's bundles", 'web 1');
    mkdirSync(dirname(dir), { recursive: true });
    const g = await cli(['generate', '--preset', 'kvm-headless', '--out', dir]);
    assert.equal(g.code, 0, g.stderr);
    const next = /^Next: (.*) {3}then {3}(.*)$/m.exec(g.stdout);
    assert.ok(next, g.stdout);
    const verify = spawnSync('sh', ['-c', next[1]!], { cwd: REPO, encoding: 'utf8' });
    assert.equal(verify.status, 0, `${next[1]}\n${verify.stdout}${verify.stderr}`);
    assert.match(verify.stdout, /verif/i);
    const fleet = join(dirname(dir), 'a fleet');
    const x = await cli(['export', 'ansible', '--host', `web1=${dir}`, '--out', fleet]);
    assert.equal(x.code, 0, x.stderr);
    const cd = /^Next: cd (.*) && ansible-playbook/m.exec(x.stdout)?.[1];
    assert.ok(cd, x.stdout);
    const there = spawnSync('sh', ['-c', `cd ${cd} && pwd`], { encoding: 'utf8' });
    assert.equal(there.stdout.trim(), fleet, there.stderr);
  });

  test('audit’s next command is written the way qemu-harden runs', () => {
    const report: AuditReport = {
      format: AUDIT_FORMAT,
      root: true,
      processes: [],
      helpers: [],
      findings: [],
      unseen: [],
      answersOut: { file: 'a.yaml', guests: 1, notCarried: [] },
    };
    assert.match(
      formatAudit(report, 'npm start --'),
      /^Wrote answers for 1 guest to a\.yaml\.\nNext: npm start -- generate --answers a\.yaml --out qemu-harden-bundle$/m,
    );
  });
});
