// AppArmor, the way libvirt does it: a fixed abstraction with what every QEMU needs, a small fixed profile per
// guest, and a generated file holding exactly that guest's own paths. Nothing of another guest appears in it.
// Where each file goes, and how it is checked and loaded: src/confine/apparmor.ts.
import { GENERATED } from '../bundle-layout.js';
import { apparmorPath } from '../escape.js';
import * as G from '../guest.js';
import type { HelperKind } from '../helpers/helper.js';
import { helpersOf } from '../helpers/index.js';
import type { Answers, Guest } from '../model.js';
import { RELEASES } from '../releases.js';

const HEADER = `${GENERATED}\n`;

export function abstraction(): string {
  return `${HEADER}# What any QEMU process needs, and nothing that names a guest.
  include <abstractions/base>

  # Firmware, option ROMs and keymaps QEMU loads at start (/usr/share/qemu links into these).
  /usr/share/qemu/** r,
  /usr/share/seabios/** r,
  /usr/share/ipxe/** r,
  /usr/lib/ipxe/** r,
  /usr/share/OVMF/** r,
  /usr/lib/@{multiarch}/qemu/*.so mr,

  # Randomness and the null devices.
  /dev/urandom r,
  /dev/random r,
  /dev/null rw,
  /dev/zero r,

  # Host facts QEMU reads about CPUs, memory and itself.
  /sys/devices/system/cpu/** r,
  /sys/devices/system/node/ r,
  /sys/devices/system/node/** r,
  /sys/module/vhost/parameters/max_mem_regions r,
  /sys/kernel/mm/transparent_hugepage/** r,
  /proc/sys/vm/overcommit_memory r,
  @{PROC}/sys/kernel/cap_last_cap r,
  owner @{PROC}/@{pid}/** r,
  owner @{PROC}/@{pid}/task/*/comm rw,

  # systemd stops QEMU with a signal.
  signal (receive) peer=unconfined,

  # Hard links out of the guest's directories and any capability are never needed.
  deny capability,
`;
}

/**
 * The profile declares the newest feature ABI the target's parser ships. On a kernel that mediates more than that
 * ABI's features (AppArmor 4's abi on Ubuntu's kernels mediates unix sockets), the rules file's unix rule is what
 * lets QEMU serve its QMP, serial, VNC and SPICE sockets.
 */
export function profile(a: Answers, g: Guest): string {
  return `${HEADER}abi <abi/${RELEASES[a.host.target].apparmorAbi}>,

include <tunables/global>

# Attached by the unit (AppArmorProfile=${G.profileName(g)}), not by path: every guest runs the same binary.
profile ${G.profileName(g)} flags=(attach_disconnected,mediate_deleted) {
  include <abstractions/qemu-harden>
  include <qemu-harden.d/${g.name}>
}
`;
}

/**
 * With the sandbox's spawn=allow accepted as a risk, QEMU may run its helpers and shell commands (a tap
 * script=, an exec: migration). Without exec rules AppArmor would still stop them, so the accepted risk could
 * not be used. Each program runs under this same profile (ix): it reaches nothing QEMU itself cannot.
 */
function spawnRules(g: Guest): string[] {
  if (!g.isolation.sandbox.enabled || g.isolation.sandbox.spawn !== 'allow') return [];
  return [
    '  # sandbox spawn=allow (an accepted risk): QEMU’s helpers and /bin/sh, confined by this same profile.',
    '  /usr/lib/qemu/* ix,',
    '  /usr/libexec/qemu-* ix,',
    '  /{usr/,}bin/{sh,dash,bash} ix,',
  ];
}

