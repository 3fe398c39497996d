// What the host probe's facts mean for the bundle, in a sentence each: the wizard's first step shows them.
// Free of the probe's schema, so that the step can be drawn before the schema library has loaded.
import type { HostFacts } from './probe.js';

export function implications(h: HostFacts): string[] {
  const out: string[] = [];
  out.push(
    h.kvm.present
      ? `/dev/kvm is here (${h.kvm.owner}:${h.kvm.group} ${h.kvm.mode}): the virtualization use case is available`
      : 'No /dev/kvm: only emulation (TCG) runs here, and QEMU then promises no isolation',
  );
  if (h.kvm.present && h.kvm.mode.endsWith('6'))
    out.push('/dev/kvm is open to every user; the bundle’s udev rule gives it to the kvm group only');
  if (h.tun.present && h.tun.mode.endsWith('6'))
    out.push('/dev/net/tun is open to every user; the bundle gives it to the qemu-net group');
  out.push(
    h.qemu.binary
      ? `QEMU ${h.qemu.version ?? '?'} at ${h.qemu.binary}${h.qemu.sandbox ? ', -sandbox supported' : ', -sandbox NOT supported: its seccomp filter cannot be used'}`
      : 'QEMU is not installed here: the bundle can still be generated for another host',
  );
  for (const c of h.confinement)
    out.push(
      c.enforced
        ? `${c.name} is enabled: the ${c.noun}s will be enforced`
        : `${c.name} is not enabled: the ${c.noun}s are written but not enforced`,
    );
  if (!h.confinement.some((c) => c.enforced))
    out.push('No mandatory access control is enforced here: only users, the unit sandbox and file modes confine QEMU');
  out.push(
    h.cgroup === 'v2'
      ? 'cgroup v2: every limit in the units is enforced'
      : 'cgroup v1: some limits (IO, memory.high) are enforced differently or not at all',
  );
  out.push(
    h.passt
      ? 'passt is installed: user-mode networking runs in a unit of its own, and QEMU keeps no IP socket'
      : 'passt is not installed (Debian package passt): user-mode networking would run inside QEMU (slirp), a risk to accept with a reason',
  );
  out.push(
    h.vhostNet
      ? 'vhost-net is available for tap networking'
      : 'No /dev/vhost-net: tap guests should run with vhost off',
  );
  if (h.systemdVersion !== null && h.systemdVersion < 247)
    out.push(`systemd ${h.systemdVersion} is older than 247: some sandboxing settings are ignored`);
  out.push(
    h.iommuGroups > 0
      ? `${h.iommuGroups} IOMMU groups: PCI passthrough is possible`
      : 'No IOMMU groups: PCI passthrough is not possible here',
  );
  return out;
}
