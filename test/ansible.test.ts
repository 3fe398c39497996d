// `qemu-harden export ansible`, proven with Debian's own Ansible against two hosts: two systemd-nspawn containers,
// booted side by side, each getting its own bundle by inventory hostname: h1 runs this machine's Debian 12, h2 a
// whole Debian 13 system (an overlay over a cached root, test/debian-root.ts). Ansible reaches them through
// community.docker.nsenter (shipped in Debian's ansible package), which enters the mount, PID, network, IPC and
// UTS namespaces of the container's systemd: ansible_nsenter_pid is the container leader's PID on this host.
// The guests run under TCG (emulation, acknowledged) so the proof is the same on machines without KVM. Their
// helper units come and go with them: a TPM (swtpm) and the user-mode network (passt), each in a unit of its own,
// and a read-only shared folder, which on Debian 12 is QEMU's own 9p inside its unit (no helper) and on Debian 13
// a virtiofsd in a unit of its own.
// community.general.chroot cannot reach these containers: seen from this host their root has no /usr (it is
// bound into the container's own mount namespace only), so there is no Python to run modules, and a chroot
// would not reach the container's systemd anyway.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BOOT_MARKER, writeBootDisk } from './bootdisk.js';
import { Container } from './container.js';
import { debianRoot, TRIXIE_PACKAGES } from './debian-root.js';
import { cli, requireTool, stopChild, tempDir, waitUntil } from './helpers.js';

type Guests = Record<string, number>;
/** The release each host runs, and its bundles are generated for (--target). */
const TARGET: Record<string, string> = { h1: 'debian-12', h2: 'debian-13' };
/** Host → guest → memory (MiB). v2 changes alpha's memory and drops delta on h1; h2 stays as it is. */
const V1: Record<string, Guests> = { h1: { alpha: 64, beta: 64, delta: 64 }, h2: { gamma: 64 } };
const V2: Record<string, Guests> = { h1: { alpha: 96, beta: 64 }, h2: { gamma: 64 } };
/** The guests with a TPM 2.0 (a helper unit of their own): alpha restarts in v2, delta leaves. */
const TPM = new Set(['alpha', 'delta']);
/** The guests on passt's user-mode network (qemu-NAME-net.service): alpha restarts in v2, delta leaves. */
const PASST = new Set(['alpha', 'delta']);
/** The read-only shared folders, directories the test makes in the guest's host: beta's on Debian 12 (9p), gamma's
 * on Debian 13 (virtiofsd, qemu-gamma-fs0.service). */
const SHARES: Record<string, { path: string; tag: string }> = {
  beta: { path: '/srv/beta-share', tag: 'docs' },
  gamma: { path: '/srv/gamma-share', tag: 'docs' },
};
const VIRTIOFSD = new Set(['gamma']);
/** The helper units of a guest, by kind (qemu-NAME-KIND.service). */
const helpersOf = (g: string) => [
  ...(TPM.has(g) ? ['tpm'] : []),
  ...(PASST.has(g) ? ['net'] : []),
  ...(VIRTIOFSD.has(g) ? ['fs0'] : []),
];

/** What churns on its own in a booted container (journal, systemd's own state) or is not on its disk. */
const NOT_HASHED = new Set(['proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp', 'var/log', 'var/lib/systemd', 'var/cache']);

function treeHash(root: string): string {
  const h = createHash('sha256');
  const visit = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (NOT_HASHED.has(r)) continue;
      const st = lstatSync(join(root, r));
      h.update(`${r}\0${st.mode}\0${st.uid}:${st.gid}\0`);
      if (st.isSymbolicLink()) h.update(readlinkSync(join(root, r)));
      else if (st.isFile()) h.update(readFileSync(join(root, r)));
      else if (st.isDirectory()) visit(r);
      h.update('\n');
    }
  };
  visit('');
  return h.digest('hex');
}

/** The answers for `guests`; those named in `unshared` have no shared folder. */
function answers(guests: Guests, unshared: readonly string[] = []): string {
  return JSON.stringify({
    schemaVersion: 1,
    useCase: 'emulation',
    acceptedRisks: [{ risk: 'emulation', reason: 'this proof runs without KVM; its guests are test boot sectors' }],
    guests: Object.entries(guests).map(([name, memoryMiB]) => ({
      name,
      memoryMiB,
      disks: [{ path: `/images/${name}.img`, format: 'raw' }],
      network: PASST.has(name) ? { mode: 'user' } : { mode: 'none' },
      ...(TPM.has(name) ? { tpm: 'tpm2' } : {}),
      ...(SHARES[name] && !unshared.includes(name) ? { shares: [SHARES[name]] } : {}),
    })),
  });
}

interface Recap {
  ok: number;
  changed: number;
  failed: number;
  unreachable: number;
}

function recap(output: string): Record<string, Recap> {
  const out: Record<string, Recap> = {};
  for (const m of output.matchAll(/^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm))
    out[m[1]!] = { ok: Number(m[2]), changed: Number(m[3]), unreachable: Number(m[4]), failed: Number(m[5]) };
  return out;
}

