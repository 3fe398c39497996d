// Host-wide files: users and groups (sysusers.d), directories and ownership (tmpfiles.d), device groups (udev).
import { GENERATED } from '../bundle-layout.js';
import { tmpfilesField, tmpfilesPath, udevValue } from '../escape.js';
import * as G from '../guest.js';
import type { Answers } from '../model.js';
import { isSystemFile } from '../places.js';

const HEADER = `${GENERATED}\n`;

export function sysusers(a: Answers): string {
  const lines = [HEADER];
  lines.push('# Shared device groups. A guest’s QEMU gets one only through its unit’s SupplementaryGroups=.');
  if (a.useCase === 'virtualization') lines.push(`g ${a.host.kvmGroup} -`);
  if (a.guests.some((g) => g.network.mode === 'tap')) lines.push(`g ${a.host.netGroup} -`);
  lines.push('', '# One system user and group per guest: no login shell, home is the guest’s state directory.');
  for (const g of a.guests)
    lines.push(
      `u ${G.userName(g)} - ${tmpfilesField(`qemu-harden guest ${g.name}`)} ${tmpfilesField(G.stateDir(g))} /usr/sbin/nologin`,
    );
  return lines.join('\n') + '\n';
}

export function tmpfiles(a: Answers): string {
  const lines = [HEADER];
  lines.push(
    '# qemu-harden never changes the owner or mode of a file it did not make, with two exceptions: a writable disk',
    "# image belongs to the one guest that writes it (no other guest may read or write it) and becomes its user's,",
    '# and so does the directory of a writable shared folder (mode 0700; what is already in it is left as it is).',
    "# Read-only files keep owner and mode: a guest reads one through an ACL entry for its user, and the system's",
    '# own files (firmware under /usr/share, kernels under /boot) only because they are readable by everyone.',
    "# The UEFI variables are copied by the guest's unit, as the guest's user, into its state directory.",
    "# A read-only shared folder is left as it is: its files must be readable by the guest's user (world-readable,",
    '# or an ACL you give).',
  );
  lines.push('', '# Parents of the per-guest directories systemd creates for each unit.');
  lines.push('d /var/lib/qemu-harden 0755 root root -', 'd /var/log/qemu-harden 0755 root root -');
  for (const g of a.guests) {
    const u = G.userName(g);
    lines.push('', `# Guest ${g.name}.`);
    lines.push(`d ${tmpfilesField(G.stateDir(g))} 0700 ${u} ${u} -`);
    for (const f of G.filesOf(g)) {
      if (f.path === G.uefiVars(g)) continue;
      if (f.access === 'rw') lines.push(`z ${tmpfilesPath(f.path)} 0600 ${u} ${u} -`);
      else if (!isSystemFile(f.path)) lines.push(`a+ ${tmpfilesPath(f.path)} - - - - ${tmpfilesField(`u:${u}:r`)}`);
    }
    for (const sh of g.shares.filter((x) => !x.readOnly)) lines.push(`d ${tmpfilesPath(sh.path)} 0700 ${u} ${u} -`);
  }
  return lines.join('\n') + '\n';
}

export function udevRules(a: Answers): string {
  const lines = [HEADER];
  lines.push('# Device nodes go to groups, never to the world. A guest reaches a node only when its unit lists it.');
  if (a.useCase === 'virtualization')
    lines.push(`KERNEL=="kvm", SUBSYSTEM=="misc", GROUP=${udevValue(a.host.kvmGroup)}, MODE="0660"`);
  if (a.guests.some((g) => g.network.mode === 'tap')) {
    lines.push(`KERNEL=="tun", SUBSYSTEM=="misc", GROUP=${udevValue(a.host.netGroup)}, MODE="0660"`);
    lines.push(`KERNEL=="vhost-net", SUBSYSTEM=="misc", GROUP=${udevValue(a.host.netGroup)}, MODE="0660"`);
  }
  for (const g of a.guests) {
    const u = udevValue(G.userName(g));
    const groups = [...new Set(g.passthrough.pci.map((p) => p.iommuGroup))].sort((x, y) => x - y);
    for (const n of groups)
      lines.push(
        `# IOMMU group ${n} belongs to guest ${g.name} alone.`,
        `SUBSYSTEM=="vfio", KERNEL==${udevValue(String(n))}, OWNER=${u}, GROUP=${u}, MODE="0600"`,
      );
    for (const d of g.disks.filter((k) => k.blockDevice)) {
      const name = d.path.slice('/dev/'.length);
      const match = name.includes('/') ? `SYMLINK==${udevValue(name)}` : `KERNEL==${udevValue(name)}`;
      lines.push(
        `# Block device ${d.path} is guest ${g.name}'s disk (${d.readOnly ? 'read-only' : 'read-write'}): its node belongs to the guest's user.`,
        `SUBSYSTEM=="block", ${match}, OWNER=${u}, GROUP=${u}, MODE="${d.readOnly ? '0400' : '0600'}"`,
      );
    }
    for (const d of g.passthrough.usb)
      lines.push(
        d.port
          ? `# USB device ${d.vendorId}:${d.productId} on port ${d.port} belongs to guest ${g.name} alone.`
          : `# Every USB device ${d.vendorId}:${d.productId} belongs to guest ${g.name} (no port given: any device with these ids).`,
        `SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ${d.port ? `KERNEL==${udevValue(d.port)}, ` : ''}ATTR{idVendor}==${udevValue(d.vendorId)}, ATTR{idProduct}==${udevValue(d.productId)}, OWNER=${u}, GROUP=${u}, MODE="0600"`,
      );
  }
  return lines.join('\n') + '\n';
}
