// Proofs 2 and 3 under real systemd in a container: `qemu-harden apply --root` installs the bundle into a
// throwaway root, systemd-nspawn boots it, `systemctl start` runs each guest, and /proc says who it runs as.
// Where KVM works the bundle is the preset's own (KVM); where it does not, the same bundle switched to emulation
// (TCG, acknowledged) proves everything that does not depend on the accelerator, and the KVM-only checks are
// reported as not run, with the reason. This host's cgroup hierarchy is v1 hybrid, which gives a container no controllers: systemd's
// limits are checked as systemd holds them here, and as the kernel enforces them in test/vm/confinement.ts.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { validate } from '../src/answers.js';
import { cpuQuotaPercent, memoryMaxMiB } from '../src/guest.js';
import { loadPreset } from '../src/sources/preset.js';
import { BOOT_MARKER, writeBootDisk } from './bootdisk.js';
import { Container } from './container.js';
import { cli, kvm, requireTool, tempDir, waitUntil } from './helpers.js';
import { diskSwapDropIn } from './unitfile.js';

const HOSTILE_DISK = '/images/ga mm%a$x"q\\,y\'z:w.img';
const HOSTILE_DESCRIPTION = 'tenant 50% "gamma" \\ $HOME ; %n';

interface Case {
  preset: string;
  disks: Record<string, string>;
  /** A guest in the bundle that is never started, whose directory does not exist in the container. */
  absent?: { name: string; disk: string };
}

const CASES: Case[] = [
  { preset: 'multi-tenant', disks: { alpha: '/images/alpha.img', beta: '/images/beta.img', gamma: HOSTILE_DISK } },
  { preset: 'kvm-tap', disks: { web: '/images/web.img' }, absent: { name: 'spare', disk: '/spare/spare/disk.img' } },
];