describe('export ansible: the role installs each host’s bundle on two systemd hosts (nspawn, TCG)', () => {
  const dir = tempDir({ after }, 'qh-ansible-');
  const cts: Record<string, Container> = { h1: new Container(join(dir, 'h1')), h2: new Container(join(dir, 'h2')) };
  const out = join(dir, 'export');
  const inventory = join(dir, 'inventory.ini');
  const bundles: Record<string, string> = {};
  let lint: Promise<{ code: number | null; output: string }>;
  let linter: ChildProcess | undefined;
  after(() => Promise.all([...Object.values(cts).map((c) => c.stop()), ...(linter ? [stopChild(linter)] : [])]));

  const generate = async (version: string, host: string, guests: Guests, unshared: readonly string[] = []) => {
    const file = join(dir, `${version}-${host}.json`);
    writeFileSync(file, answers(guests, unshared));
    const bundle = join(dir, version, host);
    const r = await cli(['generate', '--answers', file, '--out', bundle, '--force', '--target', TARGET[host]!]);
    assert.equal(r.code, 0, r.stderr);
    return bundle;
  };
  const exportBundles = async (version: string) => {
    const r = await cli([
      'export',
      'ansible',
      '--host',
      `h1=${join(dir, version, 'h1')}`,
      '--host',
      `h2=${join(dir, version, 'h2')}`,
      '--out',
      out,
      '--force',
    ]);
    assert.equal(r.code, 0, r.stderr);
  };
  const play = (...args: string[]) => {
    const r = spawnSync('ansible-playbook', ['-i', inventory, 'site.yml', ...args], {
      cwd: out,
      encoding: 'utf8',
      // Only a guard against a play that hangs: with every core busy beside other proofs, one play took five
      // minutes.
      timeout: 1_200_000,
      env: {
        ...process.env,
        ANSIBLE_HOME: join(dir, 'ansible-home'),
        ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-local'),
        // Inside each container /tmp is a tmpfs: Ansible's module files never land on the container's disk.
        ANSIBLE_REMOTE_TMP: '/tmp/.ansible-qemu-harden',
        TMPDIR: join(dir, 'tmp'),
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_FORCE_COLOR: '0',
      },
    });
    return { code: r.status, output: `${r.stdout}\n${r.stderr}${r.error ? `\n${r.error.message}` : ''}` };
  };
  const mainPid = (host: string, guest: string) =>
    Number(cts[host]!.exec(['systemctl', 'show', '-p', 'MainPID', '--value', `qemu-${guest}.service`]).stdout.trim());
  const helperPid = (host: string, guest: string, kind: string) =>
    Number(
      cts[host]!.exec(['systemctl', 'show', '-p', 'MainPID', '--value', `qemu-${guest}-${kind}.service`]).stdout.trim(),
    );
  const allPids = () =>
    Object.fromEntries(
      Object.entries(V1).flatMap(([h, gs]) =>
        Object.keys(gs).flatMap((g) => [
          [`${h}/${g}`, mainPid(h, g)],
          ...helpersOf(g).map((k) => [`${h}/${g}-${k}`, helperPid(h, g, k)]),
        ]),
      ),
    );
  /** Fields of /proc/PID/status in host's container, split on white space. */
  const procStatus = (host: string, pid: number) => {
    const status = cts[host]!.exec(['cat', `/proc/${pid}/status`]).stdout;
    return (k: string) => new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(status)![1]!.split(/\s+/);
  };
  const cmdline = (host: string, pid: number) =>
    cts[host]!.exec(['cat', `/proc/${pid}/cmdline`])
      .stdout.split('\0')
      .slice(0, -1);
  const journal = (host: string, unit: string) =>
    cts[host]!.exec(['journalctl', '-b', '-u', unit, '--no-pager', '-o', 'cat']).stdout;
  /** The copies of a host's file (an absolute path there) in its backup directories, one directory a run. */
  const backupsOf = (host: string, path: string) => {
    const dir = join(cts[host]!.files, 'var/backups/qemu-harden');
    return readdirSync(dir)
      .map((run) => join(dir, run, path))
      .filter((f) => existsSync(f));
  };

  before(async () => {
    for (const [tool, pkg] of [
      ['ansible-playbook', 'ansible'],
      ['ansible-lint', 'ansible-lint'],
      ['systemd-nspawn', 'systemd-container'],
      ['nsenter', 'util-linux'],
      ['qemu-system-x86_64', 'qemu-system-x86'],
      ['passt', 'passt'],
      ['ip', 'iproute2'],
    ] as const)
      requireTool(tool, pkg);
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'tmp'));
    for (const [host, guests] of Object.entries(V1)) {
      bundles[host] = await generate('v1', host, guests);
      await generate('v2', host, V2[host]!);
      const ct = cts[host]!;
      mkdirSync(ct.dir);
      if (TARGET[host] === 'debian-13') ct.prepareSystem(await debianRoot('trixie', TRIXIE_PACKAGES));
      else ct.prepare();
      mkdirSync(join(ct.writes, 'images'), { mode: 0o755 });
      for (const g of Object.keys(guests)) {
        writeBootDisk(join(ct.writes, 'images', `${g}.img`));
        const share = SHARES[g];
        if (!share) continue;
        mkdirSync(join(ct.writes, share.path), { recursive: true, mode: 0o755 });
        writeFileSync(join(ct.writes, share.path, 'hello.txt'), 'shared read-only\n', { mode: 0o644 });
      }
    }
    await exportBundles('v1');
    // ansible-lint reads the export while the containers boot.
    lint = new Promise((res) => {
      const child = (linter = spawn('ansible-lint', ['--nocolor'], {
        cwd: out,
        env: { ...process.env, HOME: join(dir, 'lint-home'), XDG_CACHE_HOME: join(dir, 'lint-cache') },
      }));
      let output = '';
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      child.on('close', (code) => res({ code, output }));
    });
    await Promise.all(Object.values(cts).map((c) => c.boot({ privateNetwork: true, devices: [] })));
    // The tests hash what each host has on its disk; a timer of the release's own (dpkg's backup at midnight)
    // writing there meanwhile would fail them for reasons of the calendar.
    for (const [host, ct] of Object.entries(cts)) assert.deepEqual(ct.timers(), [], `${host} runs no timer`);
    // The network passt speaks for its guests: an address and a default route in each container's own namespace
    // (passt refuses to start without a routable interface).
    for (const ct of Object.values(cts)) {
      const net = ct.sh(
        'ip link add qhv0 type veth peer name qhv1 && ip addr add 10.78.0.1/24 dev qhv0 && ip link set qhv0 up && ip link set qhv1 up && ip route add default via 10.78.0.2',
      );
      assert.equal(net.code, 0, net.stderr);
    }
    writeFileSync(
      inventory,
      '[qemu_harden]\n' +
        Object.entries(cts)
          .map(
            ([h, c]) =>
              `${h} ansible_connection=community.docker.nsenter ansible_nsenter_pid=${c.pid} ansible_python_interpreter=/usr/bin/python3\n`,
          )
          .join(''),
    );
  });

  test('the export holds the role, playbook, inventory and each host’s bundle byte for byte, and passes ansible-lint', async () => {
    for (const host of Object.keys(V1))
      for (const f of [
        'MANIFEST.sha256',
        'answers.json',
        `root/etc/systemd/system/qemu-${Object.keys(V1[host]!)[0]}.service`,
      ])
        assert.deepEqual(
          readFileSync(join(out, 'bundles', host, f)),
          readFileSync(join(bundles[host]!, f)),
          `${host}: ${f}`,
        );
    assert.match(readFileSync(join(out, 'inventory.ini'), 'utf8'), /^\[qemu_harden\]\nh1\nh2\n$/m);
    const { code, output } = await lint;
    assert.equal(code, 0, output);
    assert.match(output, /Passed with production profile: 0 failure\(s\), 0 warning\(s\)/);
  });

  test('1. --check --diff lists each host’s changes and changes nothing', () => {
    const before = Object.fromEntries(Object.entries(cts).map(([h, c]) => [h, treeHash(c.writes)]));
    const r = play('--check', '--diff');
    assert.equal(r.code, 0, r.output);
    const rc = recap(r.output);
    for (const [host, guests] of Object.entries(V1)) {
      assert.equal(rc[host]?.failed, 0, r.output);
      assert.ok(rc[host]!.changed > 0);
      for (const g of Object.keys(guests)) {
        assert.ok(
          r.output.includes(`changed: [${host}] => (item=/etc/systemd/system/qemu-${g}.service)`),
          `${host} lists ${g}'s unit`,
        );
        assert.ok(
          r.output.includes(`changed: [${host}] => (item=/etc/apparmor.d/qemu-harden-${g})`),
          `${host} lists ${g}'s profile`,
        );
        assert.ok(
          r.output.includes(`+++ after: ${out}/bundles/${host}/root/etc/systemd/system/qemu-${g}.service`),
          `${host} shows ${g}'s unit as a diff`,
        );
        for (const k of helpersOf(g))
          assert.ok(
            r.output.includes(`changed: [${host}] => (item=/etc/systemd/system/qemu-${g}-${k}.service)`),
            `${host} lists ${g}'s ${k} unit`,
          );
      }
      assert.ok(r.output.includes(`changed: [${host}] => (item=/etc/sysusers.d/qemu-harden.conf)`));
      assert.equal(treeHash(cts[host]!.writes), before[host], `${host}: nothing changed`);
    }
  });

  test('2. the run installs each host’s bundle, keeps the record, and its guests run confined under systemd', async () => {
    // Where the role once packed each bundle on the controller, a name anyone could take first: a directory of
    // another user for h1, a symlink to a file of someone else's for h2. The role packs in a private directory.
    const tmp = join(dir, 'tmp');
    const predictable = (host: string) =>
      join(
        tmp,
        `qemu-harden-${host}-${createHash('sha256')
          .update(readFileSync(join(bundles[host]!, 'MANIFEST.sha256')))
          .digest('hex')
          .slice(0, 16)}.tar`,
      );
    mkdirSync(predictable('h1'), { mode: 0o755 });
    chownSync(predictable('h1'), 65534, 65534);
    const victim = join(tmp, 'victim');
    writeFileSync(victim, 'not the role’s\n');
    symlinkSync(victim, predictable('h2'));
    const r = play();
    assert.equal(r.code, 0, r.output);
    assert.equal(readFileSync(victim, 'utf8'), 'not the role’s\n', 'nothing written through the planted symlink');
    assert.equal(lstatSync(predictable('h1')).uid, 65534, 'the planted directory is left as it was');
    assert.deepEqual(
      readdirSync(tmp)
        .filter((f) => f.startsWith('qemu-harden-'))
        .sort(),
      [predictable('h1'), predictable('h2')].map((p) => p.slice(tmp.length + 1)).sort(),
      'the role’s own temporary directories are gone',
    );
    for (const [host, guests] of Object.entries(V1)) {
      const ct = cts[host]!;
      const record = join(ct.files, 'var/lib/qemu-harden/.installed');
      assert.equal(lstatSync(record).mode & 0o777, 0o700);
      for (const rel of [
        'MANIFEST.sha256',
        'README.md',
        'answers.json',
        ...readFileSync(join(bundles[host]!, 'MANIFEST.sha256'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.slice(66)),
      ])
        assert.deepEqual(
          readFileSync(join(record, 'current', rel)),
          readFileSync(join(bundles[host]!, rel)),
          `${host}: record holds ${rel}`,
        );
      assert.equal(lstatSync(join(record, 'current/root/etc/systemd')).mode & 0o777, 0o700);
      assert.deepEqual(readdirSync(record), ['current'], `${host}: no journal, no previous after the first install`);
      for (const g of Object.keys(guests)) {
        const unitFile = join(ct.files, `etc/systemd/system/qemu-${g}.service`);
        assert.equal(lstatSync(unitFile).mode & 0o7777, 0o644);
        assert.equal(ct.exec(['systemctl', 'is-enabled', `qemu-${g}.service`]).stdout.trim(), 'enabled');
        await waitUntil(
          `${host}/${g} to boot`,
          () => ct.sh(`grep -q '${BOOT_MARKER}' /var/log/qemu-harden/${g}/serial.log`).code === 0,
          { detail: () => ct.exec(['journalctl', '-b', '-u', `qemu-${g}.service`, '--no-pager']).stdout },
        );
        const pid = mainPid(host, g);
        const field = procStatus(host, pid);
        const uid = ct.exec(['id', '-u', `qemu-${g}`]).stdout.trim();
        assert.notEqual(uid, '0');
        assert.deepEqual(field('Uid'), [uid, uid, uid, uid], `${host}/${g} runs as its own user`);
        assert.deepEqual(field('CapEff'), ['0000000000000000']);
        assert.deepEqual(field('NoNewPrivs'), ['1']);
        assert.deepEqual(field('Seccomp'), ['2']);
        assert.match(
          ct.exec(['cat', `/proc/${pid}/cgroup`]).stdout,
          new RegExp(`:/qemu\\.slice/qemu-${g}\\.service$`, 'm'),
        );
        const share = SHARES[g];
        if (share && !VIRTIOFSD.has(g)) {
          // Its read-only folder on Debian 12: QEMU's own 9p, read-only, and QEMU holds the folder open in its sandbox.
          const args = cmdline(host, pid);
          const virtfs = args[args.indexOf('-virtfs') + 1] ?? '';
          assert.match(virtfs, new RegExp(`^local,path=${share.path},mount_tag=${share.tag},security_model=`));
          assert.match(virtfs, /(^|,)readonly=on(,|$)/, `${host}/${g}'s share is read-only`);
          assert.ok(
            ct.sh(`readlink /proc/${pid}/fd/*`).stdout.split('\n').includes(share.path),
            `${host}/${g}'s QEMU opened ${share.path}`,
          );
        }
        if (share && VIRTIOFSD.has(g)) {
          // Its read-only folder on Debian 13: a virtiofsd in its own unit, started by its socket, as the guest's user
          // with no capabilities, serving that folder read-only; QEMU's vhost-user device is connected to it (QEMU
          // 10.0 does not start without its answer), and the guest's RAM is the shared memory virtiofsd maps.
          const fs = `qemu-${g}-fs0.service`;
          assert.equal(ct.exec(['systemctl', 'is-active', fs]).stdout.trim(), 'active', journal(host, fs));
          const fsPid = helperPid(host, g, 'fs0');
          const ffield = procStatus(host, fsPid);
          assert.deepEqual(ffield('Uid'), [uid, uid, uid, uid], `${host}/${g}'s virtiofsd runs as the guest's user`);
          assert.deepEqual(ffield('CapEff'), ['0000000000000000']);
          assert.deepEqual(ffield('NoNewPrivs'), ['1']);
          assert.deepEqual(ffield('Seccomp'), ['2']);
          const fsArgs = cmdline(host, fsPid);
          assert.equal(fsArgs[0], '/usr/libexec/virtiofsd');
          assert.ok(fsArgs.includes(`--shared-dir=${share.path}`), fsArgs.join(' '));
          assert.ok(fsArgs.includes('--readonly'), `${host}/${g}'s share is read-only`);
          const args = cmdline(host, pid).join(' ');
          assert.ok(
            args.includes(`-device vhost-user-fs-pci,chardev=fs0,tag=${share.tag}`),
            `${host}/${g}'s QEMU has the folder's device: ${args}`,
          );
          assert.match(args, /memory-backend-memfd,id=ram,size=\d+M,share=on/);
          assert.ok(
            ct
              .exec(['ss', '-Hxp', 'state', 'established'])
              .stdout.split('\n')
              .some((l) => l.includes(`pid=${fsPid},`)),
            `${host}/${g}'s virtiofsd holds QEMU's vhost-user connection`,
          );
        }
        if (PASST.has(g)) {
          // Its network: passt in its own unit, as the guest's user with no capabilities, ready before QEMU
          // started, and QEMU connected to its socket (QEMU 7.2 connects once, at start, and exits if it cannot).
          const net = `qemu-${g}-net.service`;
          assert.equal(ct.exec(['systemctl', 'is-active', net]).stdout.trim(), 'active', journal(host, net));
          const nfield = procStatus(host, helperPid(host, g, 'net'));
          assert.deepEqual(nfield('Uid'), [uid, uid, uid, uid], `${host}/${g}'s passt runs as the guest's user`);
          assert.deepEqual(nfield('CapEff'), ['0000000000000000']);
          assert.deepEqual(nfield('NoNewPrivs'), ['1']);
          const socket = `/run/qemu-harden/${g}/net/passt.sock`;
          assert.equal(ct.exec(['test', '-S', socket]).code, 0, `${socket} is a socket`);
          assert.ok(
            cmdline(host, pid).includes(`stream,id=net0,server=off,addr.type=unix,addr.path=${socket}`),
            `${host}/${g}'s QEMU connects to ${socket}`,
          );
          const when = (unit: string, p: string) =>
            Number(ct.exec(['systemctl', 'show', '-p', p, '--value', unit]).stdout.trim());
          assert.ok(
            when(net, 'ActiveEnterTimestampMonotonic') <= when(`qemu-${g}.service`, 'ExecMainStartTimestampMonotonic'),
            `${host}/${g}'s QEMU started once passt listened`,
          );
          assert.match(
            journal(host, net),
            /accepted connection from PID \d+/,
            `${host}/${g}'s passt took QEMU's connection`,
          );
        }
        if (!TPM.has(g)) continue;
        // Its TPM: swtpm in its own unit, as the guest's user, unprivileged, under its own filter.
        const tfield = procStatus(host, helperPid(host, g, 'tpm'));
        assert.deepEqual(tfield('Uid'), [uid, uid, uid, uid], `${host}/${g}'s swtpm runs as the guest's user`);
        assert.deepEqual(tfield('CapEff'), ['0000000000000000']);
        assert.deepEqual(tfield('NoNewPrivs'), ['1']);
        assert.deepEqual(tfield('Seccomp'), ['2']);
        assert.equal(ct.exec(['test', '-s', `/var/lib/qemu-harden/${g}/tpm2/tpm2-00.permall`]).code, 0);
      }
    }
    // No AppArmor in this host's kernel: the role installed the profiles and skipped loading them.
    assert.match(
      r.output,
      /RUNNING HANDLER \[qemu_harden : Load the guests' AppArmor profiles \(apparmor_parser -r\)\] \*+\nskipping: \[h[12]\]/,
    );
  });

  test('3. a second run changes nothing', () => {
    const before = allPids();
    const r = play();
    assert.equal(r.code, 0, r.output);
    for (const host of Object.keys(V1)) {
      assert.equal(recap(r.output)[host]?.changed, 0, r.output);
      assert.equal(recap(r.output)[host]?.failed, 0, r.output);
    }
    assert.deepEqual(allPids(), before);
  });

  test('4. a changed bundle for h1 restarts exactly the changed guest, removes the guest that left, and leaves h2 alone', async () => {
    const before = allPids();
    const h2Tree = treeHash(cts.h2!.writes);
    const oldAlpha = readFileSync(join(cts.h1!.files, 'etc/systemd/system/qemu-alpha.service'));
    const deltaUnit = readFileSync(join(cts.h1!.files, 'etc/systemd/system/qemu-delta.service'));
    const deltaTpmUnit = readFileSync(join(cts.h1!.files, 'etc/systemd/system/qemu-delta-tpm.service'));
    const deltaNetUnit = readFileSync(join(cts.h1!.files, 'etc/systemd/system/qemu-delta-net.service'));
    const deltaNetProfile = readFileSync(join(cts.h1!.files, 'etc/apparmor.d/qemu-harden-delta-net'));
    await exportBundles('v2');
    const r = play();
    assert.equal(r.code, 0, r.output);
    const rc = recap(r.output);
    assert.ok(rc.h1!.changed > 0 && rc.h1!.failed === 0, r.output);
    assert.equal(rc.h2?.changed, 0, r.output);
    assert.equal(rc.h2?.failed, 0, r.output);
    assert.equal(treeHash(cts.h2!.writes), h2Tree, 'nothing changed on h2');

    const after = allPids();
    assert.notEqual(after['h1/alpha'], before['h1/alpha'], 'alpha restarted');
    assert.ok(after['h1/alpha']! > 0);
    assert.notEqual(after['h1/alpha-tpm'], before['h1/alpha-tpm'], 'alpha’s TPM restarted with it');
    assert.ok(after['h1/alpha-tpm']! > 0);
    assert.equal(after['h1/delta-tpm'], 0, 'delta’s TPM stopped');
    assert.notEqual(after['h1/alpha-net'], before['h1/alpha-net'], 'alpha’s passt restarted with it');
    assert.ok(after['h1/alpha-net']! > 0);
    assert.equal(after['h1/delta-net'], 0, 'delta’s passt stopped');
    assert.equal(after['h1/beta'], before['h1/beta'], 'beta untouched');
    assert.equal(after['h2/gamma'], before['h2/gamma'], 'gamma on h2 untouched');
    assert.equal(after['h1/delta'], 0, 'delta stopped');
    const h1 = cts.h1!;
    assert.equal(
      h1.exec(['systemctl', 'show', '-p', 'MemoryMax', '--value', 'qemu-alpha.service']).stdout.trim(),
      String((96 + 256) * 1024 * 1024),
      'alpha runs under its new limit',
    );
    const starts =
      /TASK \[qemu_harden : Enable and start every guest; restart those whose unit or profile changed\] \*+\n((?:.+\n)+)/.exec(
        r.output,
      )?.[1] ?? '';
    assert.deepEqual(
      starts.trim().split('\n').sort(),
      ['changed: [h1] => (item=alpha)', 'ok: [h1] => (item=beta)', 'ok: [h2] => (item=gamma)'],
      r.output,
    );

    const units = readdirSync(join(h1.files, 'etc/systemd/system'));
    assert.ok(!units.includes('qemu-delta.service'), 'delta’s unit is gone');
    for (const u of ['qemu-delta-tpm.service', 'qemu-delta-tpm.socket', 'qemu-delta-net.service']) {
      assert.ok(!units.includes(u), `${u} is gone`);
      assert.equal(h1.exec(['systemctl', 'is-active', u]).stdout.trim(), 'inactive', `${u} is stopped`);
    }
    assert.equal(
      h1.exec(['test', '-s', '/var/lib/qemu-harden/delta/tpm2/tpm2-00.permall']).code,
      0,
      'delta’s TPM state is kept, as its disk is',
    );
    assert.equal(h1.exec(['test', '-s', '/images/delta.img']).code, 0, 'delta’s disk is kept');
    for (const f of ['etc/apparmor.d/qemu-harden-delta-net', 'etc/apparmor.d/qemu-harden.d/delta-net'])
      assert.ok(!existsSync(join(h1.files, f)), `${f} is gone`);
    assert.equal(h1.exec(['test', '-e', '/run/qemu-harden/delta/net']).code, 1, 'passt’s socket directory is gone');
    assert.equal(h1.exec(['pgrep', '-u', 'qemu-delta']).code, 1, 'no process of delta’s user is left');
    // alpha's new QEMU reached its new passt: one connection for each start.
    assert.equal(h1.exec(['systemctl', 'is-active', 'qemu-alpha.service']).stdout.trim(), 'active');
    assert.equal(
      journal('h1', 'qemu-alpha-net.service').match(/accepted connection from PID \d+/g)?.length,
      2,
      journal('h1', 'qemu-alpha-net.service'),
    );
    assert.deepEqual(
      units.filter((u) => u.endsWith('~')),
      [],
      'no backup left next to the units',
    );
    const runs = readdirSync(join(h1.files, 'var/backups/qemu-harden'));
    assert.equal(runs.length, 1);
    assert.match(runs[0]!, /^\d{8}T\d{6}Z$/);
    const backups = join(h1.files, 'var/backups/qemu-harden', runs[0]!);
    assert.deepEqual(
      readFileSync(join(backups, 'etc/systemd/system/qemu-alpha.service')),
      oldAlpha,
      'the replaced unit is backed up',
    );
    assert.deepEqual(
      readFileSync(join(backups, 'etc/systemd/system/qemu-delta.service')),
      deltaUnit,
      'the removed unit is backed up',
    );
    assert.deepEqual(
      readFileSync(join(backups, 'etc/systemd/system/qemu-delta-tpm.service')),
      deltaTpmUnit,
      'the removed TPM unit is backed up',
    );
    assert.deepEqual(
      readFileSync(join(backups, 'etc/systemd/system/qemu-delta-net.service')),
      deltaNetUnit,
      'the removed passt unit is backed up',
    );
    assert.deepEqual(
      readFileSync(join(backups, 'etc/apparmor.d/qemu-harden-delta-net')),
      deltaNetProfile,
      'and its profile',
    );
    assert.equal(h1.exec(['id', '-u', 'qemu-delta']).code, 0, 'delta’s user is kept');

    const record = join(h1.files, 'var/lib/qemu-harden/.installed');
    assert.deepEqual(readdirSync(record).sort(), ['current', 'previous']);
    assert.deepEqual(
      readFileSync(join(record, 'previous/MANIFEST.sha256')),
      readFileSync(join(bundles.h1!, 'MANIFEST.sha256')),
    );
    assert.deepEqual(
      readFileSync(join(record, 'current/MANIFEST.sha256')),
      readFileSync(join(dir, 'v2/h1/MANIFEST.sha256')),
    );
  });

  test('5. a tampered bundle fails its host before anything there changes; the other host completes', () => {
    const before = allPids();
    const h2Tree = treeHash(cts.h2!.writes);
    appendFileSync(
      join(out, 'bundles/h2/root/etc/systemd/system/qemu-gamma.service'),
      'ExecStartPre=/bin/sh -c "echo tampered"\n',
    );
    const r = play();
    assert.equal(r.code, 2, r.output);
    const rc = recap(r.output);
    assert.equal(rc.h2?.failed, 1, r.output);
    assert.equal(rc.h1?.changed, 0, r.output);
    assert.equal(rc.h1?.failed, 0, r.output);
    assert.match(
      r.output,
      /bundles\/h2 does not match its manifest; nothing was changed on this host: root\/etc\/systemd\/system\/qemu-gamma\.service: missing, or changed since the bundle was generated/,
    );
    assert.equal(treeHash(cts.h2!.writes), h2Tree, 'nothing changed on h2');
    assert.deepEqual(allPids(), before);
  });

  test('5b. a consistent forged bundle (User=root, a sudoers file, manifest recomputed) fails its host before anything changes', () => {
    const before = allPids();
    const h2Tree = treeHash(cts.h2!.writes);
    const bundle = join(out, 'bundles/h2');
    rmSync(bundle, { recursive: true });
    cpSync(join(dir, 'v2/h2'), bundle, { recursive: true });
    const unit = join(bundle, 'root/etc/systemd/system/qemu-gamma.service');
    writeFileSync(unit, readFileSync(unit, 'utf8').replace(/^User=qemu-gamma$/m, 'User=root'));
    mkdirSync(join(bundle, 'root/etc/sudoers.d'));
    writeFileSync(join(bundle, 'root/etc/sudoers.d/qemu-harden'), 'ALL ALL=(ALL) NOPASSWD: ALL\n');
    const files = [
      'README.md',
      'answers.json',
      ...readdirSync(join(bundle, 'root'), { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name).slice(bundle.length + 1)),
    ].sort();
    writeFileSync(
      join(bundle, 'MANIFEST.sha256'),
      files
        .map(
          (f) =>
            `${createHash('sha256')
              .update(readFileSync(join(bundle, f)))
              .digest('hex')}  ${f}\n`,
        )
        .join(''),
    );
    // h2 alone: test 5 already showed the other host completing beside a host that fails.
    const r = play('--limit', 'h2');
    assert.equal(r.code, 2, r.output);
    assert.equal(recap(r.output).h2?.failed, 1, r.output);
    assert.match(
      r.output,
      /bundles\/h2 holds files qemu-harden never installs; nothing was changed on this host: root\/etc\/sudoers\.d\/qemu-harden: not a path qemu-harden installs/,
    );
    assert.equal(treeHash(cts.h2!.writes), h2Tree, 'nothing changed on h2');
    assert.deepEqual(allPids(), before);
  });

  test('6. an install that stopped midway (journal left, a unit missing) is reported and completed', async () => {
    await exportBundles('v2');
    const h2 = cts.h2!;
    const record = join(h2.files, 'var/lib/qemu-harden/.installed');
    const manifest = readFileSync(join(record, 'current/MANIFEST.sha256'));
    const digest = createHash('sha256').update(manifest).digest('hex');
    writeFileSync(
      join(record, 'journal.json'),
      JSON.stringify({ action: 'apply', from: digest, to: digest, started: new Date().toISOString() }),
    );
    const unit = join(h2.files, 'etc/systemd/system/qemu-gamma.service');
    const content = readFileSync(unit);
    rmSync(unit);
    // The interrupted install was putting in place a bundle with a guest the new bundle does not have.
    const stale = '[Unit]\nDescription=a guest of the interrupted install\n[Service]\nExecStart=/bin/true\n';
    writeFileSync(join(h2.files, 'etc/systemd/system/qemu-stale.service'), stale);
    mkdirSync(join(record, 'next'), { mode: 0o700 });
    writeFileSync(
      join(record, 'next/MANIFEST.sha256'),
      `${createHash('sha256').update(stale).digest('hex')}  root/etc/systemd/system/qemu-stale.service\n`,
    );
    const before = allPids();
    // h2 alone: h1's bundle has not changed, and test 3 showed what a run then does.
    const r = play('--limit', 'h2');
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /The last install on this host stopped midway \(\{\\?"action\\?": ?\\?"apply\\?"/);
    assert.deepEqual(readFileSync(unit), content, 'the missing unit is installed again');
    assert.deepEqual(readdirSync(record).sort(), ['current'], 'the journal is closed, next is gone');
    assert.throws(
      () => lstatSync(join(h2.files, 'etc/systemd/system/qemu-stale.service')),
      /ENOENT/,
      'the interrupted install’s guest is removed',
    );
    const backedUp = backupsOf('h2', '/etc/systemd/system/qemu-stale.service');
    assert.equal(backedUp.length, 1, 'and backed up');
    assert.equal(readFileSync(backedUp[0]!, 'utf8'), stale);
    assert.deepEqual(readFileSync(join(record, 'current/MANIFEST.sha256')), manifest, 'the record stays');
    assert.match(
      r.output,
      /RUNNING HANDLER \[qemu_harden : Create users and groups \(systemd-sysusers\)\] \*+\nchanged: \[h2\]/,
      'every activation step runs again',
    );
    assert.notEqual(mainPid('h2', 'gamma'), before['h2/gamma'], 'gamma restarted under its reinstalled unit');
    const fs0 = helperPid('h2', 'gamma', 'fs0');
    assert.ok(fs0 > 0 && fs0 !== before['h2/gamma-fs0'], 'and its virtiofsd with it');
  });

  test('7. each host checks the signatures itself: an unsigned bundle fails its host before anything there changes; an enrolled host refuses one with no trust file in the export', async () => {
    requireTool('ssh-keygen', 'openssh-client');
    const key = join(dir, 'team-key');
    assert.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'team', '-f', key]).status, 0);
    const signers = join(dir, 'allowed_signers');
    writeFileSync(signers, `ops@example.com ${readFileSync(`${key}.pub`, 'utf8')}`);
    // v3 changes a guest on each host, so that a run that did not check would install it.
    const v3: Record<string, Guests> = { h1: { alpha: 96, beta: 80 }, h2: { gamma: 80 } };
    for (const [host, guests] of Object.entries(v3)) {
      const b = await generate('v3', host, guests);
      const s = await cli(['sign', b, '--key', key]);
      assert.equal(s.code, 0, s.stderr);
    }
    const exported = await cli([
      'export',
      'ansible',
      '--host',
      `h1=${join(dir, 'v3/h1')}`,
      '--host',
      `h2=${join(dir, 'v3/h2')}`,
      '--signers',
      signers,
      '--out',
      out,
      '--force',
    ]);
    assert.equal(exported.code, 0, exported.stderr);
    // h2's bundle reaches the controller without its signature.
    rmSync(join(out, 'bundles/h2/signatures'), { recursive: true });
    const before = allPids();
    const h2Tree = treeHash(cts.h2!.writes);
    const r = play();
    assert.equal(r.code, 2, r.output);
    assert.equal(recap(r.output).h2?.failed, 1, r.output);
    assert.match(
      r.output,
      /bundles\/h2 is not signed as this host requires; nothing was changed on this host: signatures: none: the bundle is not signed; the team's allowed_signers: requires 1 distinct signers it allows; 0 signed/,
    );
    assert.equal(treeHash(cts.h2!.writes), h2Tree, 'nothing changed on h2');
    assert.equal(mainPid('h2', 'gamma'), before['h2/gamma'], 'gamma untouched');

    // h1's signed bundle is installed, h1 is enrolled in the team's file, and the record keeps the signature.
    const h1 = cts.h1!;
    assert.equal(recap(r.output).h1?.failed, 0, r.output);
    assert.deepEqual(readFileSync(join(h1.files, 'etc/qemu-harden/allowed_signers')), readFileSync(signers));
    const sigs = readdirSync(join(dir, 'v3/h1/signatures'));
    assert.equal(sigs.length, 1);
    assert.deepEqual(
      readFileSync(join(h1.files, 'var/lib/qemu-harden/.installed/current/signatures', sigs[0]!)),
      readFileSync(join(dir, 'v3/h1/signatures', sigs[0]!)),
    );
    assert.match(
      r.output,
      /the team's allowed_signers: signatures\/\S+\.sig: Good \\"qemu-harden\\" signature for ops@example\.com with ED25519 key SHA256:/,
    );
    assert.equal(recap(r.output).h2?.changed, 0, 'the check changes nothing on the host it refuses');
    assert.match(
      r.output,
      /TASK \[qemu_harden : Check every staged file against it \(sha256sum --check\)\] \*+\nok: \[h1\]/,
      'h1 checked the staged files against the signed manifest',
    );
    assert.notEqual(mainPid('h1', 'beta'), before['h1/beta'], 'beta restarted under its new unit');
    const st = await cli(['status', '--root', h1.files]);
    assert.match(
      st.stdout,
      /Signed by ops@example\.com \(ED25519 key SHA256:\S+\), allowed by .*\/etc\/qemu-harden\/allowed_signers\./,
    );

    // An export with no trust file and unsigned bundles: h1 is enrolled and holds its bundle to its own file.
    const h1Tree = treeHash(h1.writes);
    const h1Pids = allPids();
    await exportBundles('v2');
    // h1 alone: h2 is not enrolled, and the runs before showed such a host taking an unsigned bundle.
    const again = play('--limit', 'h1');
    assert.equal(again.code, 2, again.output);
    assert.equal(recap(again.output).h1?.failed, 1, again.output);
    assert.match(
      again.output,
      /bundles\/h1 is not signed as this host requires; nothing was changed on this host: signatures: none: the bundle is not signed; \/etc\/qemu-harden\/allowed_signers: requires 1 distinct signers it allows; 0 signed/,
    );
    assert.equal(treeHash(h1.writes), h1Tree, 'nothing changed on h1');
    assert.equal(mainPid('h1', 'alpha'), h1Pids['h1/alpha']);
  });

  test('8. a guest whose shared folder is taken away: its virtiofsd stops, its units and profile leave (backed up), the guest restarts without it, the folder stays; a host the export has no bundle for fails, saying so', async () => {
    const h2 = cts.h2!;
    const fsFiles = readFileSync(join(bundles.h2!, 'MANIFEST.sha256'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.slice(66 + 'root'.length))
      .filter((f) => f.includes('gamma-fs0'));
    for (const kind of ['.service', '.socket'])
      assert.ok(
        fsFiles.includes(`/etc/systemd/system/qemu-gamma-fs0${kind}`),
        `the virtiofsd's files: ${fsFiles.join(' ')}`,
      );
    assert.ok(
      fsFiles.some((f) => f.startsWith('/etc/apparmor.d/')),
      `the virtiofsd's profile: ${fsFiles.join(' ')}`,
    );
    const installed = Object.fromEntries(fsFiles.map((f) => [f, readFileSync(join(h2.files, f))]));
    const before = mainPid('h2', 'gamma');
    const virtiofsds = () => h2.sh('grep -slx virtiofsd /proc/[0-9]*/comm').stdout;
    assert.equal(virtiofsds(), `/proc/${helperPid('h2', 'gamma', 'fs0')}/comm\n`, 'gamma’s virtiofsd runs');
    // An export of h2's new bundle alone: h2 is not enrolled, so an unsigned bundle is what it takes. The inventory
    // still lists h1, for which the export has no bundle: h1 fails at once, saying so, and h2 goes on.
    const v4 = await generate('v4', 'h2', V1.h2!, ['gamma']);
    const exported = await cli(['export', 'ansible', '--host', `h2=${v4}`, '--out', out, '--force']);
    assert.equal(exported.code, 0, exported.stderr);
    const h1Tree = treeHash(cts.h1!.writes);
    const r = play();
    assert.equal(r.code, 2, r.output);
    assert.equal(recap(r.output).h1?.failed, 1, r.output);
    assert.equal(recap(r.output).h1?.changed, 0, r.output);
    assert.match(
      r.output,
      /bundles\/h1 is not there; nothing was changed on this host: the export has no bundle for h1; export one for it \(qemu-harden export ansible --host h1=BUNDLE\), or leave it out of the play \(--limit\)/,
    );
    assert.equal(treeHash(cts.h1!.writes), h1Tree, 'nothing changed on h1');
    assert.ok(recap(r.output).h2!.changed > 0 && recap(r.output).h2!.failed === 0, r.output);

    for (const f of fsFiles) assert.ok(!existsSync(join(h2.files, f)), `${f} is gone`);
    for (const kind of ['service', 'socket'])
      assert.equal(
        h2.exec(['systemctl', 'is-active', `qemu-gamma-fs0.${kind}`]).stdout.trim(),
        'inactive',
        `qemu-gamma-fs0.${kind} is stopped`,
      );
    assert.equal(virtiofsds(), '', 'no virtiofsd is left');
    const pid = mainPid('h2', 'gamma');
    assert.ok(pid > 0 && pid !== before, 'gamma restarted under its new unit');
    assert.ok(!cmdline('h2', pid).join(' ').includes('vhost-user-fs-pci'), 'without the folder’s device');
    assert.equal(
      readFileSync(join(h2.files, SHARES.gamma!.path, 'hello.txt'), 'utf8'),
      'shared read-only\n',
      'the folder and its files stay where they were',
    );
    for (const f of fsFiles) {
      const copies = backupsOf('h2', f);
      assert.equal(copies.length, 1, `${f} is backed up once`);
      assert.deepEqual(readFileSync(copies[0]!), installed[f], `${f}: the backup is the installed file`);
    }
  });
});

