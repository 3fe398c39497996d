// The host around the guests: device nodes every user can open, whether AppArmor is on, and the AppArmor
// denials the kernel logged for QEMU, each mapped to the answer that grants what was denied. Denials are the
// usual reason people switch confinement off; the answer to change is the better way out.
import { closeSync, constants, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { readSmall } from '../procfs.js';
import { runSync, which } from '../tools.js';
import { modeText } from './files.js';
import { finding, type AuditCheck, type Finding, type HostView, type QemuProcess } from './types.js';

export const HOST_PATHS = {
  dev: '/dev',
  apparmorEnabled: '/sys/module/apparmor/parameters/enabled',
  kmsg: '/dev/kmsg',
};

const DEVICES: [string, 'high' | 'medium' | 'low', string][] = [
  ['kvm', 'medium', 'Any user can create virtual machines and reach the KVM module’s whole ioctl interface.'],
  [
    'net/tun',
    'low',
    'Any user can open the tun device; together with a tap device handed to them it reaches the guest network.',
  ],
  [
    'vhost-net',
    'low',
    'Any user can reach the in-kernel vhost-net data path, kernel code driven by guest-controlled rings.',
  ],
];

const deviceModes: AuditCheck = {
  name: 'host.device-mode',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: () => {
    const nodes: [string, 'high' | 'medium' | 'low', string][] = DEVICES.map(([n, s, w]) => [
      `${HOST_PATHS.dev}/${n}`,
      s,
      w,
    ]);
    try {
      for (const n of readdirSync(`${HOST_PATHS.dev}/vfio`).sort())
        nodes.push([
          `${HOST_PATHS.dev}/vfio/${n}`,
          'high',
          'Any user can open this VFIO node and drive the passed-through device (DMA into whatever the IOMMU group maps).',
        ]);
    } catch {
      // no VFIO on this host
    }
    return nodes.flatMap(([path, severity, why]): Finding[] => {
      let st;
      try {
        st = statSync(path);
      } catch {
        return [];
      }
      if (!(st.mode & 0o006)) return [];
      return [
        finding(
          'host.device-mode',
          severity,
          null,
          `${path} is open to every user`,
          `${path}: ${modeText(st)}`,
          why,
          'Device nodes go to groups (kvm, qemu-net) by udev rules, and each guest’s unit allows only the devices it uses (DevicePolicy=closed).',
          null,
        ),
      ];
    });
  },
};

/**
 * ACL entries for named users and groups on the devices a guest's QEMU uses: they reach past the owner, group and
 * mode that deviceModes judges. Debian 13 and Ubuntu 24.04 tag /dev/kvm "uaccess" in udev, so whoever is logged in
 * at the seat gets an entry on it; read with getfacl, and when getfacl is missing the audit says what it did not see.
 */
const deviceAcls: AuditCheck = {
  name: 'host.device-acl',
  tool: 'getfacl',
  debianPackage: 'acl',
  judges: 'host',
  run: (view) => {
    const nodes = DEVICES.map(([n]) => `${HOST_PATHS.dev}/${n}`).filter((path) => existsSync(path));
    if (nodes.length === 0) return [];
    // assess() runs this check only where getfacl is found, and says so in unseen where it is not.
    const getfacl = which('getfacl')!;
    return nodes.flatMap((path): Finding[] => {
      const r = runSync(getfacl, ['--absolute-names', '--omit-header', path]);
      if (r.exitCode !== 0) {
        view.unseen.push({ what: `the ACL of ${path}`, reason: r.stderr.trim() || `getfacl exited ${r.exitCode}` });
        return [];
      }
      const named = r.stdout.split('\n').filter((l) => /^(user|group):[^:]+:/.test(l));
      if (named.length === 0) return [];
      return [
        finding(
          'host.device-acl',
          'low',
          null,
          `${path} is open to ${named.map((l) => l.split(':').slice(0, 2).join(' ')).join(', ')} by its ACL`,
          `${path}: ACL ${named.join(', ')}`,
          'Each named user or group in the ACL reaches the device past its owner, group and mode: for /dev/kvm, the KVM module’s whole ioctl interface. udev’s "uaccess" tag gives one to the user logged in at the seat.',
          'Device nodes go to groups (kvm, qemu-net) by udev rules, and only a guest’s own unit lists its devices (DevicePolicy=closed). On a server, drop the seat’s entry with a udev rule between 70-uaccess.rules and 73-seat-late.rules: TAG-="uaccess" for the device.',
          null,
        ),
      ];
    });
  },
};

const apparmorEnabled: AuditCheck = {
  name: 'host.apparmor',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: () => {
    const v = readSmall(HOST_PATHS.apparmorEnabled)?.text.trim();
    if (v === 'Y') return [];
    return [
      finding(
        'host.apparmor',
        'medium',
        null,
        'AppArmor is not enabled',
        v === undefined
          ? `${HOST_PATHS.apparmorEnabled}: does not exist (AppArmor is not in this kernel)`
          : `${HOST_PATHS.apparmorEnabled}: ${v}`,
        'Without a mandatory access control system only file permissions stand between a compromised QEMU and the host’s files and other guests’ images.',
        'Each guest has its own AppArmor profile; boot with apparmor=1 security=apparmor (Debian’s default) so that it is enforced.',
        null,
      ),
    ];
  },
};

/** Every record of the kernel log, read without blocking; undefined with the reason when it cannot be read. */
export function readKernelLog(path = HOST_PATHS.kmsg): { lines: string[] } | { error: string } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return { error: `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  const lines: string[] = [];
  const buf = Buffer.alloc(8192);
  try {
    for (let i = 0; i < 1_000_000; i++) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue;
        if (code === 'EAGAIN') break;
        return { error: `${path}: ${code ?? (e as Error).message}` };
      }
      if (n === 0) break;
      const rec = buf.subarray(0, n).toString('utf8');
      const semi = rec.indexOf(';');
      lines.push((semi >= 0 ? rec.slice(semi + 1) : rec).split('\n')[0]!);
    }
  } finally {
    closeSync(fd);
  }
  return { lines };
}

export interface Denial {
  line: string;
  profile: string;
  operation: string;
  name: string;
  mask: string;
}

export function parseDenial(line: string): Denial | undefined {
  if (!line.includes('apparmor="DENIED"')) return undefined;
  const field = (k: string) =>
    new RegExp(`\\b${k}="([^"]*)"`).exec(line)?.[1] ?? new RegExp(`\\b${k}=(\\S+)`).exec(line)?.[1] ?? '';
  const profile = field('profile');
  const comm = field('comm');
  if (!/qemu|libvirt/.test(profile) && !/qemu|kvm/.test(comm)) return undefined;
  return {
    line,
    profile,
    operation: field('operation'),
    name: field('name'),
    mask: field('denied_mask') || field('requested_mask'),
  };
}

