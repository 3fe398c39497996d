// `qemu-harden audit`: the QEMU command-line reader on libvirt's and Proxmox's own command lines, then real QEMU
// processes (TCG, idle with -S) in deliberately bad shapes inside a private mount+PID+net namespace, and a guest
// from an applied bundle under real systemd in a container. The audit runs inside each, so it sees only the
// test's processes; nothing on the host changes.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { parseAnswersText } from '../src/sources/file.js';
import { parseCommandLine } from '../src/audit/cmdline.js';
import { redact, splitOpts } from '../src/qemuargs.js';
import { audit } from '../src/audit/command.js';
import { carriedOver } from '../src/audit/answers-out.js';
import { reconstruct } from '../src/audit/reconstruct.js';
import { commandLineOnly, viewOf, type QemuProcess } from '../src/audit/types.js';
import { listPresets } from '../src/sources/preset.js';
import { defaultTapDevice } from '../src/names.js';
import { qcow2Backing } from '../src/audit/files.js';
import { answerForDenial } from '../src/audit/denials.js';
import { parseDenial } from '../src/confine/apparmor.js';
import { hexAddress } from '../src/procfs.js';
import { Sidecar, TIME } from '../src/sidecar.js';
import { qemuArgs } from '../src/gen/qemu.js';
import { formatStatus, type StatusReport } from '../src/status.js';
import { DEBUG_EXIT_DEVICE, DEBUG_EXIT_STATUS, writeBootDisk } from './bootdisk.js';
import { makeCerts, makeDhParams } from './certs.js';
import { Container } from './container.js';
import {
  BIN,
  cli,
  cliProcess,
  generateBundle,
  guestFilesDir,
  REPO,
  requireTool,
  tempDir,
  waitUntil,
} from './helpers.js';

const CORPUS = join(REPO, '../shared/corpus');

/** A process known by its command line alone, as the audit would read it. */
function fromArgv(pid: number, argv: string[]): QemuProcess {
  const cmd = parseCommandLine(argv);
  return commandLineOnly(pid, argv, cmd, cmd.name ?? `pid ${pid}`);
}

/** The same process running as a system user, as /proc/PID/status would say. */
function asUid(p: QemuProcess, uid: number, user: string): QemuProcess {
  const ids = [uid, uid, uid, uid];
  return {
    ...p,
    status: new Map([['Uid', ids.join('\t')]]),
    uids: ids,
    owner: { uids: ids, gids: ids, groups: [], user, system: true },
  };
}

/** A libvirt .args or Proxmox .cmd file as an argv: continuation lines joined, single quotes removed, env dropped. */
function corpusArgv(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  const words: string[] = [];
  const re = /'([^']*)'|(\S+)/g;
  for (let m; (m = re.exec(text));) words.push(m[1] ?? m[2]!);
  return words.slice(words.findIndex((w) => w.startsWith('/')));
}

