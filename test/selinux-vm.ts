// SELinux enforcing under a real kernel: a Debian release's kernel booted with `security=selinux enforcing=1` under
// TCG, on a root of the same release with the reference policy (selinux-policy-default) that is built once
// (debootstrap), labelled once with the policy's own file contexts (setfiles) and cached as an ext4 image
// (test/cache.ts). Debian 12 for most proofs (test/selinux-vm.test.ts); Debian 13 for what only it has, virtiofsd
// (test/selinux-trixie-vm.test.ts). A proof boots
// that image copy-on-write, so every run starts from the same labelled root; what the proof adds (its script, the
// bundle, qemu-harden, the guests' disks) is copied over it and labelled before the policy loads (test/vmboot.ts).
// SELinux needs labels in extended attributes, which a 9p share of the host's /usr cannot give: hence a disk.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { cachedDir } from './cache.js';
import { writeTestGuestStopDropIn } from './container.js';
import { debianRoot } from './debian-root.js';
import { REPO, requireTool } from './helpers.js';
import { maskGenerators, PROOF_PRELUDE, runVm, type Kernel, type VmResult } from './vmboot.js';

/**
 * What a Debian 12 host with SELinux has: systemd (PID 1, which loads the policy), the reference policy and the
 * tools `apply` runs (semodule, restorecon, setsebool in policycoreutils; getenforce in selinux-utils), QEMU with
 * its firmware, udev and logrotate (apply's steps), iproute2 (the tap helper), passt (a guest's user-mode network);
 * python3 for the proof's network card (test/clients/passt.py) and the web server it reaches.
 */
export const SELINUX_ROOT_PACKAGES = [
  'dbus',
  'iproute2',
  'ipxe-qemu',
  'logrotate',
  'passt',
  'policycoreutils',
  'python3',
  'qemu-system-x86',
  'seabios',
  'selinux-policy-default',
  'selinux-utils',
  'swtpm',
  'swtpm-tools',
  'systemd',
  'systemd-sysv',
  'udev',
];

/**
 * What a Debian 13 host with SELinux has for a guest's shared folder, TPM and user-mode network: the Rust virtiofsd,
 * swtpm and passt, with the policy, its tools, QEMU and what apply runs; python3 for the proof's virtio-fs driver and
 * network card (test/clients/) and the web servers the card reaches.
 */
export const SELINUX_TRIXIE_PACKAGES = [
  'dbus',
  'iproute2',
  'ipxe-qemu',
  'logrotate',
  'passt',
  'policycoreutils',
  'python3',
  'qemu-system-x86',
  'seabios',
  'selinux-policy-default',
  'selinux-utils',
  'swtpm',
  'swtpm-tools',
  'systemd',
  'systemd-sysv',
  'udev',
  'virtiofsd',
];

/** The releases an SELinux proof boots a root of: the suite, and the root's packages (the proof picks the kernel). */
export const SELINUX_HOSTS = {
  'debian-12': { suite: 'bookworm', packages: SELINUX_ROOT_PACKAGES, name: 'Debian 12' },
  'debian-13': { suite: 'trixie', packages: SELINUX_TRIXIE_PACKAGES, name: 'Debian 13' },
} as const;
export type SelinuxHost = keyof typeof SELINUX_HOSTS;

/** Units a proof does not want running: consoles, logins, timers, network waits (each costs seconds under TCG). */
const MASKED = [
  'serial-getty@ttyS0.service',
  'getty@tty1.service',
  'systemd-timesyncd.service',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'dpkg-db-backup.timer',
  'e2scrub_all.timer',
  'fstrim.timer',
  'logrotate.timer',
  'systemd-tmpfiles-clean.timer',
  'e2scrub_reap.service',
  'cron.service',
  'systemd-logind.service',
  'systemd-user-sessions.service',
  'systemd-networkd-wait-online.service',
  'modprobe@drm.service',
  'modprobe@efi_pstore.service',
  'modprobe@fuse.service',
  'modprobe@configfs.service',
];

/**
 * Turns a directory into the root the image is made of: enforcing, Node.js for qemu-harden, no consoles, and the
 * unit that runs a proof's /proof/proof.sh once at boot, in the unconfined domain (the administrator's, as a root
 * shell on an SELinux host has), then powers off.
 */
function prepareTree(tree: string): void {
  writeFileSync(join(tree, 'etc/selinux/config'), 'SELINUX=enforcing\nSELINUXTYPE=default\n');
  writeFileSync(join(tree, 'etc/hostname'), 'qh-selinux\n');
  writeFileSync(join(tree, 'etc/machine-id'), '');
  writeFileSync(join(tree, 'etc/fstab'), '');
  // The Node.js that runs the suite runs qemu-harden in the VM (Debian 12's own is older than qemu-harden needs,
  // and the Debian 13 root has none).
  cpSync(process.execPath, join(tree, 'usr/local/bin/node'));
  const sys = join(tree, 'etc/systemd/system');
  for (const unit of MASKED) {
    rmSync(join(sys, unit), { force: true });
    symlinkSync('/dev/null', join(sys, unit));
  }
  // The proof reloads systemd a dozen times, and the generators cost about 1.2 CPU seconds a reload under TCG.
  maskGenerators(tree, tree);
  writeTestGuestStopDropIn(sys);
  writeFileSync(join(sys, 'qh-proof.service'), PROOF_UNIT);
  symlinkSync('../qh-proof.service', join(sys, 'multi-user.target.wants', 'qh-proof.service'));
  chmodSync(tree, 0o755);
}

