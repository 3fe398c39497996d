// The host around the guests: device nodes every user can open, and who else their ACLs let in. Whether the
// kernel enforces a confinement backend, and the denials it logged for QEMU, are each backend's own checks
// (src/confine/, with src/audit/denials.ts).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { runSync, which } from '../tools.js';
import { modeText } from './files.js';
import { finding, type AuditCheck, type Finding } from './types.js';

export const HOST_PATHS = {
  dev: '/dev',
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

export const hostChecks: AuditCheck[] = [deviceModes, deviceAcls];
