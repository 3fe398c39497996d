// Denials a confinement backend's kernel module logged for QEMU, each mapped to the answer that grants what was
// denied. Denials are the usual reason people switch confinement off; the answer to change is the better way out.
// Each backend parses its own log lines (AppArmor's apparmor="DENIED", SELinux's avc: denied) into a Denial; the
// finding, and the answer it points to, are the same for all of them.
import { finding, type Finding, type HostView, type QemuProcess } from './types.js';

export interface Denial {
  /** The kernel log line. */
  line: string;
  /** The label the denied process carried, as the backend names it (a profile, a context). */
  label: string;
  operation: string;
  /** The path that was denied. */
  name: string;
  mask: string;
}

/** The answer that grants what a denial refused, and what to set it to. */
export function answerForDenial(
  d: Denial,
  owner: QemuProcess | undefined,
  noun = 'profile',
): { answer: string; advice: string } {
  const n = d.name;
  if (n === '/dev/kvm') return { answer: 'useCase', advice: '"virtualization" gives the guest /dev/kvm' };
  if (n === '/dev/net/tun' || n === '/dev/vhost-net')
    return {
      answer: 'guests.N.network',
      advice: '{"mode": "tap"} gives the guest /dev/net/tun (and /dev/vhost-net with vhost: true)',
    };
  if (n.startsWith('/dev/vfio/'))
    return { answer: 'guests.N.passthrough.pci', advice: 'list the PCI device with its IOMMU group' };
  if (n.startsWith('/dev/bus/usb/'))
    return { answer: 'guests.N.passthrough.usb', advice: 'list the USB device by vendor and product id' };
  if (/\/(OVMF|edk2|ovmf)[^/]*$|\.fd$/.test(n))
    return { answer: 'guests.N.firmware', advice: '{"type": "uefi", "code": …} lets the guest read its firmware' };
  if (owner?.cmd.disks.some((x) => x.path === n) || /\.(img|qcow2|raw|iso)$/.test(n) || n.startsWith('/dev/'))
    return {
      answer: 'guests.N.disks',
      advice: `list ${n} as a disk of this guest (readOnly: true when it only reads it)`,
    };
  if (/vmlinuz|initrd|\.dtb$/.test(n))
    return { answer: 'guests.N.boot', advice: `name ${n} as the guest's kernel, initrd or device tree` };
  if (/\.pem$|\/pki\//.test(n))
    return { answer: 'guests.N.display.tlsDir', advice: 'point the TLS directory at the credentials the guest needs' };
  return {
    answer: 'guests.N',
    advice: `nothing in the answers grants ${n}: if this guest really needs it, it is a file the bundle does not model yet; keep the ${noun} enforced and report it`,
  };
}

/** How one backend's denials read: its check's name, its own words, how it parses a log line and reads a label. */
export interface DenialReader {
  check: string;
  /** "AppArmor". */
  name: string;
  /** "profile". */
  noun: string;
  parse(line: string): Denial | undefined;
  /** The label of a process in the form denials name it, or undefined when it carries none of this backend. */
  labelOf(p: QemuProcess): string | undefined;
}

/** Every distinct denial of this backend in the kernel log, as a finding; an unreadable log is said as unseen. */
export function denialFindings(view: HostView, r: DenialReader): Finding[] {
  const log = view.kernelLog();
  if ('error' in log) {
    view.unseen.push({
      what: `the kernel log, so ${r.name} denials for QEMU were not looked for`,
      reason: `${log.error}${log.error.endsWith('EPERM') || log.error.endsWith('EACCES') ? ' (kernel.dmesg_restrict: only root may read it)' : ''}`,
    });
    return [];
  }
  const seen = new Set<string>();
  const out: Finding[] = [];
  for (const line of log.lines) {
    const d = r.parse(line);
    if (!d) continue;
    const key = `${d.label}\0${d.operation}\0${d.name}\0${d.mask}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const owner = view.processes.find((p) => r.labelOf(p) === d.label);
    const a = answerForDenial(d, owner, r.noun);
    out.push(
      finding(
        r.check,
        'low',
        owner ?? null,
        `${r.name} denied ${d.operation || 'access'} of ${d.name || '?'} to ${d.label}`,
        line,
        `A denial means confinement worked: the ${r.noun} kept QEMU from something it was not given. Turning the ${r.noun} off to silence it gives a compromised QEMU everything; granting the one thing the guest needs keeps the rest closed.`,
        `Set ${a.answer}: ${a.advice}; the bundle then allows exactly that in the guest’s ${r.noun}.`,
        a.answer,
      ),
    );
  }
  return out;
}
