// Names and paths derived from a guest: the one place that decides where a guest's things live.
import { macAddress, tapDevice } from './identity.js';
import type { Answers, Guest } from './model.js';
import * as N from './names.js';
import { RELEASES } from './releases.js';

export const userName = (g: Guest) => N.userName(g.name);
export const unitName = (g: Guest) => N.unitName(g.name);
export const tapUnitName = (g: Guest) => N.tapUnitName(g.name);
/** The same guest started as a live-migration destination (`-incoming defer`). */
export const incomingUnitName = (g: Guest) => N.incomingUnitName(g.name);
export const profileName = (g: Guest) => N.profileName(g.name);
export const SLICE = N.SLICE;

export const runtimeDir = (g: Guest) => `${N.RUNTIME_BASE}/${g.name}`;
export const stateDir = (g: Guest) => `${N.STATE_BASE}/${g.name}`;
export const logsDir = (g: Guest) => `${N.LOGS_BASE}/${g.name}`;
export const qmpSocket = (g: Guest) => `${runtimeDir(g)}/qmp.sock`;
export const serialSocket = (g: Guest) => `${runtimeDir(g)}/serial.sock`;
export const serialLog = (g: Guest) => `${logsDir(g)}/serial.log`;
export const vncSocket = (g: Guest) => `${runtimeDir(g)}/vnc.sock`;
export const spiceSocket = (g: Guest) => `${runtimeDir(g)}/spice.sock`;
/** A second QMP monitor on a pair of FIFOs (`stop.in`, `stop.out`): ExecStop= writes to it with plain sh. */
export const stopPipe = (g: Guest) => `${runtimeDir(g)}/stop`;
/** The name under which systemd hands the SPICE password to the unit (LoadCredential=). */
export const SPICE_PASSWORD_CREDENTIAL = 'spice-password';
export const uefiVars = (g: Guest) => `${stateDir(g)}/OVMF_VARS.fd`;
/** The TPM's state (swtpm's directory backend): the guest's secrets, as sensitive as its disk. */
export const tpmStateDir = (g: Guest) => N.tpmStateDir(g.name);
/** The control socket of the guest's swtpm, which systemd listens on and QEMU connects to. */
export const tpmSocket = (g: Guest) => `${runtimeDir(g)}/tpm.sock`;
/** passt's own runtime directory, and the socket it binds there for QEMU. */
export const netRuntimeDir = (g: Guest) => N.netRuntimeDir(g.name);
export const netSocket = (g: Guest) => `${netRuntimeDir(g)}/passt.sock`;
export const helperUnitName = (g: Guest, kind: N.HelperKind) => N.helperUnitName(g.name, kind);
export const helperSocketName = (g: Guest, kind: N.HelperKind) => N.helperSocketName(g.name, kind);
export const helperProfileName = (g: Guest, kind: N.HelperKind) => N.helperProfileName(g.name, kind);

export { macAddress, tapDevice };

export function cpuModel(a: Answers, g: Guest): string {
  return g.cpu.model ?? (a.useCase === 'virtualization' ? 'host' : 'max');
}

/** QEMU needs the guest's RAM plus its own overhead: 10% and at least 256 MiB. */
export function memoryMaxMiB(g: { memoryMiB: number; limits: { memoryMaxMiB?: number } }): number {
  return g.limits.memoryMaxMiB ?? g.memoryMiB + Math.max(256, Math.ceil(g.memoryMiB / 10));
}

export function cpuQuotaPercent(g: Guest): number {
  return g.limits.cpuQuotaPercent ?? g.vcpus * 100;
}

/** Is this guest's user-mode network passt, in a unit of its own (src/helpers/passt.ts)? */
export function usesPasst(g: Guest): boolean {
  return g.network.mode === 'user' && g.network.backend === 'passt';
}

/** Does this guest's QEMU speak IP itself (slirp, or a TCP listener for display, migration or NBD)? passt does not count:
 * it speaks IP in a unit of its own, and QEMU reaches it over a unix socket. */
export function usesInet(g: Guest): boolean {
  return (
    (g.network.mode === 'user' && g.network.backend === 'slirp') ||
    g.display.mode === 'vnc-tls' ||
    g.display.mode === 'spice-tls' ||
    !!g.migration?.enabled ||
    !!g.nbd?.enabled
  );
}