for (const c of CASES) {
  const k = kvm();
  describe(`${c.preset}: installed with apply --root, started by real systemd in a container (${k.works ? 'KVM' : 'TCG'})`, () => {
    const dir = tempDir({ after }, 'qh-nspawn-');
    const ct = new Container(dir);
    let answers: ReturnType<typeof validate>;
    let running: ReturnType<typeof validate>['guests'];
    const pids = new Map<string, number>();
    after(() => ct.stop());

    before(async () => {
      for (const [tool, pkg] of [
        ['systemd-nspawn', 'systemd-container'],
        ['nsenter', 'util-linux'],
        ['qemu-system-x86_64', 'qemu-system-x86'],
      ] as const)
        requireTool(tool, pkg);
      chmodSync(dir, 0o755);
      const images = join(dir, 'images');
      mkdirSync(images);
      chmodSync(images, 0o755);
      const doc = structuredClone(loadPreset(c.preset).answers) as {
        useCase: string;
        acceptedRisks?: unknown[];
        guests: Record<string, unknown>[];
      };
      if (!k.works) {
        doc.useCase = 'emulation';
        doc.acceptedRisks = [
          ...(doc.acceptedRisks ?? []),
          { risk: 'emulation', reason: 'this machine runs the proof without KVM; its guests are test boot sectors' },
        ];
      }
      for (const g of doc.guests) {
        const disk = c.disks[g.name as string]!;
        writeBootDisk(join(images, disk.slice('/images/'.length)));
        g.disks = [{ path: disk, format: 'raw' }];
        if (k.works) g.cpu = { model: 'host', features: ['-arch-capabilities'] };
        g.memoryMiB = 256;
        if (g.name === 'gamma') g.description = HOSTILE_DESCRIPTION;
        if ((g.network as { mode: string } | undefined)?.mode === 'tap')
          (g.network as { vhost: boolean }).vhost = false;
      }
      if (c.absent) doc.guests.push({ name: c.absent.name, disks: [{ path: c.absent.disk, format: 'raw' }] });
      answers = validate(doc);
      running = answers.guests.filter((g) => g.name !== c.absent?.name);
      const answersFile = join(dir, 'answers.json');
      writeFileSync(answersFile, JSON.stringify(doc));
      const bundle = join(dir, 'bundle');
      const gen = await cli(['generate', '--answers', answersFile, '--out', bundle]);
      assert.equal(gen.code, 0, gen.stderr);
      ct.prepare();
      const applied = await cli(['apply', bundle, '--root', ct.root, '--yes']);
      assert.equal(applied.code, 0, applied.stderr + applied.stdout);
      await ct.boot({ binds: { [images]: '/images' }, privateNetwork: true });
      for (const g of answers.guests)
        if (g.network.mode === 'tap' && g.network.bridge)
          assert.equal(ct.exec(['ip', 'link', 'add', g.network.bridge, 'type', 'bridge']).code, 0);
    });

    test('each guest starts, boots, and runs as its own user with no capabilities, NoNewPrivs and seccomp', async () => {
      for (const g of running) {
        const unit = `qemu-${g.name}.service`;
        const start = ct.exec(['systemctl', 'start', unit]);
        assert.equal(
          start.code,
          0,
          `${unit}: ${start.stderr}\n${ct.exec(['journalctl', '-b', '-u', unit, '--no-pager']).stdout}`,
        );
        const log = `/var/log/qemu-harden/${g.name}/serial.log`;
        await waitUntil(
          `${g.name}: the marker on the serial console`,
          () => ct.sh(`grep -q '${BOOT_MARKER}' ${log}`).code === 0,
          {
            detail: () => ct.exec(['journalctl', '-b', '-u', unit, '--no-pager']).stdout,
          },
        );
        const pid = Number(ct.exec(['systemctl', 'show', '-p', 'MainPID', '--value', unit]).stdout.trim());
        assert.ok(pid > 0);
        pids.set(g.name, pid);
        const status = ct.exec(['cat', `/proc/${pid}/status`]).stdout;
        const field = (k: string) => new RegExp(`^${k}:\\s+(.*)$`, 'm').exec(status)![1]!.split(/\s+/);
        const uid = ct.exec(['id', '-u', `qemu-${g.name}`]).stdout.trim();
        const gid = ct.exec(['id', '-g', `qemu-${g.name}`]).stdout.trim();
        assert.notEqual(uid, '0');
        assert.deepEqual(field('Uid'), [uid, uid, uid, uid]);
        assert.deepEqual(field('Gid'), [gid, gid, gid, gid]);
        assert.deepEqual(field('CapEff'), ['0000000000000000']);
        assert.deepEqual(field('NoNewPrivs'), ['1']);
        assert.deepEqual(field('Seccomp'), ['2']);
        const cgroup = ct.exec(['cat', `/proc/${pid}/cgroup`]).stdout;
        assert.match(cgroup, new RegExp(`:/qemu\\.slice/qemu-${g.name}\\.service$`, 'm'));
      }
    });

    test(
      'under KVM: each unit runs QEMU with -accel kvm and /dev/kvm open, allowed by its device policy',
      { skip: k.works ? false : `not run: ${k.why}` },
      () => {
        for (const g of running) {
          const unit = `qemu-${g.name}.service`;
          const pid = pids.get(g.name)!;
          assert.equal(
            ct.sh(`tr '\\0' '\\n' < /proc/${pid}/cmdline | grep -A1 -x -- -accel | tail -1`).stdout.trim(),
            'kvm',
          );
          assert.match(ct.exec(['systemctl', 'show', '-p', 'DeviceAllow', '--value', unit]).stdout, /\/dev\/kvm rw/);
          assert.match(
            ct.sh(`ls -l /proc/${pid}/fd/`).stdout,
            / -> \/dev\/kvm$/m,
            `${g.name}'s QEMU holds /dev/kvm open`,
          );
        }
      },
    );

    test('systemd holds each unit’s limits', () => {
      for (const g of running) {
        const show = ct.exec([
          'systemctl',
          'show',
          '-p',
          'MemoryMax',
          '-p',
          'CPUQuotaPerSecUSec',
          '-p',
          'TasksMax',
          '-p',
          'Slice',
          `qemu-${g.name}.service`,
        ]).stdout;
        assert.match(show, new RegExp(`^MemoryMax=${memoryMaxMiB(g) * 1024 * 1024}$`, 'm'));
        assert.match(show, new RegExp(`^CPUQuotaPerSecUSec=${cpuQuotaPercent(g) / 100}s$`, 'm'));
        assert.match(show, new RegExp(`^TasksMax=${g.limits.tasksMax}$`, 'm'));
        assert.match(show, /^Slice=qemu\.slice$/m);
      }
    });

    if (c.absent) {
      const { name, disk } = c.absent;
      test(`a guest starts while another guest’s directory does not exist yet; systemd makes it an empty directory`, () => {
        const other = running[0]!.name;
        const unit = readFileSync(join(ct.root, `etc/systemd/system/qemu-${other}.service`), 'utf8');
        const dir = disk.slice(0, disk.lastIndexOf('/'));
        assert.ok(unit.includes(`TemporaryFileSystem=${dir}:ro`), `${other}’s unit empties ${dir}`);
        assert.equal(ct.exec(['systemctl', 'is-active', `qemu-${other}.service`]).stdout.trim(), 'active');
        assert.equal(ct.exec(['systemctl', 'is-active', `qemu-${name}.service`]).stdout.trim(), 'inactive');
        assert.equal(ct.sh(`find ${dir} -mindepth 1 | wc -l`).stdout.trim(), '0', `${dir} exists and is empty`);
      });
    }

    if (c.preset === 'multi-tenant') {
      test('a disk path full of systemd, QEMU and shell metacharacters reaches QEMU as exactly that file', () => {
        const pid = pids.get('gamma')!;
        const fds = ct.sh(`ls -l /proc/${pid}/fd/`).stdout;
        assert.ok(fds.includes(HOSTILE_DISK), `gamma holds ${HOSTILE_DISK} open:\n${fds}`);
      });

      test('a description full of specifiers, quotes and variables is read by systemd as exactly that text', () => {
        const d = ct.exec(['systemctl', 'show', '-p', 'Description', '--value', 'qemu-gamma.service']).stdout.trim();
        assert.equal(d, `QEMU guest gamma (${HOSTILE_DESCRIPTION})`);
      });

      test('each guest sees only its own disk and directories: the others’ are not there at all', () => {
        const own: Record<string, string> = {
          alpha: 'alpha.img',
          beta: 'beta.img',
          gamma: HOSTILE_DISK.slice('/images/'.length),
        };
        for (const g of answers.guests) {
          const inside = (...argv: string[]) => ct.exec(['nsenter', '-t', String(pids.get(g.name)), '-m', ...argv]);
          assert.deepEqual(
            inside('ls', '-A', '/images').stdout.split('\n').filter(Boolean),
            [own[g.name]],
            `${g.name}'s /images`,
          );
          for (const base of ['/run/qemu-harden', '/var/lib/qemu-harden', '/var/log/qemu-harden'])
            assert.deepEqual(
              inside('ls', '-A', base).stdout.split('\n').filter(Boolean),
              [g.name],
              `${g.name}'s ${base}`,
            );
          for (const other of answers.guests.filter((o) => o.name !== g.name)) {
            const st = inside('stat', '-c', '%s', other.disks[0]!.path);
            assert.notEqual(st.code, 0, `${g.name} must not see ${other.name}'s disk`);
            assert.match(st.stderr, /No such file or directory/);
          }
          assert.match(
            inside('findmnt', '-n', '-o', 'OPTIONS', '/images').stdout,
            /^ro,/,
            'the emptied directory is read-only',
          );
        }
        assert.equal(
          ct.exec(['stat', '-c', '%s', HOSTILE_DISK]).stdout.trim(),
          String(1024 * 1024),
          'outside the guests the disk is still there',
        );
      });

      test('each guest’s own disk, bound back by BindPaths=, is open read-write', () => {
        for (const g of answers.guests) {
          const pid = pids.get(g.name)!;
          const fds = ct
            .sh(`for f in /proc/${pid}/fd/*; do printf '%s\\t%s\\n' "$f" "$(readlink "$f")"; done`)
            .stdout.split('\n');
          const fd = fds
            .find((l) => l.endsWith(`\t${g.disks[0]!.path}`))
            ?.split('\t')[0]
            ?.replace('/fd/', '/fdinfo/');
          assert.ok(fd, `${g.name} holds ${g.disks[0]!.path} open`);
          const flags = parseInt(/^flags:\s+([0-7]+)$/m.exec(ct.exec(['cat', fd]).stdout)![1]!, 8);
          assert.equal(flags & 3, 2, `${g.name}'s disk is opened O_RDWR`);
        }
      });

      test('guest A pointed at guest B’s disk (mode 0666) cannot open it under systemd', () => {
        const unit = readFileSync(join(ct.root, 'etc/systemd/system/qemu-alpha.service'), 'utf8');
        ct.exec(['systemctl', 'stop', 'qemu-alpha.service']);
        ct.sh('chmod 0666 /images/beta.img');
        ct.exec(['mkdir', '-p', '/run/systemd/system/qemu-alpha.service.d']);
        ct.exec(
          ['tee', '/run/systemd/system/qemu-alpha.service.d/beta.conf'],
          diskSwapDropIn(unit, '/images/alpha.img', '/images/beta.img'),
        );
        ct.exec(['systemctl', 'daemon-reload']);
        ct.exec(['systemctl', 'start', 'qemu-alpha.service']);
        let journal = '';
        for (let i = 0; i < 40 && !journal.includes('Could not open'); i++) {
          spawnSleep(250);
          journal = ct.exec(['journalctl', '-b', '-u', 'qemu-alpha.service', '--no-pager', '-o', 'cat']).stdout;
        }
        assert.match(journal, /Could not open '\/images\/beta\.img': No such file or directory/);
        assert.notEqual(ct.exec(['systemctl', 'is-active', 'qemu-alpha.service']).stdout.trim(), 'active');
        assert.equal(ct.sh('stat -c %a /images/beta.img').stdout.trim(), '666', 'DAC alone would have allowed it');
      });
    }
  });
}

function spawnSleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
