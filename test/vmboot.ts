// A real Debian kernel (AppArmor on, cgroup v2) booting real systemd under TCG, for the proofs a container on
// this host cannot give: AppArmor enforcement, cgroup v2 limits, udevd applying rules. The root file system is
// a tmpfs built from a tree the test prepares; /usr and the repository come from the host read-only over 9p.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { writeTestGuestStopDropIn } from './container.js';
import { aptMirror } from './debian-root.js';
import { cacheNotice, REPO, requireTool } from './helpers.js';

export const KERNEL_CACHE = join(REPO, '.cache', 'kernel');

export interface Kernel {
  version: string;
  vmlinuz: string;
  modulesDir: string;
}

/** apt's options for the archive of another Debian suite: its own source list, package lists and downloads under `dir`. */
function suiteApt(dir: string): string[] {
  return [
    '-o',
    `Dir::Etc::SourceList=${join(dir, 'sources.list')}`,
    '-o',
    'Dir::Etc::SourceParts=/dev/null',
    '-o',
    `Dir::State::Lists=${join(dir, 'lists')}`,
    '-o',
    `Dir::Cache=${join(dir, 'cache')}`,
    '-o',
    'Dir::State::Status=/dev/null',
  ];
}

/**
 * The package linux-image-amd64 depends on, its candidate version, and every package of that version the kernel is
 * split into (from Debian 14 on, linux-image-X only depends on linux-binary-X and linux-modules-X): what apt-get would
 * download now.
 */
function aptCandidate(apt: string[] = []): { pkg: string; version: string; parts: string[] } | undefined {
  const deps = execFileSync('apt-cache', [...apt, 'depends', 'linux-image-amd64'], { encoding: 'utf8' });
  const pkg = /Depends: (linux-image-[0-9][^\s]*-amd64)$/m.exec(deps)?.[1];
  if (!pkg) return undefined;
  const show = execFileSync('apt-cache', [...apt, 'show', '--no-all-versions', pkg], { encoding: 'utf8' });
  const version = /^Version: (\S+)$/m.exec(show)?.[1];
  if (!version) return undefined;
  const depends = /^Depends: (.*)$/m.exec(show)?.[1] ?? '';
  const flavour = pkg.replace(/^linux-image-/, '');
  const parts = [...depends.matchAll(/\b(linux-(?:binary|modules)-[^\s,]+) \(= ([^)]+)\)/g)]
    .filter((m) => m[1]!.endsWith(flavour) && m[2] === version)
    .map((m) => m[1]!);
  return { pkg, version, parts: [pkg, ...parts] };
}

/**
 * The kernel of Debian's linux-image-amd64, downloaded with apt-get download and unpacked, never installed: from
 * the archive apt uses here, or with `suite` from that suite of the same mirror (apt's own lists for it are kept
 * under the cache, its Release file checked against the keys apt trusts here). The cache is keyed by the package's
 * name and version (cache/<package>_<version>): a new kernel in the archive makes a new entry. Test files starting
 * side by side may all find it missing: one builds it under a lock, into a directory renamed into place when
 * complete, and the others wait for that and use it.
 */