const PROOF_UNIT = [
  '[Unit]',
  'Description=qemu-harden proof',
  'After=multi-user.target',
  '[Service]',
  'Type=oneshot',
  'SELinuxContext=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023',
  'ExecStart=/bin/sh /proof/proof.sh',
  'ExecStopPost=/usr/bin/systemctl poweroff --no-block',
  'StandardOutput=tty',
  'StandardError=tty',
  'TTYPath=/dev/ttyS0',
  'TimeoutStartSec=900',
  '[Install]',
  'WantedBy=multi-user.target',
  '',
].join('\n');

/** The cached, labelled ext4 image of the SELinux root; built (a few minutes) when its inputs changed. */
export async function selinuxRootImage(host: SelinuxHost = 'debian-12'): Promise<string> {
  for (const [tool, pkg] of [
    ['setfiles', 'policycoreutils'],
    ['mke2fs', 'e2fsprogs'],
  ] as const)
    requireTool(tool, pkg);
  const { suite, packages, name } = SELINUX_HOSTS[host];
  const root = await debianRoot(suite, [...packages]);
  const dir = await cachedDir({
    kind: 'selinux-root',
    inputs: {
      debianRoot: basename(root),
      node: process.version,
      nodeBytes: statSync(process.execPath).size,
      masked: MASKED,
      unit: PROOF_UNIT,
      generators: 'masked',
      layout: 1,
    },
    what: `the labelled root of the SELinux proof (an ext4 image of the ${name} root)`,
    build(out) {
      const tree = join(out, 'tree');
      execFileSync('cp', ['-a', root, tree]);
      prepareTree(tree);
      const contexts = join(tree, 'etc/selinux/default/contexts/files/file_contexts');
      const label = spawnSync('setfiles', ['-F', '-r', tree, contexts, tree], { encoding: 'utf8' });
      if (label.status !== 0) throw new Error(`setfiles failed (exit ${label.status}): ${label.stderr.slice(-2000)}`);
      execFileSync('mke2fs', ['-q', '-t', 'ext4', '-L', 'qh-selinux', '-d', tree, join(out, 'root.img'), '3G'], {
        stdio: 'pipe',
      });
      rmSync(tree, { recursive: true, force: true });
    },
  });
  return join(dir, 'root.img');
}

/**
 * What a proof adds to the image, in directories of its own (each is labelled as a whole before the policy loads):
 * its script at /proof/proof.sh, the bundle at /bundle, qemu-harden at /qh. The proof puts more beside them.
 */
export function selinuxProofTree(work: string, proofScript: string, bundle?: string): string {
  const tree = join(work, 'tree');
  mkdirSync(join(tree, 'proof'), { recursive: true });
  writeFileSync(join(tree, 'proof', 'proof.sh'), PROOF_PRELUDE + proofScript, { mode: 0o755 });
  if (bundle) cpSync(bundle, join(tree, 'bundle'), { recursive: true });
  // The VM's own time limit (bootSelinuxProof) bounds the proof: on a loaded machine it runs longer than the
  // unit's own limit in the cached image allows.
  mkdirSync(join(tree, 'etc/systemd/system/qh-proof.service.d'), { recursive: true });
  writeFileSync(join(tree, 'etc/systemd/system/qh-proof.service.d/time.conf'), '[Service]\nTimeoutStartSec=infinity\n');
  mkdirSync(join(tree, 'qh'));
  for (const d of ['dist', 'presets']) cpSync(join(REPO, d), join(tree, 'qh', d), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(tree, 'qh', 'package.json'));
  return tree;
}

/** Boots the SELinux root with the proof's tree over it, enforcing from the first process on. */
export function bootSelinuxProof(
  kernel: Kernel,
  image: string,
  tree: string,
  work: string,
  timeoutMs: number,
  // tun for a tap-networked guest, veth for the interface passt needs a route through (test/guestnet.ts): Debian
  // builds them as modules, and the proof's root has no modules to load. virtio_pci is built into Debian 13's kernel.
  modules = ['virtio_pci', 'tun', 'veth'],
): Promise<VmResult> {
  return runVm({
    kernel,
    rootTree: tree,
    rootDisk: image,
    lsm: 'selinux',
    modules,
    shares: {},
    workDir: work,
    timeoutMs,
    memoryMiB: 1536,
  });
}