export function devicesOf(a: Answers, g: Guest): { path: string; access: 'r' | 'rw'; why: string }[] {
  const out: { path: string; access: 'r' | 'rw'; why: string }[] = [];
  if (a.useCase === 'virtualization')
    out.push({ path: '/dev/kvm', access: 'rw', why: 'hardware virtualization (KVM)' });
  if (g.network.mode === 'tap') {
    out.push({ path: '/dev/net/tun', access: 'rw', why: `attach to the tap device ${tapDevice(g)}` });
    if (g.network.vhost)
      out.push({ path: '/dev/vhost-net', access: 'rw', why: 'in-kernel virtio-net datapath (vhost-net)' });
  }
  if (g.passthrough.pci.length > 0) {
    out.push({ path: '/dev/vfio/vfio', access: 'rw', why: 'VFIO container' });
    const groups = [...new Set(g.passthrough.pci.map((p) => p.iommuGroup))].sort((x, y) => x - y);
    for (const n of groups)
      out.push({ path: `/dev/vfio/${n}`, access: 'rw', why: `IOMMU group ${n} (PCI passthrough)` });
  }
  if (g.passthrough.usb.length > 0)
    out.push({
      path: 'char-usb_device',
      access: 'rw',
      why: 'USB passthrough (udev gives only the chosen devices to this guest)',
    });
  for (const d of g.disks)
    if (d.blockDevice) out.push({ path: d.path, access: d.readOnly ? 'r' : 'rw', why: 'disk on a block device' });
  return out;
}

/** Every host file this guest's QEMU opens, with the access it needs: the least-privilege map. */
export function filesOf(g: Guest): { path: string; access: 'r' | 'rw'; why: string }[] {
  const out: { path: string; access: 'r' | 'rw'; why: string }[] = [];
  for (const d of g.disks)
    if (!d.blockDevice) out.push({ path: d.path, access: d.readOnly ? 'r' : 'rw', why: `${d.format} disk` });
  if (g.boot) {
    out.push({ path: g.boot.kernel, access: 'r', why: 'kernel' });
    if (g.boot.initrd) out.push({ path: g.boot.initrd, access: 'r', why: 'initrd' });
    if (g.boot.deviceTree) out.push({ path: g.boot.deviceTree, access: 'r', why: 'device tree' });
  }
  if (g.firmware.type === 'uefi') {
    out.push({ path: g.firmware.code, access: 'r', why: 'UEFI firmware code' });
    out.push({ path: uefiVars(g), access: 'rw', why: 'this guest’s own UEFI variables' });
  }
  return out;
}

/** How shared folders reach the guests on the answers' target: QEMU's own 9p, or virtiofsd in units of their own. */
export function shareTransport(a: Answers): '9p' | 'virtiofs' {
  return RELEASES[a.host.target].sharedFolders;
}

/** The shared folders QEMU itself serves (9p), with the access it needs; none where virtiofsd serves them. */
export function qemuShares(a: Answers, g: Guest): { path: string; access: 'r' | 'rw'; why: string }[] {
  if (shareTransport(a) !== '9p') return [];
  return g.shares.map((sh) => ({
    path: sh.path,
    access: sh.readOnly ? 'r' : 'rw',
    why: `shared folder "${sh.tag}" (9p${sh.readOnly ? ', read-only' : ''})`,
  }));
}

/** TLS credential directories this guest reads. */
export function tlsDirsOf(g: Guest): { path: string; why: string }[] {
  const out: { path: string; why: string }[] = [];
  if (g.display.mode === 'vnc-tls' || g.display.mode === 'spice-tls')
    out.push({ path: g.display.tlsDir, why: `${g.display.mode} credentials` });
  if (g.migration?.enabled && g.migration.tls && g.migration.tlsDir)
    out.push({ path: g.migration.tlsDir, why: 'migration TLS credentials' });
  if (g.nbd?.enabled && g.nbd.tls && g.nbd.tlsDir) out.push({ path: g.nbd.tlsDir, why: 'NBD TLS credentials' });
  return out;
}