export function ensureKernel(cache = KERNEL_CACHE, suite?: string): Kernel {
  mkdirSync(cache, { recursive: true });
  let apt: string[] = [];
  const update = () => {
    if (suite) execFileSync('flock', [join(cache, '.lock'), 'apt-get', '-qq', ...apt, 'update'], { stdio: 'pipe' });
    else execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  };
  if (suite) {
    const dir = join(cache, `apt-${suite}`);
    mkdirSync(join(dir, 'lists', 'partial'), { recursive: true });
    mkdirSync(join(dir, 'cache', 'archives', 'partial'), { recursive: true });
    writeFileSync(join(dir, 'sources.list'), `deb ${aptMirror()} ${suite} main\n`);
    apt = suiteApt(dir);
    if (!readdirSync(join(dir, 'lists')).some((f) => f.endsWith('_Packages'))) update();
  }
  let candidate = aptCandidate(apt);
  if (!candidate) {
    update();
    candidate = aptCandidate(apt);
  }
  if (!candidate)
    throw new Error(`apt-cache knows no linux-image-amd64${suite ? ` in ${suite}` : ''}: check /etc/apt/sources.list`);
  const { pkg, version: debVersion } = candidate;
  const version = pkg.replace(/^linux-image-/, '');
  const root = join(cache, `${pkg}_${debVersion}`);
  // Debian 12's kernel is /boot/vmlinuz-X with its modules under /lib/modules; Debian 13's modules are under
  // /usr/lib/modules; from Debian 14 on both are under /usr/lib/modules/X.
  const usrModules = join(root, 'usr', 'lib', 'modules', version);
  const layouts = [
    { vmlinuz: join(root, 'boot', `vmlinuz-${version}`), modulesDir: join(root, 'lib', 'modules', version) },
    { vmlinuz: join(root, 'boot', `vmlinuz-${version}`), modulesDir: usrModules },
    { vmlinuz: join(usrModules, 'vmlinuz'), modulesDir: usrModules },
  ];
  const found = () => layouts.find((l) => existsSync(l.vmlinuz) && existsSync(l.modulesDir));
  if (!found()) {
    // A suite's lists may be older than its archive, which no longer has that version: fresh lists name the current one.
    if (suite) update();
    const now = (suite && aptCandidate(apt)) || candidate;
    if (now.version !== debVersion) return ensureKernel(cache, suite);
    const started = Date.now();
    cacheNotice(
      `building ${root}: apt-get download ${now.parts.map((p) => `${p}=${debVersion}`).join(' ')}, unpacked (once)`,
    );
    // apt-get downloads as the _apt user: the directory it downloads into must be writable by it.
    const build = `set -e
root=$1 version=$2; shift 2
[ -d "$root" ] && exit 0
part=$(mktemp -d "$root.part-XXXXXX")
trap 'rm -rf "$part"' EXIT
chmod 0777 "$part"
cd "$part"
for p in "$@"; do apt-get download -q ${apt.map((a) => `'${a}'`).join(' ')} "$p=$version"; done
for d in ./*.deb; do dpkg-deb -x "$d" "$part/root"; done
mv "$part/root" "$root"`;
    execFileSync('flock', [join(cache, '.lock'), 'sh', '-c', build, 'sh', root, debVersion, ...now.parts], {
      stdio: 'pipe',
    });
    if (!found()) throw new Error(`${root} has no vmlinuz for ${version} after unpacking ${now.parts.join(', ')}`);
    cacheNotice(`${root} is ready (${Math.round((Date.now() - started) / 1000)} s)`);
  }
  const l = found()!;
  return { version, vmlinuz: l.vmlinuz, modulesDir: l.modulesDir };
}

/** A module's file: NAME.ko, or compressed as Debian ships them from Debian 13 on (NAME.ko.xz). */
const MODULE_FILE = /^(.*)\.ko(\.xz)?$/;

/** The module's name as insmod and the initramfs know it: its file's, without .xz. */
export function moduleFileName(path: string): string {
  return path.split('/').at(-1)!.replace(/\.xz$/, '');
}

/** The module itself, decompressed: busybox's insmod hands the kernel what it reads. */
function moduleBytes(path: string): Buffer {
  return path.endsWith('.xz') ? execFileSync('xz', ['-dc', path], { maxBuffer: 64 << 20 }) : readFileSync(path);
}

function findModule(k: Kernel, name: string): string {
  const wants = new Set([name, name.replaceAll('_', '-')]);
  const walk = (d: string): string | undefined => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        const r = walk(p);
        if (r) return r;
      } else if (wants.has(MODULE_FILE.exec(e.name)?.[1] ?? '')) return p;
    }
    return undefined;
  };
  const found = walk(join(k.modulesDir, 'kernel'));
  if (!found) throw new Error(`module ${name} not in ${k.version}`);
  return found;
}

/** Modules in load order, dependencies first, read from each module's own "depends=" record. */
export function moduleClosure(k: Kernel, names: string[]): string[] {
  const order: string[] = [];
  const visit = (name: string) => {
    if (order.some((p) => [name, name.replaceAll('_', '-')].includes(moduleFileName(p).slice(0, -3)))) return;
    const path = findModule(k, name);
    const info = moduleBytes(path).toString('latin1');
    const m = /\0depends=([^\0]*)\0/.exec(info);
    for (const dep of (m?.[1] ?? '').split(',').filter(Boolean)) visit(dep);
    order.push(path);
  };
  names.forEach(visit);
  return order;
}

/** Writes each module, decompressed, into `dir` under its name; returns the names in load order. */
export function copyModules(paths: string[], dir: string): string[] {
  return paths.map((p) => {
    writeFileSync(join(dir, moduleFileName(p)), moduleBytes(p));
    return moduleFileName(p);
  });
}

