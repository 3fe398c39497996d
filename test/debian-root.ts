// A Debian root file system for the proofs on other releases: debootstrap (minbase) from the Debian mirror apt
// already uses on this machine, with the release's Release file checked against Debian's archive keyring, built
// once and cached under .cache/debian/ by release, package list and mirror (test/cache.ts). The cached tree is
// never booted itself: a proof boots an overlay on top of it, so every run starts from the same root.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachedDir } from './cache.js';
import { requireTool } from './helpers.js';

export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/**
 * What a Debian 13 host running qemu-harden has: its systemd (booted as PID 1 in the container), QEMU with the
 * SPICE modules, AppArmor's parser and pinned feature set, udev and logrotate (apply's steps), iproute2 (the tap
 * helper), passt and virtiofsd (the user-mode network and shared folders, each in units of their own), and the
 * release's own Node.js, which runs qemu-harden itself; and what a host Ansible manages has: Python, which runs
 * its modules, and OpenSSH's client, whose ssh-keygen checks a bundle's signatures there.
 */
export const TRIXIE_PACKAGES = [
  'apparmor',
  'dbus',
  'iproute2',
  'logrotate',
  'nodejs',
  'openssh-client',
  'passt',
  'python3',
  'qemu-system-modules-spice',
  'qemu-system-x86',
  'qemu-utils',
  'systemd',
  'systemd-sysv',
  'udev',
  'virtiofsd',
];

/**
 * The Debian archive apt uses here: the first deb822 source (or one-line `deb` entry) that lists the host's own
 * suite (its VERSION_CODENAME), so not a -security or -updates archive of another layout.
 */
export function aptMirror(): string {
  const codename = /^VERSION_CODENAME=(.*)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1]?.trim();
  const dir = '/etc/apt/sources.list.d';
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.sources') || f.endsWith('.list'))
        .sort()
        .map((f) => join(dir, f))
    : [];
  if (existsSync('/etc/apt/sources.list')) files.unshift('/etc/apt/sources.list');
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    if (f.endsWith('.sources'))
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
        if (field('Types').includes('deb') && codename && field('Suites').includes(codename)) {
          const uri = field('URIs')[0];
          if (uri) return uri;
        }
      }
    else
      for (const line of text.split('\n')) {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
        if (m && m[2] === codename) return m[1]!;
      }
  }
  throw new Error(`no apt source for this host's suite (${codename}) in /etc/apt/sources.list or ${dir}`);
}

/** The cached root of Debian `suite` with `packages`, built with debootstrap when it is not there yet. */
export async function debianRoot(suite: string, packages: string[]): Promise<string> {
  const debootstrap = requireTool('debootstrap', 'debootstrap');
  if (!existsSync(DEBIAN_KEYRING))
    throw new Error(`${DEBIAN_KEYRING} is missing: install the Debian package debian-archive-keyring`);
  const mirror = aptMirror();
  const include = [...packages].sort();
  return cachedDir({
    kind: 'debian',
    inputs: { suite, variant: 'minbase', packages: include, mirror },
    what: `a Debian ${suite} root (debootstrap from ${mirror}, ${include.length} packages)`,
    build(dir) {
      // The root of the tree is the container's /: every user there must be able to enter it.
      chmodSync(dir, 0o755);
      const r = spawnSync(
        debootstrap,
        ['--variant=minbase', `--keyring=${DEBIAN_KEYRING}`, `--include=${include.join(',')}`, suite, dir, mirror],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20 * 60_000 },
      );
      if (r.status !== 0) {
        const log = join(dir, 'debootstrap', 'debootstrap.log');
        const tail = existsSync(log) ? readFileSync(log, 'utf8').slice(-3000) : '';
        throw new Error(`debootstrap ${suite} failed (exit ${r.status}):\n${(r.stderr ?? '').slice(-2000)}\n${tail}`);
      }
      if (!/^I: Valid Release signature/m.test(r.stdout + r.stderr))
        throw new Error(`debootstrap did not report the Release file's signature as valid:\n${r.stdout.slice(-2000)}`);
    },
  });
}