describe('export ansible: bundles and hosts on the command line', () => {
  const dir = tempDir({ after }, 'qh-ansible-cli-');
  const bundle = async (name: string) => {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, answers({ [name]: 64 }));
    const b = join(dir, 'bundles', name);
    assert.equal((await cli(['generate', '--answers', file, '--out', b])).code, 0);
    return b;
  };

  test('a bare bundle goes to the host named like its directory; --host names it', async () => {
    const [web1, other] = [await bundle('web1'), await bundle('other')];
    const out = join(dir, 'out');
    const r = await cli(['export', 'ansible', web1, '--host', `db-2.example=${other}`, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(join(out, 'inventory.ini'), 'utf8'), /^\[qemu_harden\]\nweb1\ndb-2\.example\n$/m);
    assert.deepEqual(
      readFileSync(join(out, 'bundles/db-2.example/answers.json')),
      readFileSync(join(other, 'answers.json')),
    );
  });

  test('refused with exit 2 and nothing written: a tampered bundle, a bad host name, two bundles for one host', async () => {
    const b = await bundle('tampered');
    appendFileSync(join(b, 'root/etc/sysusers.d/qemu-harden.conf'), 'u intruder - - /\n');
    const out = join(dir, 'refused');
    const cases: [string[], RegExp][] = [
      [
        [b],
        /^qemu-harden: .*tampered does not match its manifest; nothing was written:\nqemu-harden: {3}root\/etc\/sysusers\.d\/qemu-harden\.conf: changed/,
      ],
      [['--host', `bad host=${b}`], /--host bad host=.*: "bad host" is not a usable inventory hostname/],
      [
        ['--host', `x=${join(dir, 'bundles/web1')}`, '--host', `x=${join(dir, 'bundles/other')}`],
        /host x already gets/,
      ],
      [['--host', 'novalue'], /--host novalue: expected NAME=BUNDLE/],
      [[], /needs at least one bundle/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(['export', 'ansible', ...args, '--out', out]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.throws(() => lstatSync(out), /ENOENT/, 'nothing written');
    }
  });
});