export interface VmSpec {
  kernel: Kernel;
  /** Prepared root tree: copied into the guest's tmpfs root. */
  rootTree: string;
  /** Kernel modules to load before systemd starts. */
  modules: string[];
  /** Host directories shared read-only over 9p: tag → [host path, guest mount point]. */
  shares: Record<string, [string, string]>;
  memoryMiB?: number;
  timeoutMs?: number;
  workDir: string;
  /** The major security module the kernel starts; AppArmor unless a proof needs another. */
  lsm?: 'apparmor' | 'selinux';
  /**
   * An ext4 image to boot as the root instead of a tmpfs (the root tree is copied over it): QEMU writes to a
   * temporary overlay, so the image itself never changes and serves every run. Under SELinux the files copied
   * from the root tree are labelled by the image's own file contexts before the policy loads.
   */
  rootDisk?: string;
  /** A file the console is copied to as it comes, to follow a long proof while it runs. */
  liveConsole?: string;
}

/**
 * The proof's own files, labelled as the policy's file contexts say before the policy loads (setfiles works
 * without a policy in the kernel; libselinux reads /proc, so the new root gets one for the moment).
 */
const RELABEL = `$B mount -t proc proc /newroot/proc
$B chroot /newroot /usr/sbin/setfiles -F -f /qh-relabel.list /etc/selinux/default/contexts/files/file_contexts
$B umount /newroot/proc
$B rm /newroot/qh-relabel.list`;

/**
 * The initramfs's init. The shares are read-only and nothing changes them while the VM runs, so the guest keeps
 * what it read in its page cache (cache=loose): without it every process start reads its program and libraries over
 * 9p again, and under TCG one `node` start took 20 s instead of 1-5 s, `systemctl daemon-reload` 37 s instead of 7.
 */
const INIT = (
  modules: string[],
  shares: Record<string, [string, string]>,
  root: 'tmpfs' | 'disk',
  relabel: boolean,
) => `#!/qh-init/busybox sh
B=/qh-init/busybox
$B mkdir -p /proc /sys /dev /newroot
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
${modules.map((m) => `$B insmod /qh-init/modules/${m}`).join('\n')}
${root === 'disk' ? '$B mount -t ext4 /dev/vda /newroot' : '$B mount -t tmpfs -o mode=0755 tmpfs /newroot'}
$B cp -a /rootfs/. /newroot/
${relabel ? RELABEL : ''}
${Object.entries(shares)
  .map(
    ([tag, [, at]]) =>
      `$B mkdir -p /newroot${at}\n$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose ${tag} /newroot${at}`,
  )
  .join('\n')}
$B umount /proc /sys
$B umount /dev
exec $B switch_root /newroot /usr/lib/systemd/systemd
`;

/** Build the initramfs: busybox init, modules, and the root tree. */
export function buildInitramfs(spec: VmSpec): string {
  const stage = join(spec.workDir, 'initramfs');
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'qh-init', 'modules'), { recursive: true });
  copyFileSync('/bin/busybox', join(stage, 'qh-init', 'busybox'));
  chmodSync(join(stage, 'qh-init', 'busybox'), 0o755);
  const disk = spec.rootDisk !== undefined;
  const relabel = disk && spec.lsm === 'selinux';
  const mods = moduleClosure(spec.kernel, [...spec.modules, ...(disk ? ['virtio_blk', 'crc32c_generic', 'ext4'] : [])]);
  const names = copyModules(mods, join(stage, 'qh-init', 'modules'));
  writeFileSync(join(stage, 'init'), INIT(names, spec.shares, disk ? 'disk' : 'tmpfs', relabel), { mode: 0o755 });
  execFileSync('cp', ['-a', `${spec.rootTree}/.`, join(stage, 'rootfs')]);
  if (relabel)
    writeFileSync(
      join(stage, 'rootfs', 'qh-relabel.list'),
      readdirSync(spec.rootTree)
        .map((e) => `/${e}\n`)
        .join(''),
    );
  const out = join(spec.workDir, 'initramfs.cpio.gz');
  execFileSync('sh', ['-c', `cd "${stage}" && find . | cpio -o -H newc --quiet | gzip -1 > "${out}"`]);
  rmSync(stage, { recursive: true, force: true });
  return out;
}

/** A line of the VM's console, with the seconds since QEMU started and the CPU seconds QEMU had used when it came. */
export interface ConsoleLine {
  seconds: number;
  cpuSeconds: number;
  text: string;
}

