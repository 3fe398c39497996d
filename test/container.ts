// Real systemd in a throwaway container: systemd-nspawn boots a root made of a copy of /etc and the host's
// /usr (read-only), or a whole system of another release (an overlay over a cached tree, booted with its own
// systemd), with private device nodes bound in, only of devices this machine has. The host's own /dev/kvm,
// /dev/net/tun, users and /etc are never touched.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  closeSync,
} from 'node:fs';
import { join } from 'node:path';
import { kvm, waitUntil } from './helpers.js';

export interface ContainerOptions {
  /** Host directories bound read-write: host path → path in the container. */
  binds?: Record<string, string>;
  /** Host directories bound read-only: host path → path in the container. */
  bindsRo?: Record<string, string>;
  privateNetwork?: boolean;
  /** Devices given to the container as private nodes; by default kvm where KVM works, and tun. */
  devices?: Device[];
}

export type Device = 'kvm' | 'tun';
const DEVICES: Record<Device, { path: string; minor: number }> = {
  kvm: { path: '/dev/kvm', minor: 232 },
  tun: { path: '/dev/net/tun', minor: 200 },
};

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The timers a release starts on its own (enabled in `etc`'s timers.target.wants, or wanted statically from
 * `usr`'s): dpkg's database backup and logrotate at midnight, fstrim and e2scrub weekly, the tmpfiles cleanup a
 * quarter of an hour after boot. Any of them may write to the container's disk while a test hashes it, so a run
 * that spans midnight would fail for reasons of the calendar.
 */
function timersOf(etcRoot: string, usrRoot: string): string[] {
  const list = (d: string) => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.timer')) : []);
  return [
    ...new Set([
      ...list(join(etcRoot, 'etc/systemd/system/timers.target.wants')),
      ...list(join(usrRoot, 'usr/lib/systemd/system/timers.target.wants')),
    ]),
  ];
}

/** Masks each unit in the container's /etc/systemd/system (`dir`), replacing what the root has there. */
function mask(dir: string, units: string[]): void {
  for (const unit of units) {
    rmSync(join(dir, unit), { force: true });
    symlinkSync('/dev/null', join(dir, unit));
  }
}

export class Container {
  readonly root: string;
  private child: ChildProcess | undefined;
  private leader = 0;
  /** Set by prepareSystem(): the lower layer of the overlay the root is, a tree that brings its own /usr. */
  private system: string | undefined;

  constructor(readonly dir: string) {
    this.root = join(dir, 'root');
  }

  /** Lay out the root: a copy of /etc with a real os-release, an empty machine-id, merged-/usr links. */
  prepare(): void {
    mkdirSync(this.root, { recursive: true });
    execFileSync('cp', ['-a', '/etc', join(this.root, 'etc')]);
    rmSync(join(this.root, 'etc/os-release'), { force: true });
    copyFileSync('/usr/lib/os-release', join(this.root, 'etc/os-release'));
    mkdirSync(join(this.root, 'usr/lib'), { recursive: true });
    copyFileSync('/usr/lib/os-release', join(this.root, 'usr/lib/os-release'));
    writeFileSync(join(this.root, 'etc/machine-id'), '');
    for (const d of ['bin', 'lib', 'lib64', 'sbin']) symlinkSync(`usr/${d}`, join(this.root, d));
    const wants = join(this.root, 'etc/systemd/system');
    mkdirSync(wants, { recursive: true });
    writeTestGuestStopDropIn(wants);
    mask(wants, ['console-getty.service', 'systemd-timesyncd.service', ...timersOf(this.root, '/')]);
  }

  /**
   * Lay out the root as a whole system of its own: an overlay whose lower layer is `tree` (never written, so a
   * cached tree serves every run) and whose upper layer is this container's directory. The overlay is mounted in
   * a mount namespace of the container's own when it boots, so it goes away with the container however the test
   * ends; from the host, the root is read through /proc/PID/root of the container's init. It boots with the
   * tree's own systemd and /usr, on a cgroup v2 hierarchy of its own (systemd 256 and newer refuse v1).
   */
  prepareSystem(tree: string): void {
    for (const d of ['upper', 'work', 'root']) mkdirSync(join(this.dir, d), { recursive: true });
    this.system = tree;
    const system = join(this.dir, 'upper/etc/systemd/system');
    mkdirSync(system, { recursive: true });
    writeTestGuestStopDropIn(system);
    mask(system, ['console-getty.service', 'cron.service', ...timersOf(tree, tree)]);
  }

  /** The timers waiting to fire in the booted container (none: the release's own are masked). */
  timers(): string[] {
    const r = this.exec(['systemctl', 'list-timers', '--no-legend', '--plain']);
    if (r.code !== 0) throw new Error(`systemctl list-timers: ${r.stderr}`);
    return r.stdout
      .split('\n')
      .map((l) => /(\S+\.timer)\s/.exec(l)?.[1])
      .filter((u): u is string => u !== undefined);
  }

  /** A private node for each device the container gets, bound over its path there; never one the host lacks. */
  private deviceBinds(devices: Device[]): string[] {
    return devices.map((name) => {
      const { path, minor } = DEVICES[name];
      if (!existsSync(path)) throw new Error(`the container was asked for ${path}, which this machine does not have`);
      const node = join(this.dir, `dev-${name}`);
      if (!existsSync(node)) execFileSync('mknod', ['-m', '0600', node, 'c', '10', String(minor)]);
      return `--bind=${node}:${path}`;
    });
  }

  /** Boots the container and waits until its systemd says it is running (or degraded); a boot takes ~5-10 s idle. */
  async boot(opts: ContainerOptions = {}, timeoutMs = 300_000): Promise<void> {
    const args = [
      '-D',
      this.root,
      ...(this.system ? [] : ['--bind-ro=/usr']),
      '--register=no',
      '--keep-unit',
      '--quiet',
      ...this.deviceBinds(
        opts.devices ?? [
          ...(kvm().works ? (['kvm'] as const) : []),
          ...(existsSync('/dev/net/tun') ? (['tun'] as const) : []),
        ],
      ),
      ...Object.entries(opts.binds ?? {}).map(([h, c]) => `--bind=${h}:${c}`),
      ...Object.entries(opts.bindsRo ?? {}).map(([h, c]) => `--bind-ro=${h}:${c}`),
      ...(opts.privateNetwork ? ['--private-network'] : []),
      '--boot',
    ];
    const log = openSync(join(this.dir, 'console.log'), 'w');
    this.child = this.system
      ? spawn(
          'unshare',
          [
            '--mount',
            '--propagation',
            'private',
            '--',
            'sh',
            '-c',
            'mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && shift 3 && exec systemd-nspawn -D "$@"',
            'sh',
            this.system,
            join(this.dir, 'upper'),
            join(this.dir, 'work'),
            ...args.slice(1),
          ],
          {
            stdio: ['ignore', log, log],
            detached: true,
            env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1' },
          },
        )
      : spawn('systemd-nspawn', args, { stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      this.leader = this.findLeader();
      if (this.leader) {
        const state = this.exec(['systemctl', 'is-system-running']).stdout.trim();
        if (state === 'running' || state === 'degraded') return;
      }
      if (this.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`the container did not come up:\n${this.consoleLog().slice(-3000)}`);
  }

  /**
   * Where what the container writes lands, seen from this host: the root itself, or a whole system's upper layer
   * (before the boot too). Only what the container changed is there, so a hash of it says whether anything did.
   */
  get writes(): string {
    return this.system ? join(this.dir, 'upper') : this.root;
  }

  /** The container's files as this host reads them: the root, or a booted whole system's root through its init. */
  get files(): string {
    return this.system ? `/proc/${this.leader}/root` : this.root;
  }

  /** The PID, on this host, of the container's systemd: what `nsenter -t` enters. */
  get pid(): number {
    return this.leader;
  }

  private findLeader(): number {
    const pid = this.child?.pid;
    if (!pid) return 0;
    for (const task of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const stat = readFileSync(`/proc/${task}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) return Number(task);
      } catch {
        continue;
      }
    }
    return 0;
  }

  /** Runs argv in the container; the deadline only ends a command that hangs (`systemctl start` waits for a guest). */
  exec(argv: string[], input?: string): ExecResult {
    const r = spawnSync('nsenter', ['-t', String(this.leader), '-a', ...argv], {
      encoding: 'utf8',
      input,
      timeout: 600_000,
    });
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  sh(script: string): ExecResult {
    return this.exec(['sh', '-c', script]);
  }

  consoleLog(): string {
    try {
      return readFileSync(join(this.dir, 'console.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * Power off, then make sure nothing of the container is left running: its init is the root of a PID
   * namespace, so killing it ends every process the container started, QEMU included.
   */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && this.leader) this.exec(['systemctl', 'poweroff', '--no-block']);
    const exited = (ms: number) =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(true);
        const t = setTimeout(() => resolve(false), ms);
        child.once('exit', () => {
          clearTimeout(t);
          resolve(true);
        });
      });
    await exited(15_000);
    const alive = (pid: number) => pid > 0 && existsSync(`/proc/${pid}`);
    if (alive(this.leader)) process.kill(this.leader, 'SIGKILL');
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      await exited(10_000);
    }
    await waitUntil(`the container's init (pid ${this.leader}) to end`, () => !alive(this.leader));
  }
}

/**
 * The test guests are boot sectors and firmware that never answer the ACPI power button, so stopping one waits
 * out the unit's TimeoutStopSec= (90 s) before SIGTERM. In the test systems every qemu-*.service gets 3 s
 * instead, through a prefix drop-in: the stop still goes through ExecStop= and its powerdown first.
 */
export function writeTestGuestStopDropIn(systemDir: string): void {
  mkdirSync(join(systemDir, 'qemu-.service.d'), { recursive: true });
  writeFileSync(join(systemDir, 'qemu-.service.d', 'test-guests-stop.conf'), '[Service]\nTimeoutStopSec=3\n');
}