describe('the QEMU command-line reader', () => {
  test('",," is a literal comma in an option value, and bare keys mean on or off', () => {
    const o = splitOpts('file=/srv/a,,b.img,format=raw,readonly,nowait', undefined);
    assert.equal(o.get('file'), '/srv/a,b.img');
    assert.equal(o.get('readonly'), 'on');
    assert.equal(o.get('wait'), 'off');
    assert.equal(splitOpts('tcp:0.0.0.0:4444,server,nowait', 'spec').get('spec'), 'tcp:0.0.0.0:4444');
  });

  test('libvirt’s command line: name, machine, memory, sandbox, disks from -blockdev JSON with read-only', () => {
    const cmd = parseCommandLine(corpusArgv(join(CORPUS, 'libvirt/disk-boot-disk.args')));
    assert.equal(cmd.name, 'QEMUGuest1');
    assert.equal(cmd.machine, 'pc');
    assert.equal(cmd.memoryMiB, 214);
    assert.deepEqual(cmd.accel, ['tcg']);
    assert.equal(cmd.sandbox?.opts.get('spawn'), 'deny');
    assert.deepEqual(
      cmd.disks.map((d) => [d.path, d.protocol, d.readOnly]),
      [
        ['/dev/HostVG/QEMUGuest1', 'host_device', false],
        ['/dev/HostVG/QEMUGuest2', 'host_device', true],
      ],
    );
  });

  test('libvirt’s VNC with TLS and a telnet serial console are read as such', () => {
    const vnc = parseCommandLine(corpusArgv(join(CORPUS, 'libvirt/graphics-vnc-tls.args')));
    assert.equal(vnc.vnc?.opts.get('display'), '127.0.0.1:3');
    assert.equal(vnc.tlsCreds.get(vnc.vnc!.opts.get('tls-creds')!)?.dir, '/etc/pki/libvirt-vnc');
    const telnet = parseCommandLine(corpusArgv(join(CORPUS, 'libvirt/serial-tcp-telnet-chardev.args')));
    const tcp = telnet.chardevs.filter((c) => c.tcp);
    assert.ok(tcp.length > 0, 'a TCP chardev');
    assert.ok(
      tcp.some((c) => c.tcp!.telnet),
      'one of them telnet',
    );
  });

  test('Proxmox’s command line: throttle → raw → file chains resolve to the image and its format; rbd is a network disk', () => {
    const cmd = parseCommandLine(corpusArgv(join(CORPUS, 'proxmox/aio.conf.cmd')));
    const local = cmd.disks.filter((d) => d.protocol === 'file');
    assert.ok(local.length > 0);
    for (const d of local) assert.equal(d.format, d.path.endsWith('.qcow2') ? 'qcow2' : 'raw', d.path);
    assert.ok(
      cmd.disks.some((d) => d.protocol === 'rbd'),
      'the Ceph disk is not a local file',
    );
    assert.equal(cmd.machine, 'pc+pve0');
    assert.equal(cmd.chardevs.find((c) => c.unixPath?.endsWith('.qmp'))?.via, '-mon (QMP) chardev=qmp');
  });

  test('every libvirt and Proxmox command line in the corpus: every check runs, and the rebuilt answers pass the schema', () => {
    const files = [
      ...readdirSync(join(CORPUS, 'libvirt'))
        .filter((f) => f.endsWith('.args'))
        .map((f) => join(CORPUS, 'libvirt', f)),
      ...readdirSync(join(CORPUS, 'proxmox'))
        .filter((f) => f.endsWith('.cmd'))
        .map((f) => join(CORPUS, 'proxmox', f)),
    ];
    assert.ok(files.length > 50, `${files.length} command lines`);
    const processes = files.map((file, i) => asUid(fromArgv(1000 + i, corpusArgv(file)), 0, 'root'));
    const view = viewOf(processes);
    const report = audit(view);
    assert.equal(report.findings.filter((f) => f.check === 'process.root').length, files.length);
    assert.ok(
      report.findings.some((f) => f.check === 'listeners.chardev-tcp'),
      'a telnet serial console in the corpus',
    );
    assert.deepEqual(
      report.findings.filter((f) => f.check === 'process.removed-option'),
      [],
      'libvirt and Proxmox write what replaced the removed options (-machine acpi=off, hpet=off)',
    );
    for (const p of report.processes)
      for (const a of p.argv) assert.doesNotMatch(a, /"data":"[^(]/, 'secrets are redacted');
    const { doc, notCarried } = carriedOver(processes);
    const answers = validate(doc);
    const left = new Set(notCarried.filter((n) => n.choice === 'the whole guest').map((n) => n.guest));
    assert.equal(
      answers.guests.length + left.size,
      files.length,
      'every command line is rebuilt, or listed with the reason it cannot be',
    );
    assert.ok(answers.guests.length > 0, `${answers.guests.length} of ${files.length} carried`);
    assert.ok(
      notCarried.some((n) => n.choice === 'disks' && /rbd disk/.test(n.reason)),
      'Ceph disks are listed as not carried over',
    );
  });

  test('options QEMU removed since Debian 12: one low finding each, naming the option, the release and what replaced it', () => {
    const argv = [
      '/usr/bin/qemu-system-x86_64',
      '-name',
      'old',
      '-sandbox',
      'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
      '-no-hpet',
      '-no-acpi',
      '-runas',
      'nobody',
      '-device',
      '{"driver":"virtio-blk-pci","drive":"d0","scsi":false}',
      '-spice',
      'port=5930,addr=127.0.0.1,password=hunter2',
      '-virtfs',
      'proxy,mount_tag=h,sock_fd=4',
    ];
    const p = fromArgv(7, argv);
    const found = audit(viewOf([p])).findings.filter((f) => f.check === 'process.removed-option');
    assert.deepEqual(
      found.map((f) => [f.severity, f.evidence, f.answer]),
      [
        ['low', '-no-hpet', 'guests.N.hpet'],
        ['low', '-no-acpi', 'guests.N.acpi'],
        ['low', '-runas nobody', null],
        ['low', '-device {"driver":"virtio-blk-pci","drive":"d0","scsi":false}', null],
        ['low', '-spice port=5930,addr=127.0.0.1,password=(redacted)', null],
        ['low', '-virtfs proxy,mount_tag=h,sock_fd=4', null],
      ],
    );
    const [hpet, , runas] = found;
    assert.equal(hpet!.summary, 'uses -no-hpet, which QEMU 9.0 removed; -machine hpet=off replaces it');
    assert.match(
      hpet!.why,
      /^QEMU deprecated -no-hpet in 8\.0 and removed it in 9\.0: Debian 13 "trixie" \(QEMU 10\.0\) refuses to start with it; Ubuntu 24\.04 "noble" \(QEMU 8\.2\) still takes it, deprecated\. /,
    );
    assert.equal(hpet!.bundle, 'A guest whose answers say hpet: false gets -machine hpet=off.');
    assert.match(runas!.bundle, /own system user \(User=\), never as root/);
    assert.doesNotMatch(JSON.stringify(found), /hunter2/);
    // What replaced them, and a bundle's own command line for a guest without ACPI or HPET: nothing to report.
    const modern = fromArgv(8, [
      '/usr/bin/qemu-system-x86_64',
      '-machine',
      'q35,acpi=off,hpet=off',
      '-run-with',
      'user=nobody',
      '-device',
      'virtio-blk-pci,drive=d0',
    ]);
    const a = validate({
      schemaVersion: 1,
      useCase: 'virtualization',
      guests: [{ name: 'noacpi', acpi: false, hpet: false, disks: [{ path: '/srv/n.img', format: 'raw' }] }],
    });
    const bundled = fromArgv(9, [a.host.qemuBinary, ...qemuArgs(a, a.guests[0]!)]);
    assert.deepEqual(
      audit(viewOf([modern, bundled])).findings.filter((f) => f.check === 'process.removed-option'),
      [],
    );
    // --answers-out keeps what the old options and their replacements say.
    const back = reconstruct([p, modern, bundled]).doc.guests.map((g) => [g.acpi, g.hpet]);
    assert.deepEqual(back, [
      [false, false],
      [false, false],
      [false, false],
    ]);
  });

  test('a bundle’s own command lines round-trip: every preset’s guests come back with the same shape', () => {
    for (const preset of listPresets()) {
      const a = validate(preset.answers);
      const processes = a.guests.map((g, i) => fromArgv(100 + i, [a.host.qemuBinary, ...qemuArgs(a, g)]));
      const back = validate(reconstruct(processes).doc);
      const shape = (x: typeof a) =>
        x.guests.map((g) => ({
          name: g.name,
          vcpus: g.vcpus,
          memoryMiB: g.memoryMiB,
          machine: g.machine,
          firmware: g.firmware.type,
          disks: g.disks.map((d) => ({
            path: d.path,
            format: d.format,
            readOnly: d.readOnly,
            blockDevice: d.blockDevice,
          })),
          network: g.network.mode,
          tap: g.network.mode === 'tap' ? (g.network.tapDevice ?? defaultTapDevice(g.name)) : undefined,
          display: g.display,
          sandbox: g.isolation.sandbox,
        }));
      assert.deepEqual(shape(back), shape(a), preset.name);
    }
  });

  test('guests sharing a user: high, or medium when each has its own enforced AppArmor profile (libvirt’s way)', () => {
    const proc = (pid: number, label: string | undefined): QemuProcess => {
      const argv = [
        '/usr/bin/qemu-system-x86_64',
        '-name',
        `g${pid}`,
        '-sandbox',
        'on,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
      ];
      return {
        ...asUid(fromArgv(pid, argv), 64055, 'libvirt-qemu'),
        labels: label === undefined ? {} : { apparmor: label },
      };
    };
    const severity = (labels: (string | undefined)[]) =>
      audit(viewOf(labels.map((l, i) => proc(10 + i, l))))
        .findings.filter((f) => f.check === 'process.shared-uid')
        .map((f) => f.severity);
    assert.deepEqual(severity(['libvirt-1 (enforce)', 'libvirt-2 (enforce)']), ['medium', 'medium']);
    assert.deepEqual(severity(['libvirt-1 (enforce)', 'unconfined']), ['high', 'high']);
    assert.deepEqual(severity(['libvirt-1 (enforce)', 'libvirt-1 (enforce)']), ['high', 'high']);
    assert.deepEqual(severity([undefined, undefined]), ['high', 'high']);
  });

  test('secrets on a command line are redacted wherever it is shown', () => {
    assert.equal(redact('secret,id=s0,data=hunter2,,x'), 'secret,id=s0,data=(redacted)');
    assert.equal(redact('port=5930,password=hunter2,addr=::'), 'port=5930,password=(redacted),addr=::');
    assert.equal(redact('unix:/run/vnc.sock,password=on'), 'unix:/run/vnc.sock,password=on');
    assert.equal(
      redact('{"qom-type":"secret","id":"s","data":"hun\\"ter"}'),
      '{"qom-type":"secret","id":"s","data":"(redacted)"}',
    );
  });

  test('/proc/net/tcp6 addresses read as the kernel wrote them', () => {
    assert.equal(hexAddress('0100007F'), '127.0.0.1');
    assert.equal(hexAddress('00000000000000000000000000000000'), '::');
    assert.equal(hexAddress('00000000000000000000000001000000'), '::1');
    assert.equal(hexAddress('0000000000000000FFFF00000100007F'), '127.0.0.1');
  });

  test('the qcow2 header gives the backing file, read without running qemu-img', async (t) => {
    requireTool('qemu-img', 'qemu-utils');
    const dir = tempDir(t);
    writeFileSync(join(dir, 'base.raw'), Buffer.alloc(65536));
    assert.equal(
      spawnSync('qemu-img', [
        'create',
        '-q',
        '-u',
        '-f',
        'qcow2',
        '-b',
        '../other/base.raw',
        '-F',
        'raw',
        join(dir, 'top.qcow2'),
        '1M',
      ]).status,
      0,
    );
    const reader = new Sidecar();
    try {
      assert.deepEqual(await qcow2Backing(join(dir, 'top.qcow2'), reader), { ok: '../other/base.raw' });
      assert.deepEqual(await qcow2Backing(join(dir, 'base.raw'), reader), { ok: undefined });
    } finally {
      await reader.close();
    }
  });

  test('where the reading process starts slowly, the look at the host is given as many times longer', async () => {
    // A start slower than briskStartMs is what a host with every core busy, or a TCG VM, shows: counted against a
    // brisk start of 1 ms, any real start of Node is one. Unstretched, a slow host's own QEMUs went unread.
    const brisk = TIME.briskStartMs;
    TIME.briskStartMs = 1;
    const reader = new Sidecar();
    try {
      const from = Date.now();
      const deadline = await reader.started();
      const startMs = Date.now() - from;
      assert.ok(startMs >= 3, `Node started in ${startMs} ms`);
      const given = deadline - Date.now();
      assert.ok(given > TIME.totalMs * 2, `${given} ms given after a start of ${startMs} ms`);
      const r = await reader.read('/proc/self/status', 0, 64);
      assert.ok('ok' in r && r.ok.toString().startsWith('Name:'), JSON.stringify(r));
    } finally {
      TIME.briskStartMs = brisk;
      await reader.close();
    }
  });

  test('AppArmor denials for QEMU map to the answer that grants what was denied', () => {
    const line =
      'audit: type=1400 audit(1.2:3): apparmor="DENIED" operation="open" profile="qemu-harden-web" name="/srv/extra.img" pid=9 comm="qemu-system-x86" requested_mask="r" denied_mask="r" fsuid=999 ouid=0';
    const d = parseDenial(line)!;
    assert.equal(d.label, 'qemu-harden-web');
    assert.equal(answerForDenial(d, undefined).answer, 'guests.N.disks');
    assert.equal(answerForDenial({ ...d, name: '/dev/kvm' }, undefined).answer, 'useCase');
    assert.equal(answerForDenial({ ...d, name: '/dev/net/tun' }, undefined).answer, 'guests.N.network');
    assert.equal(
      parseDenial(line.replace('qemu-harden-web', 'usr.sbin.cupsd').replace('qemu-system-x86', 'cupsd')),
      undefined,
    );
  });
});

describe('audit on the command line', () => {
  test('audit loads no Zod, YAML or generator code; --answers-out loads the answers schema only then', async (t) => {
    const dir = tempDir(t);
    const hooks = join(dir, 'hooks.mjs');
    const register = join(dir, 'register.mjs');
    writeFileSync(
      hooks,
      "import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) {\n  appendFileSync(process.env.QH_LOAD_LOG, url + '\\n');\n  return next(url, context);\n}\n",
    );
    writeFileSync(
      register,
      `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
    );
    const loaded = (args: string[]) => {
      const log = join(dir, `${args.length}.log`);
      writeFileSync(log, '');
      const r = cliProcess(args, {
        env: { QH_LOAD_LOG: log, NODE_OPTIONS: `--import=${pathToFileURL(register).href}` },
      });
      assert.ok(r.code === 0 || r.code === 1 || r.code === 2, r.stderr);
      const files = readFileSync(log, 'utf8')
        .split('\n')
        .filter((u) => /\/dist\/[^/]+\.js$/.test(u))
        .map((u) => fileURLToPath(u));
      assert.ok(
        files.some((f) => f.endsWith('/dist/qemu-harden.js')),
        'the load hook saw the entry point',
      );
      return files.map((f) => readFileSync(f, 'utf8')).join('\n');
    };
    const plain = loaded(['audit', '--json']);
    assert.match(plain, /qemu-harden-audit\/1/, 'the audit chunk was loaded');
    for (const marker of ['ZodError', 'YAMLParseError', 'Generated by qemu-harden'])
      assert.ok(!plain.includes(marker), `audit loaded ${marker}`);
    const withOut = loaded(['audit', '--json', '--answers-out', join(dir, 'missing-dir', 'a.yaml')]);
    assert.ok(
      withOut.includes('ZodError') && withOut.includes('YAMLParseError'),
      '--answers-out loads the schema and YAML',
    );
  });

  test('usage errors exit 2 with a message and write nothing', async (t) => {
    const dir = tempDir(t);
    const r = await cli(['audit', 'extra']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^qemu-harden: unexpected argument extra\n$/);
    assert.match((await cli(['audit', '--answers-out'])).stderr, /--answers-out needs a value/);
    assert.match((await cli(['audit', '--force'])).stderr, /--force only applies with --answers-out FILE/);
    const txt = await cli(['audit', '--answers-out', join(dir, 'answers.txt')]);
    assert.equal(txt.code, 2);
    assert.match(txt.stderr, /answers\.txt: the name must end in \.yaml, \.yml or \.json/);
    const existing = join(dir, 'answers.yaml');
    writeFileSync(existing, 'keep me\n');
    const e = await cli(['audit', '--answers-out', existing]);
    assert.equal(e.code, 2);
    assert.match(e.stderr, /--answers-out: .*(already exists|no QEMU process)/);
    assert.equal(readFileSync(existing, 'utf8'), 'keep me\n');
    assert.deepEqual(readdirSync(dir), ['answers.yaml'], 'no temporary file left behind');
  });
});

/** Every file under /etc (type, mode, owner, content) and the modes of the host's device nodes, as one hash. */
function hostFingerprint(): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      h.update(`${p}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) h.update(readlinkSync(p));
      else if (st.isFile()) h.update(readFileSync(p));
    }
  };
  walk('/etc');
  for (const dev of ['/dev/kvm', '/dev/net/tun', '/dev/vhost-net']) {
    const st = existsSync(dev) ? statSync(dev) : undefined;
    h.update(`${dev}\0${st ? `${st.mode}:${st.uid}:${st.gid}` : 'absent'}\0`);
  }
  return h.digest('hex');
}

interface AuditJson {
  format: string;
  root: boolean;
  processes: {
    pid: number;
    guest: string;
    uid: number;
    user: string | null;
    systemUser: boolean;
    accelerator: string;
    argv: string[];
  }[];
  findings: {
    check: string;
    severity: string;
    guest: string | null;
    pid: number | null;
    summary: string;
    evidence: string;
    why: string;
    bundle: string;
  }[];
  unseen: { what: string; reason: string }[];
  answersOut: { file: string; guests: number; notCarried: { guest: string; choice: string; reason: string }[] } | null;
}

const checksOf = (r: AuditJson, guest: string | null) =>
  r.findings
    .filter((f) => f.guest === guest)
    .map((f) => f.check)
    .sort();

const CGROUP = ['process.cgroup-memory', 'process.cgroup-pids'];

describe('audit of QEMU processes in bad shapes, in a private mount+PID+net namespace', () => {
  const dir = guestFilesDir({ after }, 'qh-audit-');
  let ns: ChildProcess | undefined;
  let nsPid = 0;
  const fingerprint = hostFingerprint();
  const qemu = '/usr/bin/qemu-system-x86_64';
  const common = [
    '-nodefaults',
    '-no-user-config',
    '-S',
    '-display',
    'none',
    '-machine',
    'q35',
    '-accel',
    'tcg',
    '-m',
    '32',
  ];
  const sandbox = ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny'];
  const img = (n: string) => join(dir, 'images', n);
  const as = (uid: number) => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  // The careless deployments run as system users (below UID_MIN), as libvirt's and Proxmox's do; the ordinary
  // users of this host are 4246 (who runs audit without root), 4250 and 4251 (who start hostile processes).
  const SYS = { shared: 942, vnc: 943, qmp: 944, open: 945, net: 947, tlsOff: 948, tlsAnon: 949, tlsVerified: 950 };
  const AUDITOR = 4246;
  const EVIL = 4250;
  const HOSTILE = 4251;
  const pki = (n: string) => join(dir, 'pki', n);
  const GUESTS: Record<string, string[]> = {
    rootguest: [
      qemu,
      '-name',
      'guest=rootguest',
      ...common,
      '-qmp',
      'tcp:127.0.0.1:4448,server=on,wait=off',
      '-drive',
      `file=${img('root.img')},format=raw,if=virtio`,
    ],
    vncguest: [...as(SYS.vnc), qemu, '-name', 'vncguest', ...common, '-sandbox', 'no', '-vnc', '0.0.0.0:1'],
    qmpguest: [
      ...as(SYS.qmp),
      qemu,
      '-name',
      'qmpguest',
      ...common,
      ...sandbox,
      '-qmp',
      'tcp:0.0.0.0:4444,server=on,wait=off',
    ],
    openguest: [
      ...as(SYS.open),
      qemu,
      '-name',
      'openguest',
      ...common,
      ...sandbox,
      '-qmp',
      `unix:${join(dir, 'run/qmp.sock')},server=on,wait=off`,
      '-drive',
      `file=${img('open,,disk.img')},format=raw,if=virtio`,
    ],
    'shared-a': [
      ...as(SYS.shared),
      qemu,
      '-name',
      'shared-a',
      ...common,
      ...sandbox,
      '-drive',
      `file=${img('a/overlay.qcow2')},format=qcow2,if=virtio`,
    ],
    'shared-b': [
      ...as(SYS.shared),
      qemu,
      '-name',
      'shared-b',
      ...common,
      ...sandbox,
      '-drive',
      `file=${img('b/disk.img')},format=raw,if=virtio,readonly=on`,
    ],
    netguest: [
      ...as(SYS.net),
      qemu,
      '-name',
      'netguest',
      ...common,
      ...sandbox,
      '-incoming',
      'tcp:0.0.0.0:4446',
      '-serial',
      'telnet:0.0.0.0:4447,server=on,wait=off',
      '-spice',
      'port=5930,addr=0.0.0.0,disable-ticketing=on',
      '-drive',
      `file=${img('net.img')},if=virtio`,
    ],
    // VNC over TLS three ways: x509 that checks no client, anonymous TLS, and x509 that checks client certificates.
    'vnc-tls-off': [
      ...as(SYS.tlsOff),
      qemu,
      '-name',
      'vnc-tls-off',
      ...common,
      ...sandbox,
      '-object',
      `tls-creds-x509,id=tlsoff,dir=${pki('x509')},endpoint=server,verify-peer=off`,
      '-vnc',
      '0.0.0.0:2,tls-creds=tlsoff',
    ],
    'vnc-tls-anon': [
      ...as(SYS.tlsAnon),
      qemu,
      '-name',
      'vnc-tls-anon',
      ...common,
      ...sandbox,
      '-object',
      `tls-creds-anon,id=tlsanon,dir=${pki('anon')},endpoint=server`,
      '-vnc',
      '0.0.0.0:4,tls-creds=tlsanon',
    ],
    'vnc-tls-verified': [
      ...as(SYS.tlsVerified),
      qemu,
      '-name',
      'vnc-tls-verified',
      ...common,
      ...sandbox,
      '-object',
      `tls-creds-x509,id=tlson,dir=${pki('x509')},endpoint=server`,
      '-vnc',
      '0.0.0.0:5,tls-creds=tlson',
    ],
  };
  const fake = join(dir, 'bin/qemu-system-x86_64');
  const hostile = (n: string) => join(dir, 'hostile', n);
  const evilHome = join(dir, 'home/evil');
  /** A name made to forge lines of the text report: clear the screen, a process line claiming uid 997, a verdict. */
  const FORGED = `x\u001b[2J\u001b[H\n  pid 1  web  user qemu-web (uid 997)  kvm\n\nNo findings.\n\u001b]0;owned\u0007\u202eevil`;
  /** Processes of ordinary users, started from a stand-in program that opens nothing (scripts/fake-qemu.mjs). */
  const FAKES: Record<string, { uid: number; argv: string[] }> = {
    // The attack of #20: root's --answers-out would hand this user the host's root disk, a kernel it cannot read,
    // and a network console its own certificates open.
    evil: {
      uid: EVIL,
      argv: [
        fake,
        '-name',
        'evil',
        '-accel',
        'kvm',
        '-drive',
        'file=/dev/vda,format=raw,if=virtio',
        '-drive',
        `file=${join(evilHome, 'own.img')},format=raw,if=virtio`,
        '-drive',
        `file=${img('acl-granted.img')},format=raw,if=virtio`,
        '-drive',
        `file=${img('acl-denied.img')},format=raw,if=virtio,readonly=on`,
        '-kernel',
        join(dir, 'private/vmlinuz'),
        '-object',
        `tls-creds-x509,id=tls0,dir=${join(evilHome, 'pki')},endpoint=server`,
        '-vnc',
        '0.0.0.0:3,tls-creds=tls0',
      ],
    },
    inject: { uid: HOSTILE, argv: [fake, '-name', FORGED, '-drive', 'file=/srv/\u001b[31mred\u001b[0m.img'] },
    fifo: {
      uid: HOSTILE,
      argv: [
        fake,
        '-name',
        'fifo',
        '-drive',
        `file=${hostile('disk.fifo')},format=qcow2`,
        '-drive',
        `file=${hostile('probe.fifo')}`,
      ],
    },
    // Devices named as disks; it has no -name.
    devices: {
      uid: HOSTILE,
      argv: [fake, '-drive', 'file=/dev/watchdog,format=qcow2', '-drive', 'file=/dev/tty,format=qcow2'],
    },
    deep: { uid: HOSTILE, argv: [fake, '-name', 'deep', '-blockdev', '$(cat deep.json)'] },
    huge: { uid: HOSTILE, argv: [fake, '-name', 'huge', '-append', '$(cat big)', '$(cat big)', '$(cat big)'] },
    hung: {
      uid: HOSTILE,
      argv: [fake, '-name', 'hung', '-drive', `file=${join(dir, 'hung/disk.qcow2')},format=qcow2`],
    },
  };
  /** The paths the hostile processes name that must never be opened (a stat, or an O_PATH open, is fine). */
  const NEVER_OPENED = [
    hostile('disk.fifo'),
    hostile('probe.fifo'),
    '/dev/watchdog',
    '/dev/tty',
    '/dev/vda',
    join(dir, 'hung'),
  ];
  const DEV_NODES: [string, string, string, number, number][] = [
    ['/dev/null', '0666', 'c', 1, 3],
    ['/dev/zero', '0666', 'c', 1, 5],
    ['/dev/urandom', '0666', 'c', 1, 9],
    ['/dev/kmsg', '0644', 'c', 1, 11],
    ['/dev/kvm', '0666', 'c', 10, 232],
    ['/dev/net/tun', '0600', 'c', 10, 200],
    ['/dev/vfio/vfio', '0666', 'c', 10, 196],
    ['/dev/vfio/7', '0600', 'c', 10, 196],
    ['/dev/fuse', '0666', 'c', 10, 229],
    // Stand-ins under the names hostile processes give: were one opened, it would be /dev/null's driver, or a
    // block device no driver serves (major 240 is reserved for local use).
    ['/dev/watchdog', '0600', 'c', 1, 3],
    ['/dev/tty', '0666', 'c', 5, 0],
    ['/dev/vda', '0660', 'b', 240, 0],
  ];
  const apparmorOn = (() => {
    try {
      return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
    } catch {
      return false;
    }
  })();
  const EXPECTED: Record<string, string[]> = {
    rootguest: [
      'listeners.monitor-tcp-root',
      'listeners.unexplained-tcp',
      'process.capabilities',
      'process.no-new-privs',
      'process.root',
      'process.sandbox',
      'process.seccomp',
    ],
    // -sandbox no: no seccomp filter, so QEMU does not set no_new_privs for one either.
    vncguest: ['listeners.vnc', 'process.no-new-privs', 'process.sandbox', 'process.seccomp'],
    qmpguest: ['listeners.monitor-tcp'],
    openguest: ['files.image-mode', 'files.socket-mode'],
    'shared-a': ['files.backing-file', 'files.cross-guest', 'process.shared-uid'],
    'shared-b': ['files.cross-guest', 'process.shared-uid'],
    netguest: ['files.format-probed', 'listeners.chardev-tcp', 'listeners.incoming', 'listeners.spice'],
    'vnc-tls-off': ['listeners.vnc'],
    'vnc-tls-anon': ['listeners.vnc'],
    'vnc-tls-verified': [],
  };
  /** The unix QMP socket each guest answers on (umask 077: no finding); openguest's is made 0666. */
  const readyPath = (name: string) =>
    name === 'openguest' ? join(dir, 'run/qmp.sock') : join(dir, 'run', `${name}.ready`);
  const inside = (argv: string[], uid?: number) => {
    const r = spawnSync(
      'nsenter',
      ['-t', String(nsPid), '-m', '-p', '-n', ...(uid === undefined ? [] : as(uid)), ...argv],
      { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * 1024 * 1024 },
    );
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const auditIn = (args: string[], uid?: number) => {
    const r = inside([process.execPath, BIN, 'audit', '--json', ...args], uid);
    assert.ok(r.code === 0 || r.code === 1, `audit exited ${r.code}: ${r.stderr}`);
    return { code: r.code, json: JSON.parse(r.stdout) as AuditJson };
  };
  const fakePids = new Map<string, number>();

  // The namespace's init is killed, not unshare: unshare ends once init is reaped, and init is reaped only after
  // every process of its namespace has exited, so the QEMUs' image locks are released by then. Killing unshare
  // would end it at once, with the QEMUs still exiting.
  const stopNamespace = async () => {
    if (ns && ns.exitCode === null && ns.signalCode === null) {
      const exited = new Promise((r) => ns!.once('exit', r));
      if (nsPid) process.kill(nsPid, 'SIGKILL');
      else ns.kill('SIGKILL');
      await exited;
    }
  };
  after(async () => {
    await stopNamespace();
    assert.equal(hostFingerprint(), fingerprint, '/etc and the host’s device node modes are unchanged');
  });

  before(async () => {
    for (const [tool, pkg] of [
      ['unshare', 'util-linux'],
      ['nsenter', 'util-linux'],
      ['setpriv', 'util-linux'],
      ['mount', 'mount'],
      ['qemu-system-x86_64', 'qemu-system-x86'],
      ['qemu-img', 'qemu-utils'],
      ['ip', 'iproute2'],
      ['openssl', 'openssl'],
      ['setfacl', 'acl'],
      ['strace', 'strace'],
    ] as const)
      requireTool(tool, pkg);
    chmodSync(dir, 0o755);
    for (const d of ['images', 'images/a', 'images/b', 'base', 'run', 'bin', 'hostile', 'hung', 'pki/anon'])
      mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
    chmodSync(join(dir, 'run'), 0o777);
    writeBootDisk(img('root.img'));
    chmodSync(img('root.img'), 0o600);
    writeBootDisk(img('open,disk.img'));
    chmodSync(img('open,disk.img'), 0o666);
    writeBootDisk(join(dir, 'base/base.raw'));
    chmodSync(join(dir, 'base/base.raw'), 0o644);
    assert.equal(
      spawnSync('qemu-img', [
        'create',
        '-q',
        '-f',
        'qcow2',
        '-b',
        '../../base/base.raw',
        '-F',
        'raw',
        img('a/overlay.qcow2'),
      ]).status,
      0,
    );
    writeBootDisk(img('b/disk.img'));
    writeBootDisk(img('net.img'));
    chownSync(img('net.img'), SYS.net, SYS.net);
    chmodSync(img('net.img'), 0o600);
    for (const f of ['a/overlay.qcow2', 'b/disk.img']) {
      chownSync(img(f), SYS.shared, SYS.shared);
      chmodSync(img(f), 0o600);
    }
    for (const d of ['a', 'b']) chownSync(img(d), SYS.shared, SYS.shared);

    // TLS credentials for the VNC guests, readable by their users (this is a test, not a deployment).
    mkdirSync(pki('x509'), { mode: 0o755 });
    makeCerts(pki('x509'));
    makeDhParams(pki('anon/dh-params.pem'));
    for (const d of ['x509', 'anon']) for (const f of readdirSync(pki(d))) chmodSync(join(pki(d), f), 0o644);

    // The ordinary user's own files: a disk and TLS credentials in a home only they can enter; a kernel only root
    // can read; a root-owned disk whose ACL grants them read and write, and a world-readable one whose ACL
    // denies them.
    mkdirSync(join(evilHome, 'pki'), { recursive: true, mode: 0o700 });
    writeBootDisk(join(evilHome, 'own.img'));
    makeCerts(join(evilHome, 'pki'));
    for (const p of [join(dir, 'home'), evilHome]) chmodSync(p, p === evilHome ? 0o700 : 0o755);
    execFileSync('chown', ['-R', `${EVIL}:${EVIL}`, evilHome]);
    mkdirSync(join(dir, 'private'), { mode: 0o700 });
    writeFileSync(join(dir, 'private/vmlinuz'), 'not a kernel', { mode: 0o600 });
    writeBootDisk(img('acl-granted.img'));
    chmodSync(img('acl-granted.img'), 0o600);
    execFileSync('setfacl', ['-m', `u:${EVIL}:rw`, img('acl-granted.img')]);
    writeBootDisk(img('acl-denied.img'));
    chmodSync(img('acl-denied.img'), 0o644);
    execFileSync('setfacl', ['-m', `u:${EVIL}:---`, img('acl-denied.img')]);

    // The hostile processes' material: FIFOs as disks, a -blockdev nested 60,000 deep, three 120,000-byte
    // arguments (a command line past the 256 KiB audit reads), and the stand-in program itself.
    for (const f of ['disk.fifo', 'probe.fifo']) execFileSync('mkfifo', [hostile(f)]);
    writeFileSync(hostile('deep.json'), `{"driver":"raw","file":${'['.repeat(60_000)}${']'.repeat(60_000)}}`);
    writeFileSync(hostile('big'), 'a'.repeat(120_000));
    execFileSync(process.execPath, [join(REPO, 'scripts/fake-qemu.mjs'), fake]);

    const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    /** A word of a fake's command line: $(cat FILE) reads a file of dir/hostile (too long for this script). */
    const word = (s: string) => (/^\$\(cat \w+(\.json)?\)$/.test(s) ? `"$(cat ${q(hostile(s.slice(6, -1)))})"` : q(s));
    const script = [
      'set -e',
      'ip link set lo up',
      // A private /dev: the host's device nodes are never touched, and the test does not depend on their modes.
      'mount -t tmpfs -o mode=0755 none /dev',
      'mkdir /dev/net /dev/vfio',
      ...DEV_NODES.map(([path, mode, kind, major, minor]) => `mknod -m ${mode} ${path} ${kind} ${major} ${minor}`),
      // A FUSE file system that never answers: every stat below it waits until the namespace ends.
      'exec 3<>/dev/fuse',
      `mount -i -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 qh-hung ${q(join(dir, 'hung'))}`,
      ...Object.entries(GUESTS).map(([name, argv]) => {
        const ready = name === 'openguest' ? [] : ['-qmp', `unix:${readyPath(name)},server=on,wait=off`];
        return `(umask 077; exec ${[...argv, ...ready].map(q).join(' ')}) </dev/null >>${q(join(dir, 'qemu.log'))} 2>&1 &`;
      }),
      ...Object.entries(FAKES).map(
        ([name, f]) =>
          `(exec ${as(f.uid).map(q).join(' ')} ${f.argv.map(word).join(' ')}) </dev/null >/dev/null 2>&1 &\necho ${name} $! >>${q(hostile('pids'))}`,
      ),
      'wait',
    ].join('\n');
    ns = spawn('unshare', ['--mount', '--pid', '--net', '--fork', '--mount-proc', '--kill-child', 'sh', '-c', script], {
      stdio: 'ignore',
    });
    nsPid = Number(
      await waitUntil(
        'the namespace’s init',
        () => readdirSync('/proc').find((p) => /^\d+$/.test(p) && parentOf(p) === String(ns!.pid)),
        { everyMs: 100 },
      ),
    );
    // A QMP greeting means QEMU reached its main loop: every disk, socket and listener of that guest exists.
    for (const name of Object.keys(GUESTS))
      await qmpGreeting(readyPath(name), () => readFileSync(join(dir, 'qemu.log'), 'utf8'));
    // Each stand-in has run once its command line is its own (setpriv has executed it).
    for (let i = 0; i < 200; i++) {
      const started = existsSync(hostile('pids')) ? readFileSync(hostile('pids'), 'utf8').trim().split('\n') : [];
      const ran = inside([
        'sh',
        '-c',
        `for p in ${started.map((l) => l.split(' ')[1]).join(' ')}; do head -c ${fake.length} /proc/$p/cmdline; echo; done`,
      ]).stdout.split('\n');
      for (const [j, line] of started.entries()) {
        const [name, pid] = line.split(' ');
        if (ran[j] === fake) fakePids.set(name!, Number(pid));
      }
      if (fakePids.size === Object.keys(FAKES).length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(fakePids.size, Object.keys(FAKES).length, `every stand-in runs: ${[...fakePids.keys()].join(' ')}`);
    // The careless deployment this guest stands for: its QMP socket opened up to every user.
    chmodSync(readyPath('openguest'), 0o666);
    // An NBD export started through the monitor, as management tools do: on no command line, and without TLS.
    const reply = await qmp(readyPath('rootguest'), [
      { execute: 'qmp_capabilities' },
      { execute: 'nbd-server-start', arguments: { addr: { type: 'inet', data: { host: '0.0.0.0', port: '10809' } } } },
    ]);
    assert.deepEqual(reply, [{ return: {} }, { return: {} }]);
  });

  test('as root it sees exactly the test’s QEMU processes and reports exactly the expected findings for each', () => {
    const started = Date.now();
    const { code, json } = auditIn([]);
    const took = Date.now() - started;
    const log = existsSync(join(dir, 'qemu.log')) ? readFileSync(join(dir, 'qemu.log'), 'utf8') : '';
    assert.equal(json.format, 'qemu-harden-audit/1');
    assert.equal(json.root, true);
    const devices = fakePids.get('devices')!;
    assert.deepEqual(
      json.processes.map((p) => p.guest).sort(),
      [
        ...Object.keys(GUESTS),
        ...Object.keys(FAKES).map((n) => (n === 'inject' ? FORGED : n === 'devices' ? `pid ${devices}` : n)),
      ].sort(),
      log,
    );
    for (const [guest, checks] of Object.entries(EXPECTED))
      assert.deepEqual(
        checksOf(json, guest),
        [...checks, ...CGROUP, 'process.tcg'].sort(),
        `${guest}: ${JSON.stringify(
          json.findings.filter((f) => f.guest === guest),
          null,
          1,
        )}`,
      );
    assert.deepEqual(checksOf(json, null), [
      ...(apparmorOn ? [] : ['host.apparmor']),
      'host.device-mode',
      'host.device-mode',
    ]);
    assert.equal(code, 1);
    // What the hostile processes kept from being read is said, and nothing else is missing.
    assert.deepEqual(json.unseen.map((u) => u.what).sort(), [
      `deep (pid ${fakePids.get('deep')}): its -blockdev option, so it is not judged`,
      `huge (pid ${fakePids.get('huge')}): its command line past the first 256 KiB, so only its beginning is judged`,
      `hung (pid ${fakePids.get('hung')}): ${join(dir, 'hung')}, so its type, owner and mode are not judged`,
      `hung (pid ${fakePids.get('hung')}): ${join(dir, 'hung/disk.qcow2')}, so its type, owner and mode are not judged`,
    ]);
    assert.match(json.unseen.find((u) => u.what.startsWith('deep'))!.reason, /nested deeper than 64 levels/);
    assert.ok(
      json.unseen.filter((u) => u.what.startsWith('hung')).every((u) => /^no answer within \d+ ms$/.test(u.reason)),
    );
    assert.ok(took < 60_000, `audit took ${took} ms with a file system that never answers`);

    const f = (guest: string, check: string) => json.findings.find((x) => x.guest === guest && x.check === check)!;
    assert.match(f('rootguest', 'process.root').evidence, /^\/proc\/\d+\/status: Uid:\t0\t0\t0\t0$/);
    assert.match(f('rootguest', 'listeners.monitor-tcp-root').summary, /^any local user is root: /);
    assert.match(
      f('rootguest', 'listeners.monitor-tcp-root').evidence,
      /^-qmp tcp:127\.0\.0\.1:4448,server=on,wait=off; listening: 127\.0\.0\.1:4448 tcp LISTEN; /,
    );
    assert.equal(f('vncguest', 'listeners.vnc').evidence, '-vnc 0.0.0.0:1; listening: 0.0.0.0:5901 tcp LISTEN');
    assert.equal(
      f('vncguest', 'process.sandbox').summary,
      'QEMU’s seccomp sandbox is off (-sandbox no)'.replace('’', "'"),
    );
    assert.equal(
      f('qmpguest', 'listeners.monitor-tcp').evidence,
      '-qmp tcp:0.0.0.0:4444,server=on,wait=off; listening: 0.0.0.0:4444 tcp LISTEN',
    );
    assert.equal(f('openguest', 'files.image-mode').evidence, `${img('open,disk.img')}: mode 0666, owner 0:0`);
    assert.match(f('openguest', 'files.socket-mode').evidence, /run\/qmp\.sock: mode 0666, owner 945:945$/);
    assert.match(f('shared-a', 'files.backing-file').evidence, /qcow2 backing file "\.\.\/\.\.\/base\/base\.raw"/);
    assert.match(
      f('rootguest', 'listeners.unexplained-tcp').evidence,
      /^listening: 0\.0\.0\.0:10809 tcp LISTEN \(socket inode \d+, on no option of the command line\)$/,
    );
    assert.equal(
      f('netguest', 'listeners.spice').evidence,
      '-spice port=5930,addr=0.0.0.0,disable-ticketing=on; listening: 0.0.0.0:5930 tcp LISTEN',
    );
    assert.equal(f('netguest', 'listeners.spice').severity, 'high');
    assert.equal(
      f('netguest', 'listeners.incoming').evidence,
      '-incoming tcp:0.0.0.0:4446; listening: 0.0.0.0:4446 tcp LISTEN',
    );
    assert.equal(
      f('netguest', 'listeners.chardev-tcp').evidence,
      '-serial telnet:0.0.0.0:4447,server=on,wait=off; listening: 0.0.0.0:4447 tcp LISTEN',
    );
    assert.match(f('shared-a', 'files.cross-guest').evidence, /readable by shared-b \(pid \d+, uid 942\)$/);
    assert.deepEqual(
      json.findings.filter((x) => x.check === 'host.device-mode').map((x) => x.evidence),
      ['/dev/vfio/vfio: mode 0666, owner 0:0', '/dev/kvm: mode 0666, owner 0:0'],
    );
    for (const x of json.findings)
      assert.ok(
        x.summary.length > 5 && x.why.length > 20 && x.bundle.length > 20,
        `${x.check} says what, why and what the bundle does`,
      );

    const text = inside([process.execPath, BIN, 'audit']);
    assert.equal(text.code, 1);
    for (const g of Object.keys(GUESTS)) assert.match(text.stdout, new RegExp(`^${g} \\(pid \\d+\\):$`, 'm'));
    assert.match(
      text.stdout,
      /^ {2}\[high\] listeners\.monitor-tcp: QMP monitor on 0\.0\.0\.0:4444 over TCP, without authentication\n {4}read: {4}-qmp tcp:0\.0\.0\.0:4444/m,
    );
    // A process without -name is called by its pid alone, once.
    assert.match(
      text.stdout,
      new RegExp(`^ {2}pid ${devices} {2}\\(no -name\\) {2}uid ${HOSTILE}, not a system user {2}tcg$`, 'm'),
    );
    assert.match(text.stdout, new RegExp(`^pid ${devices}:$`, 'm'));
    assert.match(text.stdout, /^ {2}pid \d+ {2}rootguest {2}user root \(uid 0\) {2}tcg$/m);
    assert.match(
      text.stdout,
      new RegExp(`^${json.findings.filter((x) => x.severity !== 'info').length} findings\\.$`, 'm'),
    );
  });

  test('who owns each process is shown; an ordinary user’s QEMU is carried by --answers-out only when named, and then with only the paths that user can open', async () => {
    const { json } = auditIn([]);
    const evil = json.processes.find((p) => p.guest === 'evil')!;
    assert.deepEqual([evil.uid, evil.user, evil.systemUser], [EVIL, null, false]);
    for (const g of Object.keys(GUESTS))
      assert.equal(json.processes.find((p) => p.guest === g)!.systemUser, true, `${g} runs as a system user`);
    assert.equal(json.processes.find((p) => p.guest === 'rootguest')!.user, 'root');
    assert.match(
      inside([process.execPath, BIN, 'audit']).stdout,
      new RegExp(`^ {2}pid ${evil.pid} {2}evil {2}uid ${EVIL}, not a system user {2}tcg$`, 'm'),
    );

    // Not named: nothing of it reaches the answers.
    const plain = join(dir, 'answers-plain.yaml');
    const left = auditIn(['--answers-out', plain]).json.answersOut!.notCarried.filter((n) => n.guest === 'evil');
    assert.deepEqual(
      left.map((n) => n.choice),
      ['the whole guest'],
    );
    assert.match(
      left[0]!.reason,
      new RegExp(`started by uid ${EVIL}, not a system user.*--include-user-process ${evil.pid}`),
    );
    const plainDoc = parseAnswersText(readFileSync(plain, 'utf8'), plain) as { guests: { name: string }[] };
    assert.ok(!plainDoc.guests.some((g) => g.name === 'evil'));
    const plainText = readFileSync(plain, 'utf8')
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join('\n');
    for (const p of ['/dev/vda', 'vmlinuz', join(evilHome, 'pki')]) assert.ok(!plainText.includes(p), p);

    // Named: only what the user can open themselves, judged by the kernel with their credentials (ACLs too).
    const named = join(dir, 'answers-named.yaml');
    const out = auditIn(['--answers-out', named, '--include-user-process', String(evil.pid)]).json.answersOut!;
    const doc = parseAnswersText(readFileSync(named, 'utf8'), named) as {
      guests: { name: string; disks: unknown; boot?: unknown; display: unknown }[];
    };
    const g = doc.guests.find((x) => x.name === 'evil')!;
    assert.deepEqual(g.disks, [
      { path: join(evilHome, 'own.img'), format: 'raw', readOnly: false },
      { path: img('acl-granted.img'), format: 'raw', readOnly: false },
    ]);
    assert.equal(g.boot, undefined, 'a kernel the user cannot read is not the guest’s');
    assert.deepEqual(g.display, { mode: 'vnc-tls', listen: '0.0.0.0', port: 5903, tlsDir: join(evilHome, 'pki') });
    const notes = out.notCarried.filter((n) => n.guest === 'evil');
    for (const [choice, text] of [
      ['disks', `/dev/vda: uid ${EVIL}, who started this process, cannot read and write it`],
      ['disks', `${img('acl-denied.img')}: uid ${EVIL}, who started this process, cannot read it`],
      ['boot', `${join(dir, 'private/vmlinuz')}: uid ${EVIL}, who started this process, cannot read it`],
      ['owner', `rebuilt from a process uid ${EVIL} started, named with --include-user-process`],
      ['display', `the TLS credentials in ${join(evilHome, 'pki')} were chosen by uid ${EVIL}`],
    ] as const)
      assert.ok(
        notes.some((n) => n.choice === choice && n.reason.startsWith(text)),
        `${choice}: ${text}\n${JSON.stringify(notes, null, 1)}`,
      );
    assert.equal(
      (await cli(['generate', '--answers', named, '--out', join(dir, 'bundle-named'), '--dry-run'])).code,
      0,
      'generate accepts what was carried',
    );

    // Naming is exact: a system process, or a name no ordinary user's process has, is refused and nothing is written.
    for (const [v, message] of [
      [
        'rootguest',
        /--include-user-process rootguest: no QEMU process an ordinary user started has that name \(pid \d+ runs as a system user/,
      ],
      ['99999', /--include-user-process 99999: no QEMU process an ordinary user started has that pid$/m],
    ] as const) {
      const file = join(dir, `refused-${v}.yaml`);
      const r = inside([process.execPath, BIN, 'audit', '--answers-out', file, '--include-user-process', v]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.ok(!existsSync(file));
    }
    assert.match((await cli(['audit', '--include-user-process', '1'])).stderr, /only applies with --answers-out FILE/);
  });

  test('hostile processes (FIFO and device disk paths, a 60,000-deep -blockdev, a 360 KB command line, a disk on a file system that never answers): audit finishes, reports each, and opens none of those paths', () => {
    const trace = join(dir, 'open.trace');
    const r = inside([
      'strace',
      '-f',
      '-qq',
      '--seccomp-bpf',
      '-e',
      'trace=open,openat,openat2',
      '-o',
      trace,
      process.execPath,
      BIN,
      'audit',
      '--json',
    ]);
    assert.ok(r.code === 0 || r.code === 1, `audit exited ${r.code}: ${r.stderr}`);
    const json = JSON.parse(r.stdout) as AuditJson;
    for (const [name, pid] of fakePids)
      assert.ok(
        json.processes.some((p) => p.pid === pid),
        `${name} (pid ${pid}) is reported`,
      );
    assert.equal(json.processes.find((p) => p.guest === 'huge')!.argv.join('').length > 200_000, true);
    const opens = readFileSync(trace, 'utf8')
      .split('\n')
      .filter((l) => /\bopen(at2?)?\(/.test(l) && !/O_PATH/.test(l));
    for (const path of NEVER_OPENED) {
      const hits = opens.filter((l) => l.includes(`"${path}`));
      assert.deepEqual(hits, [], `${path} was opened`);
    }
    // The stand-in's paths were judged by stat: the FIFO and the devices show up as what they are.
    const probed = json.findings.filter((x) => x.pid === fakePids.get('fifo') && x.check === 'files.format-probed');
    assert.equal(probed.length, 1);
  });

  test('a name and a command line full of escape sequences cannot forge lines of the text report', () => {
    const { json } = auditIn([]);
    const text = inside([process.execPath, BIN, 'audit']).stdout;
    assert.ok(!text.includes('\u001b'), 'no escape character reaches the terminal');
    assert.ok(!text.includes('\u202e') && !text.includes('\u0007'), 'nor a bidirectional override or a bell');
    const lines = text.split('\n');
    assert.ok(!lines.includes('No findings.'), 'the verdict cannot be forged');
    assert.ok(!lines.some((l) => /^ {2}pid 1 /.test(l)), 'nor a process line');
    assert.equal(
      lines.filter((l) => /^ {2}pid \d+ /.test(l)).length,
      json.processes.length,
      'one line per process, no more',
    );
    const inject = fakePids.get('inject')!;
    assert.ok(
      lines.includes(
        `  pid ${inject}  x\\x1b[2J\\x1b[H\\n  pid 1  web  user qemu-web (uid 997)  kvm\\n\\nNo findings.\\n\\x1b]0;owned\\x07\\u202eevil  uid ${HOSTILE}, not a system user  tcg`,
      ),
      'the name is shown whole, its control characters as escapes',
    );
    assert.ok(
      lines.some((l) => l.includes('/srv/\\x1b[31mred\\x1b[0m.img')),
      'and so is a path',
    );
    assert.equal(json.processes.find((p) => p.pid === inject)!.guest, FORGED, '--json carries the exact name');
  });

  test('VNC over TLS that checks no client: a real client with no certificate or password gets SecurityResult 0, and audit reports it; verify-peer=on keeps that client out and is not reported', () => {
    const { json } = auditIn([]);
    const handshake = (port: number) => {
      const r = inside([process.execPath, join(REPO, 'test/clients/vnc-tls.mjs'), '127.0.0.1', String(port)]);
      return JSON.parse(r.stdout) as { subtype: number | null; tls: string; securityResult: number | null };
    };
    const off = handshake(5902);
    assert.deepEqual([off.subtype, off.tls, off.securityResult], [260, 'ok', 0], 'x509, verify-peer=off');
    const anon = handshake(5904);
    assert.deepEqual([anon.subtype, anon.tls, anon.securityResult], [257, 'ok', 0], 'anonymous TLS');
    const verified = handshake(5905);
    assert.equal(verified.subtype, 260);
    assert.notEqual(verified.securityResult, 0, `verify-peer=on lets no such client in: ${verified.tls}`);

    const vnc = (g: string) => json.findings.find((x) => x.guest === g && x.check === 'listeners.vnc');
    assert.equal(vnc('vnc-tls-off')!.severity, 'high');
    assert.equal(
      vnc('vnc-tls-off')!.evidence,
      '-vnc 0.0.0.0:2,tls-creds=tlsoff (tls-creds tlsoff: tls-creds-x509, verify-peer=off); listening: 0.0.0.0:5902 tcp LISTEN',
    );
    assert.match(
      vnc('vnc-tls-off')!.summary,
      /TLS that checks no client and no password: anyone who connects gets the console/,
    );
    assert.equal(vnc('vnc-tls-anon')!.severity, 'high');
    assert.match(
      vnc('vnc-tls-anon')!.evidence,
      /\(tls-creds tlsanon: tls-creds-anon\); listening: 0\.0\.0\.0:5904 tcp LISTEN$/,
    );
    assert.equal(vnc('vnc-tls-verified'), undefined);
  });

  test('as a normal user it says what it could not see, and still judges what it can read', () => {
    const { json } = auditIn([], AUDITOR);
    assert.equal(json.root, false);
    for (const p of json.processes)
      assert.ok(
        json.unseen.some((u) => u.what.startsWith(`${p.guest} (pid ${p.pid}): its open files`)),
        `${p.guest}'s open files are listed as unseen`,
      );
    // Whether a normal user may read the kernel log is the host's setting: either way audit says what it saw.
    const restricted = readFileSync('/proc/sys/kernel/dmesg_restrict', 'utf8').trim() === '1';
    assert.equal(
      json.unseen.some((u) => u.what.startsWith('the kernel log') && /EPERM|EACCES/.test(u.reason)),
      restricted,
      `dmesg_restrict=${restricted ? 1 : 0}: ${JSON.stringify(json.unseen)}`,
    );
    assert.ok(checksOf(json, 'rootguest').includes('process.root'));
    assert.ok(checksOf(json, 'vncguest').includes('listeners.vnc'), 'judged from the command line alone');
  });

  test('--answers-out writes answers that generate accepts, whose bundle passes verify, and whose QEMU boots under TCG', async () => {
    const out = join(dir, 'answers.yaml');
    const { json } = auditIn(['--answers-out', out]);
    const diskless = ['vncguest', 'qmpguest', 'vnc-tls-off', 'vnc-tls-anon', 'vnc-tls-verified'];
    assert.equal(
      json.answersOut?.guests,
      Object.keys(GUESTS).length - diskless.length,
      'every guest with something to boot is carried',
    );
    const text = readFileSync(out, 'utf8');
    assert.match(text, /^# Not carried over/m);
    // The header's next command, pasted as written (from another directory: it names the file by its path).
    const next = /^# Review them, then: (.*)$/m.exec(text)?.[1] ?? '';
    assert.match(next, / generate --answers \S+\/answers\.yaml --out qemu-harden-bundle$/);
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    const pasted = spawnSync('sh', ['-c', next], { cwd: elsewhere, encoding: 'utf8' });
    assert.equal(pasted.status, 0, `${next}\n${pasted.stdout}${pasted.stderr}`);
    assert.ok(existsSync(join(elsewhere, 'qemu-harden-bundle', 'MANIFEST.sha256')));
    // The name asks for the format: JSON for .json, as generate reads it back; an existing file needs --force.
    const asJson = join(dir, 'answers.json');
    auditIn(['--answers-out', asJson]);
    assert.deepEqual(JSON.parse(readFileSync(asJson, 'utf8')), parseAnswersText(text, out));
    const again = inside([process.execPath, BIN, 'audit', '--answers-out', asJson]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /already exists; choose another path, or add --force/);
    writeFileSync(asJson, '{}\n');
    auditIn(['--answers-out', asJson, '--force']);
    assert.deepEqual(JSON.parse(readFileSync(asJson, 'utf8')), parseAnswersText(text, out));
    const notCarried = (g: string) => json.answersOut!.notCarried.filter((n) => n.guest === g).map((n) => n.choice);
    assert.ok(notCarried('rootguest').includes('isolation.sandbox'));
    assert.ok(notCarried('vncguest').includes('display'));
    assert.ok(notCarried('vncguest').includes('useCase'));
    for (const g of diskless)
      assert.ok(notCarried(g).includes('the whole guest'), `${g} has no disk: it is listed, not written`);
    assert.deepEqual([...new Set(notCarried('netguest'))].sort(), ['disks', 'display', 'migration', 'useCase']);
    const doc = parseAnswersText(text, out) as {
      guests: {
        name: string;
        display: { mode: string };
        disks?: { path: string; format: string; readOnly: boolean }[];
      }[];
    };
    assert.deepEqual(
      doc.guests.map((g) => g.name).filter((n) => diskless.includes(n)),
      [],
    );
    assert.equal(doc.guests.find((g) => g.name === 'netguest')!.display.mode, 'vnc-unix');
    assert.deepEqual(
      doc.guests.find((g) => g.name === 'netguest')!.disks,
      [{ path: img('net.img'), format: 'raw', readOnly: false }],
      'a probed format is attached as raw',
    );
    assert.deepEqual(doc.guests.find((g) => g.name === 'openguest')!.disks, [
      { path: img('open,disk.img'), format: 'raw', readOnly: false },
    ]);
    assert.deepEqual(doc.guests.find((g) => g.name === 'shared-b')!.disks, [
      { path: img('b/disk.img'), format: 'raw', readOnly: true },
    ]);

    const bundle = join(dir, 'bundle');
    assert.equal(
      (await cli(['generate', '--answers', out, '--out', join(dir, 'bundle-kvm'), '--dry-run'])).code,
      0,
      'generate accepts it as written',
    );
    const gen = await cli([
      'generate',
      '--answers',
      out,
      '--set',
      'useCase=emulation',
      '--set',
      'acceptedRisks=[{"risk":"emulation","reason":"the test host may have no KVM"}]',
      '--out',
      bundle,
    ]);
    assert.equal(gen.code, 0, gen.stderr);
    const ver = await cli(['verify', bundle]);
    assert.equal(ver.code, 0, ver.stdout + ver.stderr);

    // The running guests hold their images' write locks: they are stopped before the bundle's command lines boot.
    await stopNamespace();
    const answers = validate(JSON.parse(readFileSync(join(bundle, 'answers.json'), 'utf8')));
    const boot = (name: string, ...extra: string[]) => {
      const g = answers.guests.find((x) => x.name === name)!;
      const args = [...qemuArgs(answers, g), ...extra];
      const script = `mount -t tmpfs none /run && mount -t tmpfs none /var/log && mkdir -p /run/qemu-harden/${name} /var/log/qemu-harden/${name} && mkfifo /run/qemu-harden/${name}/stop.in /run/qemu-harden/${name}/stop.out && exec "$@"`;
      return spawnSync(
        'unshare',
        ['--mount', 'sh', '-c', script, 'sh', answers.host.qemuBinary, ...args, '-device', DEBUG_EXIT_DEVICE],
        { encoding: 'utf8', timeout: 300_000 },
      );
    };
    for (const name of ['rootguest', 'openguest']) {
      const r = boot(name);
      assert.equal(r.status, DEBUG_EXIT_STATUS, `${name} booted its disk under TCG: ${r.stderr}`);
    }
    // shared-a's boot sector sits in the backing file its overlay names: the bundle never follows backing files,
    // so the rebuilt guest sees only the empty overlay and never reaches the boot sector. The firmware then finds
    // nothing to boot and resets at once (reboot-timeout=0), which ends QEMU (-no-reboot) with status 0: an answer,
    // where waiting for a boot that never comes would take the whole deadline.
    const empty = boot('shared-a', '-boot', 'reboot-timeout=0', '-no-reboot');
    assert.equal(empty.status, 0, `the overlay’s backing file is not followed: nothing to boot: ${empty.stderr}`);
  });
});

/** The parent pid of a process, or undefined when it has already gone. */
function parentOf(pid: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1];
  } catch {
    return undefined;
  }
}

/** Wait until a QMP socket accepts a connection and greets: QEMU has finished starting up. */
async function qmpGreeting(path: string, log: () => string): Promise<void> {
  await waitUntil(
    `a QMP greeting on ${path}`,
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect(path);
        let buf = '';
        const done = (ok: boolean) => {
          clearTimeout(timer);
          s.destroy();
          resolve(ok);
        };
        // An accepted connection greets at once; one that does not is tried again.
        const timer = setTimeout(() => done(false), 10_000);
        s.on('data', (d) => {
          buf += String(d);
          if (buf.includes('"QMP"')) done(true);
        });
        s.on('error', () => done(false));
      }),
    { everyMs: 100, detail: log },
  );
}

/** Send QMP commands one by one over a unix socket; the replies (events left out), in order. */
async function qmp(path: string, commands: object[]): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const replies: unknown[] = [];
    let buf = '';
    let sent = 0;
    const timer = setTimeout(
      () => (s.destroy(), reject(new Error(`${path}: QMP replies: ${JSON.stringify(replies)}`))),
      120_000,
    );
    s.on('error', reject);
    s.on('data', (d) => {
      buf += String(d);
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        if ('return' in msg || 'error' in msg) replies.push(msg);
        if (!('QMP' in msg) && !('return' in msg) && !('error' in msg)) continue;
        if (sent < commands.length) s.write(JSON.stringify(commands[sent++]) + '\n');
        else {
          clearTimeout(timer);
          s.destroy();
          resolve(replies);
        }
      }
    });
  });
}

describe('audit of a guest from an applied bundle, under real systemd in a container', () => {
  const dir = tempDir({ after }, 'qh-audit-ct-');
  const ct = new Container(dir);
  const fingerprint = hostFingerprint();
  after(async () => {
    await ct.stop();
    assert.equal(hostFingerprint(), fingerprint, '/etc and the host’s device node modes are unchanged');
  });

  before(async () => {
    for (const [tool, pkg] of [
      ['systemd-nspawn', 'systemd-container'],
      ['nsenter', 'util-linux'],
      ['qemu-system-x86_64', 'qemu-system-x86'],
    ] as const)
      requireTool(tool, pkg);
    chmodSync(dir, 0o755);
    const images = join(dir, 'images');
    mkdirSync(images, { mode: 0o755 });
    writeBootDisk(join(images, 'kept.img'));
    const bundle = await generateBundle(dir, {
      schemaVersion: 1,
      useCase: 'emulation',
      acceptedRisks: [{ risk: 'emulation', reason: 'the test host may have no KVM' }],
      guests: [{ name: 'kept', memoryMiB: 64, disks: [{ path: '/images/kept.img', format: 'raw' }] }],
    });
    ct.prepare();
    const applied = await cli(['apply', bundle, '--root', ct.root, '--yes']);
    assert.equal(applied.code, 0, applied.stderr + applied.stdout);
    mkdirSync(join(ct.root, 'qh'));
    await ct.boot({
      binds: { [images]: '/images', [join(REPO, 'dist')]: '/qh/dist', [join(REPO, 'presets')]: '/qh/presets' },
      privateNetwork: true,
    });
    const start = ct.exec(['systemctl', 'start', 'qemu-kept.service']);
    assert.equal(start.code, 0, start.stderr);
  });

  test('the bundle’s guest has no finding of its own: only the informational TCG note', async () => {
    // Until QEMU is past start-up: it is seen, and its sockets are listening.
    let json: AuditJson | undefined;
    await waitUntil(
      'the guest’s QEMU to be seen with its sockets listening',
      () => {
        const r = ct.exec([process.execPath, '/qh/dist/qemu-harden.js', 'audit', '--json']);
        json = JSON.parse(r.stdout) as AuditJson;
        return json.processes.length > 0 && json.findings.every((f) => !f.evidence.includes('no listening'));
      },
      { detail: () => JSON.stringify(json, null, 1) },
    );
    assert.deepEqual(
      json!.processes.map((p) => p.guest),
      ['kept'],
    );
    assert.deepEqual(checksOf(json!, 'kept'), ['process.tcg'], JSON.stringify(json!.findings, null, 1));
    // What remains is the container's host, not the guest: no AppArmor in this kernel, no cgroup controllers for
    // the container's systemd on a v1 hierarchy, and systemd's own default mode for /dev/net/tun (0666).
    for (const f of json!.findings.filter((x) => x.guest === null))
      assert.ok(
        ['host.apparmor', 'host.cgroup-controllers'].includes(f.check) ||
          (f.check === 'host.device-mode' && f.evidence.startsWith('/dev/net/tun: mode 0666')),
        `only what this host lacks is reported: ${f.check}: ${f.evidence}`,
      );
  });

  test('status judges the same guest with the same checks, held to its installed unit: clean as installed, WEAKER once its monitor socket is opened to every user', () => {
    const qh = (...args: string[]) => ct.exec([process.execPath, '/qh/dist/qemu-harden.js', ...args]);
    const clean = qh('status', '--json');
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    const sock = '/run/qemu-harden/kept/qmp.sock';
    assert.equal(ct.exec(['chmod', '0666', sock]).code, 0);
    try {
      const s = qh('status', '--json');
      assert.equal(s.code, 1, s.stdout);
      const weaker = (JSON.parse(s.stdout) as { guests: { weaker: string[] }[] }).guests[0]!.weaker;
      assert.deepEqual(weaker, [`monitor socket ${sock} is writable by every user`]);
      const audited = JSON.parse(qh('audit', '--json').stdout) as AuditJson;
      assert.ok(
        audited.findings.some((f) => f.check === 'files.socket-mode' && f.summary === weaker[0]),
        'audit makes the same finding',
      );
      assert.match(qh('status').stdout, /^ {2}WEAKER: monitor socket \S+ is writable by every user$/m);
    } finally {
      ct.exec(['chmod', '0600', sock]);
    }
    assert.equal(qh('status').code, 0);
  });
});

test('status’s text output shows what it read from the host through visible(): escapes, not control characters', () => {
  const esc = '\u001b[2J\u001b[H';
  const report: StatusReport = {
    root: '/',
    installed: { manifest: 'a'.repeat(64), previous: null },
    signing: { enrolled: null, trustFile: '/etc/qemu-harden/allowed_signers', signers: [], problems: [] },
    interrupted: null,
    guests: [
      {
        name: 'web',
        unit: 'qemu-web.service',
        running: true,
        process: {
          pid: 7,
          uid: [998, 998, 998, 998],
          gid: [998, 998, 998, 998],
          capEff: '0000000000000000',
          noNewPrivs: true,
          seccomp: { '7': 2 },
          apparmor: { label: `qemu-harden-web${esc}`, mode: 'enforce' },
          cgroup: '/qemu.slice/qemu-web.service',
          limits: { memoryMax: null, cpuMax: null, pidsMax: null },
          listening: [
            {
              proto: 'unix',
              address: `/run/x${esc}\nOK: every running guest is confined as installed, and the files match the record.`,
            },
          ],
        },
        expected: {
          user: 'qemu-web',
          uid: 998,
          memoryMax: null,
          apparmorProfile: null,
          seccomp: true,
          noNewPrivs: true,
          noCapabilities: true,
        },
        weaker: [`socket /run/y${esc}.sock is writable by every user`],
        helpers: [
          {
            kind: 'tpm',
            title: 'TPM 2.0 emulator (swtpm)',
            unit: 'qemu-web-tpm.service',
            running: true,
            process: {
              pid: 8,
              uid: [998, 998, 998, 998],
              gid: [998, 998, 998, 998],
              capEff: '0000000000000000',
              noNewPrivs: true,
              seccomp: { '8': 2 },
              apparmor: { label: `qemu-harden-web-tpm${esc}`, mode: 'enforce' },
              cgroup: '/qemu.slice/qemu-web-tpm.service',
              limits: { memoryMax: null, cpuMax: null, pidsMax: null },
              listening: [],
            },
            expected: {
              user: 'qemu-web',
              uid: 998,
              memoryMax: null,
              apparmorProfile: null,
              seccomp: true,
              noNewPrivs: true,
              noCapabilities: true,
            },
            weaker: [`swtpm state /var/lib/x${esc} is readable by every user`],
          },
        ],
        drift: [],
      },
    ],
    drift: [],
    unseen: [{ what: `pid 9${esc}`, reason: 'ENOENT' }],
    ok: false,
  };
  const text = formatStatus(report);
  assert.ok(!text.includes('\u001b'), 'no escape character reaches the terminal');
  const lines = text.split('\n');
  assert.equal(lines.filter((l) => l.startsWith('OK: ')).length, 0, 'a socket path cannot print the verdict');
  assert.ok(lines.some((l) => l.includes('/run/x\\x1b[2J\\x1b[H\\nOK: every running guest')));
  assert.ok(lines.includes('  WEAKER: socket /run/y\\x1b[2J\\x1b[H.sock is writable by every user'));
  assert.ok(lines.includes('  AppArmor qemu-harden-web\\x1b[2J\\x1b[H (enforce)'));
  assert.ok(lines.includes('    AppArmor qemu-harden-web-tpm\\x1b[2J\\x1b[H (enforce)'), 'a helper’s label too');
  assert.ok(lines.includes('    WEAKER: swtpm state /var/lib/x\\x1b[2J\\x1b[H is readable by every user'));
});