export interface VmResult {
  console: string;
  results: Map<string, string>;
  exitCode: number | null;
  timedOut: boolean;
  /** The console line by line, each with when it came: where the time went. */
  lines: ConsoleLine[];
  /** QEMU's wall seconds, and the CPU seconds it used (all its threads): its work, whatever the machine's load. */
  seconds: number;
  cpuSeconds: number;
}

/** The kernel's own switches that start a security module, enforcing from the first process on. */
const LSM_ARGS = {
  apparmor: 'apparmor=1 security=apparmor',
  selinux: 'selinux=1 security=selinux enforcing=1',
};

/** Boot the VM and collect its console; lines "RESULT key=value" become results. Always stops QEMU. */
export function runVm(spec: VmSpec, cmdline = ''): Promise<VmResult> {
  const initrd = buildInitramfs(spec);
  const args = [
    '-accel',
    'tcg',
    // The plainest x86-64 CPU: with fewer features to use, the guest's programs (glibc's string functions, Node,
    // the nested QEMUs) stay off the instructions TCG emulates slowest; the same steps took about 12% fewer CPU
    // seconds than under -cpu max. Nothing proven here depends on a CPU feature.
    '-cpu',
    'qemu64',
    // One vCPU: under TCG a second one costs more than it gives. A guest's exec and munmap flush the other vCPU's
    // TLB in lockstep, and on a busy host one vCPU spins while the other waits for a core: the same steps took about
    // 38% fewer CPU seconds and 30% less time with one (docs/testing.md, "Shared VMs").
    '-smp',
    '1',
    '-m',
    String(spec.memoryMiB ?? 1536),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    spec.kernel.vmlinuz,
    '-initrd',
    initrd,
    '-append',
    // mitigations=off: the guest runs only the proof's own programs, so the kernel's side-channel defences guard
    // nothing here, and under TCG they are dear (retpolines on every indirect call, barriers on every entry): a boot
    // took about 6 CPU seconds less without them, and a Node.js start about 20% less.
    // norandmaps: the same, for address space layout randomization. QEMU 7.2's TCG keys the code it translates by
    // the guest's virtual address, so a program whose libraries land somewhere new at each start is translated anew
    // each time; at fixed addresses a program started again runs code already translated. The network-fences part
    // made 0.4 GB of translated code instead of 0.86, and took 82 CPU seconds instead of 99 (the boot 14 instead of 17).
    `console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off norandmaps systemd.show_status=false systemd.journald.forward_to_console=0 ${LSM_ARGS[spec.lsm ?? 'apparmor']} ${cmdline}`.trim(),
    '-serial',
    'stdio',
    ...(spec.rootDisk ? ['-drive', `file=${spec.rootDisk},format=raw,if=virtio,snapshot=on`] : []),
    ...Object.entries(spec.shares).flatMap(([tag, [host]]) => [
      '-virtfs',
      `local,path=${host},mount_tag=${tag},security_model=none,readonly=on`,
    ]),
  ];
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let text = '';
    const lines: ConsoleLine[] = [];
    // QEMU's CPU time, read from /proc as lines come and every second: the last reading is within a second of all.
    let cpuTicks = 0;
    const readCpu = () => {
      try {
        const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        cpuTicks = Number(f[11]) + Number(f[12]);
      } catch {
        // QEMU has exited: the last reading stands.
      }
    };
    if (spec.liveConsole) writeFileSync(spec.liveConsole, '');
    const line = (t: string) => {
      readCpu();
      if (spec.liveConsole) appendFileSync(spec.liveConsole, `${t}\n`);
      lines.push({ seconds: (Date.now() - started) / 1000, cpuSeconds: cpuTicks / 100, text: t.replace(/\r$/, '') });
    };
    // One decoder and one unfinished line per stream: a chunk may end inside a character, or inside a line.
    const partials = [child.stdout, child.stderr].map((stream) => {
      const decoder = new StringDecoder('utf8');
      const held = { partial: '' };
      const take = (chunk: string) => {
        text += chunk;
        const complete = (held.partial + chunk).split('\n');
        held.partial = complete.pop()!;
        complete.forEach(line);
      };
      stream.on('data', (d: Buffer) => take(decoder.write(d)));
      stream.on('end', () => take(decoder.end()));
      return held;
    });
    const cpuPoll = setInterval(readCpu, 1000);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, spec.timeoutMs ?? 240_000);
    // 'close', not 'exit': the console's last lines are read by then.
    child.on('close', (code) => {
      clearTimeout(timer);
      clearInterval(cpuPoll);
      rmSync(initrd, { force: true });
      const results = new Map<string, string>();
      for (const l of text.split(/\r?\n/)) {
        const m = /RESULT ([A-Za-z0-9_.-]+)=(.*)$/.exec(l);
        if (m) results.set(m[1]!, m[2]!.trim());
      }
      for (const held of partials) if (held.partial) line(held.partial);
      resolve({
        console: text,
        results,
        exitCode: code,
        timedOut,
        lines,
        seconds: (Date.now() - started) / 1000,
        cpuSeconds: cpuTicks / 100,
      });
    });
  });
}