/** The answer that grants what a denial refused, and what to set it to. */
export function answerForDenial(d: Denial, owner: QemuProcess | undefined): { answer: string; advice: string } {
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
    advice: `nothing in the answers grants ${n}: if this guest really needs it, it is a file the bundle does not model yet; keep the profile enforced and report it`,
  };
}

function denials(view: HostView): Finding[] {
  const log = readKernelLog();
  if ('error' in log) {
    view.unseen.push({
      what: 'the kernel log, so AppArmor denials for QEMU were not looked for',
      reason: `${log.error}${log.error.endsWith('EPERM') || log.error.endsWith('EACCES') ? ' (kernel.dmesg_restrict: only root may read it)' : ''}`,
    });
    return [];
  }
  const seen = new Set<string>();
  const out: Finding[] = [];
  for (const line of log.lines) {
    const d = parseDenial(line);
    if (!d) continue;
    const key = `${d.profile}\0${d.operation}\0${d.name}\0${d.mask}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const owner = view.processes.find((p) => p.apparmorLabel?.split(' ')[0] === d.profile);
    const a = answerForDenial(d, owner);
    out.push(
      finding(
        'host.apparmor-denied',
        'low',
        owner ?? null,
        `AppArmor denied ${d.operation || 'access'} of ${d.name || '?'} to ${d.profile}`,
        line,
        'A denial means confinement worked: the profile kept QEMU from something it was not given. Turning the profile off to silence it gives a compromised QEMU everything; granting the one thing the guest needs keeps the rest closed.',
        `Set ${a.answer}: ${a.advice}; the bundle then allows exactly that in the guest’s profile.`,
        a.answer,
      ),
    );
  }
  return out;
}

const apparmorDenied: AuditCheck = {
  name: 'host.apparmor-denied',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: denials,
};

export const hostChecks: AuditCheck[] = [deviceModes, deviceAcls, apparmorEnabled, apparmorDenied];