export function guestRules(a: Answers, g: Guest): string {
  const lines = [HEADER + `# Guest ${g.name}: the only files, sockets and devices this QEMU may touch.`];
  const rule = (path: string, perms: string, why: string, glob = '') =>
    lines.push(`  # ${why}`, `  ${apparmorPath(path, glob)} ${perms},`);

  rule(a.host.qemuBinary, 'mr', 'the QEMU binary');
  for (const f of G.filesOf(g)) rule(f.path, f.access === 'rw' ? 'rwk' : 'rk', f.why);
  if (g.firmware.type === 'uefi')
    lines.push(
      '  # ExecStartPre= copies the UEFI variables template on first start; it runs under this profile too.',
      '  /{usr/,}bin/{sh,dash,bash} ix,',
      '  /{usr/,}bin/cp ix,',
    );
  for (const d of G.devicesOf(a, g)) {
    if (d.path === 'char-usb_device') {
      lines.push(
        `  # ${d.why}. The bus and device numbers change on every plug; udev makes the chosen devices this guest's`,
        '  # own, and "owner" limits the rule to the nodes owned by this guest\'s user: no other USB device.',
        '  /dev/bus/usb/ r,',
        '  /dev/bus/usb/[0-9]*/ r,',
        '  owner /dev/bus/usb/[0-9]*/[0-9]* rw,',
        '  /sys/bus/usb/devices/ r,',
        '  /sys/devices/**/usb[0-9]*/** r,',
      );
    } else if (
      d.path.startsWith('/dev/') &&
      d.path.slice(5).includes('/') &&
      g.disks.some((k) => k.blockDevice && k.path === d.path)
    ) {
      rule(d.path, d.access === 'rw' ? 'rw' : 'r', d.why);
      lines.push(
        `  # ${d.path} is a link; AppArmor checks the node it resolves to, which udev makes this guest's own.`,
        `  owner /dev/* ${d.access === 'rw' ? 'rw' : 'r'},`,
      );
    } else rule(d.path, d.access === 'rw' ? 'rw' : 'r', d.why);
  }
  if (g.passthrough.pci.length > 0) {
    lines.push(
      '  # VFIO reads its device through sysfs. AppArmor checks resolved paths: /sys/bus/pci/devices/ADDR is a link to /sys/devices/pci*/…/ADDR.',
    );
    for (const p of g.passthrough.pci) {
      lines.push(
        `  # PCI device ${p.address}`,
        `  /sys/devices/pci[0-9]*/**/${p.address}/ r,`,
        `  /sys/devices/pci[0-9]*/**/${p.address}/** r,`,
      );
      rule(`/sys/bus/pci/devices/${p.address}`, 'r', `the link to PCI device ${p.address}`);
    }
    lines.push('  /sys/kernel/iommu_groups/ r,', '  /sys/kernel/iommu_groups/** r,');
  }
  for (const sh of G.qemuShares(a, g)) {
    rule(sh.path, sh.access === 'rw' ? 'rw' : 'r', sh.why, '/');
    rule(sh.path, sh.access === 'rw' ? 'rwk' : 'r', sh.why, '/**');
  }
  for (const t of G.tlsDirsOf(g)) {
    rule(t.path, 'r', t.why, '/');
    rule(t.path, 'r', t.why, '/*');
  }
  rule(G.runtimeDir(g), 'r', 'its runtime directory', '/');
  rule(G.runtimeDir(g), 'rw', 'QMP, serial, VNC and SPICE sockets', '/*.sock');
  for (const h of helpersOf(a, g))
    if (
      !h.socket(g).startsWith(`${G.runtimeDir(g)}/`) ||
      h
        .socket(g)
        .slice(G.runtimeDir(g).length + 1)
        .includes('/')
    )
      rule(h.socket(g), 'rw', `the socket of its ${h.title}, which it connects to`);
  lines.push(
    '  # systemd runs the unit’s helpers under this profile too: ExecStartPre= makes the stop FIFOs, ExecStop= writes',
    '  # to one and waits for QEMU. They inherit these same rules; QEMU itself cannot exec while -sandbox denies spawn.',
    '  /usr/bin/dash mrix,',
    '  /usr/bin/rm mrix,',
    '  /usr/bin/mkfifo mrix,',
    '  /usr/bin/cat mrix,',
  );
  rule(`${G.stopPipe(g)}.in`, 'rw', 'the QMP FIFO ExecStop= writes system_powerdown to');
  rule(`${G.stopPipe(g)}.out`, 'rw', 'the answers of that QMP monitor');
  if (g.display.mode === 'spice-tls' && g.display.passwordFile)
    for (const unit of [G.unitName(g), ...(g.migration?.enabled ? [G.incomingUnitName(g)] : [])])
      rule(
        `/run/credentials/${unit}/${G.SPICE_PASSWORD_CREDENTIAL}`,
        'r',
        'the SPICE password systemd hands over (LoadCredential=)',
      );
  rule(G.stateDir(g), 'r', 'its state directory', '/');
  rule(G.stateDir(g), 'rwk', 'its own state', '/**');
  for (const h of helpersOf(a, g))
    for (const d of h.stateDirs(g))
      lines.push(
        `  # What the guest's ${h.title} keeps is its alone: QEMU talks to it through its socket, never its files.`,
        `  deny ${apparmorPath(d, '/')} rwklmx,`,
        `  deny ${apparmorPath(d, '/**')} rwklmx,`,
      );
  rule(G.logsDir(g), 'r', 'its log directory', '/');
  rule(G.serialLog(g), 'rw', 'the serial console log');
  lines.push(
    '  # Local sockets QEMU creates for QMP, serial and VNC.',
    '  unix (create, bind, listen, accept, read, write, getattr, setopt, getopt, shutdown),',
  );
  if (G.usesInet(g))
    lines.push(
      '  # IP for user-mode networking or a TLS listener.',
      '  network inet stream,',
      '  network inet6 stream,',
      '  network inet dgram,',
      '  network inet6 dgram,',
    );
  if (g.network.mode === 'tap') lines.push('  # Looking up the tap device.', '  network netlink raw,');
  lines.push(...spawnRules(g));
  return lines.join('\n') + '\n';
}