/**
 * What every proof script starts with: \`r KEY VALUE\` reports a result (read back with \`reported\`), and
 * \`wait_until SECONDS COMMAND...\` runs COMMAND every half second until it succeeds (status 0) or SECONDS have passed
 * on the clock (status 1); the proof goes on either way, and its results say what did not happen. The waits are
 * long because they end as soon as their thing happens, and TCG on a loaded machine is slow.
 */
export const PROOF_PRELUDE = `#!/bin/sh
r() { echo "RESULT $1=$2"; }
uptime_s() { read -r uptime_now _ < /proc/uptime; uptime_now=\${uptime_now%.*}; }
wait_until() { uptime_s; wait_end=$((uptime_now + $1)); shift; until "$@"; do uptime_s; [ $uptime_now -lt $wait_end ] || return 1; sleep 0.5; done; }
# The kernel's AppArmor denials under profile $1 that name $2 anywhere (a file's name="…", a socket's addr="…").
denied() { dmesg | grep 'apparmor="DENIED"' | grep -F "profile=\\"$1\\"" | grep -cF "$2"; }
`;

/**
 * Masks in `root`'s /etc every systemd generator the /usr of `base` has. No generator has anything to do in a proof's
 * root (no fstab, no init scripts, no gettys, no encrypted disks), and each is a process systemd starts at boot and on
 * every daemon-reload: masked, a reload took 60% less CPU under TCG.
 */
export function maskGenerators(root: string, base: string): void {
  const generators = join(root, 'etc/systemd/system-generators');
  mkdirSync(generators, { recursive: true });
  for (const g of readdirSync(join(base, 'usr/lib/systemd/system-generators')))
    symlinkSync('/dev/null', join(generators, g));
}

/**
 * A minimal root tree for systemd: /etc of its own, merged-/usr links, the proof unit wanted at boot. `base` is the
 * system whose /usr the VM mounts (the host's unless a proof boots another release's): its os-release, AppArmor
 * configuration and generators are the ones copied and masked.
 */
