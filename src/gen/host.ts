// Host-wide files: users and groups (sysusers.d), directories and ownership (tmpfiles.d), device groups (udev).
import { GENERATED } from '../bundle-layout.js';
import { tmpfilesField, tmpfilesPath, udevValue } from '../escape.js';
import * as G from '../guest.js';
import type { Answers } from '../model.js';

const HEADER = `${GENERATED}\n`;

export function sysusers(a: Answers): string {
  const lines = [HEADER];
  lines.push('# Shared device groups. A guest’s QEMU gets one only through its unit’s SupplementaryGroups=.');
  if (a.useCase === 'virtualization') lines.push(`g ${a.host.kvmGroup} -`);
  if (a.guests.some((g) => g.network.mode === 'tap')) lines.push(`g ${a.host.netGroup} -`);
  lines.push('', '# One system user and group per guest: no login shell, home is the guest’s state directory.');
  for (const g of a.guests)
    lines.push(`u ${G.userName(g)} - ${tmpfilesField(`qemu-harden guest ${g.name}`)} ${tmpfilesField(G.stateDir(g))} /usr/sbin/nologin`);
  return lines.join('\n') + '\n';
}

export function tmpfiles(a: Answers): string {
  const lines = [HEADER];
  lines.push('# Parents of the per-guest directories systemd creates for each unit.');
  lines.push('d /var/lib/qemu-harden 0755 root root -', 'd /var/log/qemu-harden 0755 root root -');
  const readers = new Map<string, number>();
  for (const g of a.guests) for (const p of new Set(G.filesOf(g).map((f) => f.path))) readers.set(p, (readers.get(p) ?? 0) + 1);
  for (const g of a.guests) {
    const u = G.userName(g);
    const own = G.filesOf(g).filter((f) => f.path !== G.uefiVars(g));
    lines.push('', `# Guest ${g.name}: its own files belong to its user; read-only ones are not writable even by it.`);
    lines.push(`d ${tmpfilesField(G.stateDir(g))} 0700 ${u} ${u} -`);
    if (g.firmware.type === 'uefi') {
      lines.push(`C ${tmpfilesField(G.uefiVars(g))} - - - - ${tmpfilesField(g.firmware.varsTemplate)}`);
      lines.push(`z ${tmpfilesPath(G.uefiVars(g))} 0600 ${u} ${u} -`);
    }
    for (const f of own) {
      const shared = f.access === 'r' && readers.get(f.path)! > 1;
      if (shared) lines.push(`# ${f.path} is read by several guests: left to its owner, every guest reads it through its group or mode.`);
      else lines.push(`z ${tmpfilesPath(f.path)} ${f.access === 'rw' ? '0600' : '0400'} ${u} ${u} -`);
    }
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
      lines.push(`# IOMMU group ${n} belongs to guest ${g.name} alone.`, `SUBSYSTEM=="vfio", KERNEL==${udevValue(String(n))}, OWNER=${u}, GROUP=${u}, MODE="0600"`);
    for (const d of g.passthrough.usb)
      lines.push(
        `# USB device ${d.vendorId}:${d.productId} belongs to guest ${g.name} alone.`,
        `SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", ATTR{idVendor}==${udevValue(d.vendorId)}, ATTR{idProduct}==${udevValue(d.productId)}, OWNER=${u}, GROUP=${u}, MODE="0600"`,
      );
  }
  return lines.join('\n') + '\n';
}