export function helperProfile(g: Guest, h: HelperKind): string {
  const name = G.helperProfileName(g, h.kind);
  return `${HEADER}abi <abi/3.0>,

include <tunables/global>

# Guest ${g.name}'s ${h.title}. Attached by its unit (AppArmorProfile=${name}), not by path: a distribution's
# profile for ${h.binary} is never the one that confines it here.
profile ${name} flags=(attach_disconnected,mediate_deleted) {
  include <abstractions/base>
  include <qemu-harden.d/${g.name}-${h.kind}>
}
`;
}

export function helperRules(g: Guest, h: HelperKind): string {
  const lines = [HEADER + `# Guest ${g.name}'s ${h.title}: the only files and sockets it may touch.`];
  const rule = (path: string, perms: string, why: string, glob = '') =>
    lines.push(`  # ${why}`, `  ${apparmorPath(path, glob)} ${perms},`);
  rule(h.binary, 'mr', `the ${h.title} itself`);
  const own = h.apparmor(g);
  for (const p of own.paths) rule(p.path, p.perms, p.why, p.glob ?? '');
  for (const d of h.stateDirs(g)) {
    rule(d, 'r', 'its state directory', '/');
    rule(d, 'rwk', 'its state: nothing of the guest’s but this', '/**');
  }
  for (const r of own.rules) lines.push(`  # ${r.why}`, `  ${r.rule}`);
  lines.push('  # systemd stops it with a signal.', '  signal (receive) peer=unconfined,');
  if (own.capabilities)
    lines.push(
      `  # Capabilities: ${own.capabilities.why}. No other.`,
      ...own.capabilities.names.map((c) => `  capability ${c},`),
    );
  else lines.push('  # It needs no capability, and never another program but those named here.', '  deny capability,');
  return lines.join('\n') + '\n';
}