export function makeRootTree(dir: string, proofScript: string, base = '/'): void {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  for (const l of ['bin', 'sbin', 'lib', 'lib64']) symlinkSync(`usr/${l}`, join(dir, l));
  for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'var/tmp', 'var/log', 'var/lib', 'root', 'srv', 'home', 'mnt'])
    mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(dir, 'etc/shadow'), 'root:*:19000:0:99999:7:::\n', { mode: 0o600 });
  writeFileSync(join(dir, 'etc/gshadow'), 'root:*::\n', { mode: 0o600 });
  writeFileSync(join(dir, 'etc/hostname'), 'qh-proof\n');
  writeFileSync(join(dir, 'etc/machine-id'), '');
  writeFileSync(join(dir, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n');
  copyFileSync(join(base, 'usr/lib/os-release'), join(dir, 'etc/os-release'));
  // The dynamic linker's cache is the base system's own, made for this /usr: Debian 13 would rebuild it at every
  // boot (ldconfig.service, masked below, as is the journal's catalog), about 9 CPU seconds under TCG.
  if (existsSync(join(base, 'etc/ld.so.cache')))
    copyFileSync(join(base, 'etc/ld.so.cache'), join(dir, 'etc/ld.so.cache'));
  // Another release's /usr reaches some of its programs through /etc/alternatives (awk, nc, pager).
  if (base !== '/' && existsSync(join(base, 'etc/alternatives')))
    execFileSync('cp', ['-a', join(base, 'etc/alternatives'), join(dir, 'etc/')]);
  mkdirSync(join(dir, 'etc/apparmor.d'));
  if (existsSync(join(base, 'etc/apparmor'))) execFileSync('cp', ['-a', join(base, 'etc/apparmor'), join(dir, 'etc/')]);
  for (const sub of ['tunables', 'abstractions', 'abi'])
    if (existsSync(join(base, 'etc/apparmor.d', sub)))
      execFileSync('cp', ['-a', join(base, 'etc/apparmor.d', sub), join(dir, 'etc/apparmor.d/')]);
  const sys = join(dir, 'etc/systemd/system');
  mkdirSync(join(sys, 'multi-user.target.wants'), { recursive: true });
  maskGenerators(dir, base);
  writeTestGuestStopDropIn(sys);
  symlinkSync('/usr/lib/systemd/system/multi-user.target', join(sys, 'default.target'));
  for (const masked of [
    'serial-getty@ttyS0.service',
    'getty@tty1.service',
    'systemd-timesyncd.service',
    'apt-daily.timer',
    'apt-daily-upgrade.timer',
    'e2scrub_reap.service',
    'systemd-networkd-wait-online.service',
    'ldconfig.service',
    'systemd-journal-catalog-update.service',
  ])
    symlinkSync('/dev/null', join(sys, masked));
  writeFileSync(join(dir, 'proof.sh'), PROOF_PRELUDE + proofScript, { mode: 0o755 });
  writeFileSync(
    join(sys, 'qh-proof.service'),
    [
      '[Unit]',
      'Description=qemu-harden proof',
      'After=multi-user.target',
      '[Service]',
      'Type=oneshot',
      'ExecStart=/bin/sh /proof.sh',
      'ExecStopPost=/usr/bin/systemctl poweroff --no-block',
      'StandardOutput=tty',
      'StandardError=tty',
      'TTYPath=/dev/ttyS0',
      // The host's deadline for the whole VM (bootProof's timeoutMs) is the one that counts.
      'TimeoutStartSec=infinity',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n'),
  );
  symlinkSync('../qh-proof.service', join(sys, 'multi-user.target.wants', 'qh-proof.service'));
}

/** What every proof needs on the host: QEMU, the initramfs tools, and apt and dpkg to fetch the kernel. */
const PROOF_TOOLS: [tool: string, pkg: string][] = [
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['cpio', 'cpio'],
  ['busybox', 'busybox-static'],
  ['apt-get', 'apt'],
  ['dpkg-deb', 'dpkg'],
  ['flock', 'util-linux'],
  ['xz', 'xz-utils'],
];

/**
 * The kernel (of Debian `suite`, or of the archive apt uses here), once every tool the proof needs (PROOF_TOOLS, then
 * `more`) is found; a missing one fails naming its package.
 */
export function proofKernel(more: [tool: string, pkg: string][] = [], suite?: string): Kernel {
  for (const [tool, pkg] of [...PROOF_TOOLS, ...more]) requireTool(tool, pkg);
  return ensureKernel(KERNEL_CACHE, suite);
}

/** Boots the proof with /usr shared from the host and, for a proof that runs qemu-harden, the repository at /qh. */
export function bootProof(
  kernel: Kernel,
  root: string,
  work: string,
  opts: { repo: boolean; modules?: string[]; timeoutMs: number },
): Promise<VmResult> {
  return runVm({
    kernel,
    rootTree: root,
    modules: ['virtio_pci', '9pnet_virtio', '9p', ...(opts.modules ?? [])],
    shares: { usr: ['/usr', '/usr'], ...(opts.repo ? { repo: [REPO, '/qh'] as [string, string] } : {}) },
    workDir: work,
    timeoutMs: opts.timeoutMs,
  });
}

/** The end of the VM's console, enough to show where a proof stopped. */
function consoleTail(vm: VmResult): string {
  return vm.console.slice(-4000);
}

/** The value the proof reported for key; fails, showing the console's tail, when it reported none. */
export function reported(vm: VmResult, key: string): string {
  const v = vm.results.get(key);
  assert.ok(v !== undefined, `the VM reported no ${key}; console tail:\n${consoleTail(vm)}`);
  return v;
}

/** Every value the proof reported for key, in order: a program's lines, each reported on its own. */
export function reportedAll(vm: VmResult, key: string): string[] {
  return [...vm.console.matchAll(new RegExp(`RESULT ${key.replace('.', '\\.')}=(.*)`, 'g'))].map((m) => m[1]!.trim());
}

/** Fails unless the proof script ran to its last line ("done") before the VM's time ran out. */
export function assertProofDone(vm: VmResult): void {
  assert.equal(vm.timedOut, false, consoleTail(vm));
  assert.equal(reported(vm, 'done'), 'yes');
}
