// Where a guest's files may be, judged by the path alone: the same answer on the machine that generates a bundle
// (often CI, which has none of the target's files) and on the target. What is really at a path on a host is
// judged by hostpaths.ts and target.ts, where that host can be seen.
import { GUEST_OWNED_DIRS } from './names.js';

export function underDir(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir + '/');
}

const depth = (path: string) => path.split('/').length - 1;

export const SYSTEM_DIRS = [
  '/etc',
  '/usr',
  '/boot',
  '/proc',
  '/sys',
  '/dev',
  '/bin',
  '/sbin',
  '/lib',
  '/lib64',
  '/run',
];

/** Directories every guest unit hides from QEMU (ProtectHome=yes, PrivateTmp=yes): guest files there cannot work. */
export const HIDDEN_DIRS = [
  { dir: '/home', why: 'ProtectHome=yes' },
  { dir: '/root', why: 'ProtectHome=yes' },
  { dir: '/run/user', why: 'ProtectHome=yes' },
  { dir: '/tmp', why: 'PrivateTmp=yes gives QEMU an empty /tmp of its own' },
  { dir: '/var/tmp', why: 'PrivateTmp=yes gives QEMU an empty /var/tmp of its own' },
];

/**
 * Places that hold host secrets or system state. Like libvirt's virt-aa-helper (its `valid_path`), qemu-harden
 * gives a guest no file from there, read-only or not; the few read-only exceptions are in READ_ONLY_ALLOWED.
 * /home and /root are also hidden from every unit (ProtectHome=).
 */
export const RESTRICTED_DIRS = [
  '/etc',
  '/root',
  '/home',
  '/proc',
  '/sys',
  '/run',
  '/dev',
  '/boot',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/lost+found',
  '/var/log',
  '/var/cache',
  '/var/backups',
  '/var/spool',
  '/var/mail',
  '/var/run',
  '/var/lock',
  '/snap',
  ...[
    'dpkg',
    'apt',
    'systemd',
    'private',
    'sss',
    'polkit-1',
    'sudo',
    'dbus',
    'pam',
    'ucf',
    'dhcp',
    'NetworkManager',
    'docker',
    'containers',
    'machines',
    'libvirt/qemu',
  ].map((d) => `/var/lib/${d}`),
];

/** Read-only exceptions inside RESTRICTED_DIRS: firmware and images the distribution ships. */
export const READ_ONLY_ALLOWED = ['/usr/share', '/usr/local/share', '/usr/lib/ipxe'];

/** Kernels, initrds and device trees may come from /boot: only files named like one, only for those fields. */
const BOOT_FILE = /^\/boot\/(dtbs\/.+\.dtb|[^/]*(vmlinuz|vmlinux|bzImage|initrd|initramfs)[^/]*|[^/]+\.dtb)$/;

export type FileKind = 'disk' | 'boot' | 'firmware';

/**
 * Is this file in the system's own places? Validation lets a guest have only the read-only exceptions there
 * (firmware, images, kernels, initrds); qemu-harden never changes them, so a guest reads one only when it is
 * world-readable.
 */
export function isSystemFile(path: string): boolean {
  return RESTRICTED_DIRS.some((d) => underDir(path, d));
}

/** Why a guest may not have this file, or undefined when it may. */
export function restrictedFile(path: string, kind: FileKind, readOnly: boolean): string | undefined {
  const own = GUEST_OWNED_DIRS.find((d) => underDir(path, d));
  if (own)
    return `is under ${own}, which qemu-harden creates and each guest owns; keep guest files outside it (e.g. under /srv)`;
  const dir = RESTRICTED_DIRS.find((d) => underDir(path, d));
  if (!dir) return undefined;
  const where = `is under ${dir}, which holds host secrets or system state`;
  if (!readOnly) return `${where}; a writable guest file must live elsewhere (e.g. under /srv)`;
  if (READ_ONLY_ALLOWED.some((d) => underDir(path, d))) return undefined;
  if (kind === 'boot' && BOOT_FILE.test(path)) return undefined;
  return `${where}; read-only guest files may come only from ${READ_ONLY_ALLOWED.join(', ')} or, for a kernel, initrd or device tree, /boot/vmlinuz*, /boot/initrd*`;
}

/** Directories shared by everything below them: never one guest's own. */
const SHARED_DIRS = ['/var', '/var/lib', '/var/opt', '/var/local', '/var/cache', '/var/spool', '/usr/local'];

/**
 * Under /etc, the places that hold other programs' keys and the system's own configuration, including where the
 * bundle itself installs. A guest's credentials (its TLS directory, its SPICE password) never come from one.
 */
export const CREDENTIAL_STORES = [
  '/etc/ssl',
  '/etc/ssh',
  '/etc/pki/tls',
  '/etc/pki/CA',
  '/etc/pki/ca-trust',
  '/etc/pki/nssdb',
  '/etc/pki/libvirt',
  '/etc/pki/rpm-gpg',
  '/etc/pki/java',
  '/etc/letsencrypt',
  '/etc/credstore',
  '/etc/credstore.encrypted',
  '/etc/ipsec.d',
  '/etc/swanctl',
  '/etc/openvpn',
  '/etc/wireguard',
  '/etc/kubernetes',
  '/etc/docker',
  '/etc/containers',
  '/etc/libvirt',
  '/etc/pve',
  '/etc/ceph',
  '/etc/security',
  '/etc/sudoers.d',
  '/etc/polkit-1',
  '/etc/pam.d',
  '/etc/cron.d',
  '/etc/systemd',
  '/etc/apparmor',
  '/etc/apparmor.d',
  '/etc/udev',
  '/etc/sysusers.d',
  '/etc/tmpfiles.d',
  '/etc/qemu-harden',
];

/**
 * Why a guest's credentials may not be at this path, or undefined when they may. A TLS directory is read as a
 * whole (every file in it is bound into the guest's namespace and its AppArmor profile reads `dir/*`), and a
 * password file is read by systemd as root and handed to the guest's QEMU: either must be that guest's own, never
 * a system directory, a store of other programs' keys, or a directory shared by everything below it.
 */
export function credentialPlace(path: string, kind: 'directory' | 'file'): string | undefined {
  const own = GUEST_OWNED_DIRS.find((d) => underDir(path, d) || underDir(d, path));
  if (own)
    return `is ${path === own ? '' : underDir(path, own) ? 'under ' : 'a parent of '}${own}, which qemu-harden creates and each guest owns; keep credentials elsewhere (e.g. /etc/pki/qemu/GUEST)`;
  const store = CREDENTIAL_STORES.find((d) => underDir(path, d) || underDir(d, path));
  if (store)
    return underDir(path, store)
      ? `is under ${store}, which holds other programs' keys or the system's configuration; give the guest a ${kind} of its own (e.g. /etc/pki/qemu/GUEST)`
      : `holds ${store}, which holds other programs' keys or the system's configuration; give the guest a ${kind} of its own (e.g. /etc/pki/qemu/GUEST)`;
  if (underDir(path, '/etc')) {
    if (depth(path) <= 2)
      return kind === 'directory'
        ? `is /etc itself or one program's configuration directory under it; a guest's TLS directory is a directory of its own below one (e.g. /etc/pki/qemu/GUEST)`
        : `is a file of the system's own configuration; keep the guest's password in a directory of its own (e.g. /etc/pki/qemu/GUEST)`;
    return undefined;
  }
  const dir = RESTRICTED_DIRS.find((d) => underDir(path, d));
  if (dir) return `is under ${dir}, which holds host secrets or system state`;
  if (kind === 'directory' && (depth(path) <= 1 || SHARED_DIRS.includes(path)))
    return `is ${depth(path) <= 1 ? 'a top-level directory' : 'a directory'} shared by everything below it; give the guest a directory of its own`;
  return undefined;
}

/**
 * Why a host directory may not be shared into a guest, or undefined when it may. The guest reads (or writes)
 * everything below it, so it is never a system place or a store of host secrets, never a parent of one, never
 * qemu-harden's own per-guest directories or a parent of them, never where every unit hides it, and never a
 * top-level or shared directory: a shared folder is a directory of the guest's own.
 */
export function sharePlace(path: string): string | undefined {
  const own = GUEST_OWNED_DIRS.find((d) => underDir(path, d) || underDir(d, path));
  if (own)
    return `is ${path === own ? '' : underDir(path, own) ? 'under ' : 'a parent of '}${own}, which qemu-harden creates and each guest owns; share a directory of the guest's own elsewhere (e.g. under /srv)`;
  const hidden = HIDDEN_DIRS.find((h) => underDir(path, h.dir));
  if (hidden)
    return `is under ${hidden.dir}, which every guest unit hides (${hidden.why}); share a directory elsewhere, e.g. under /srv`;
  const system = RESTRICTED_DIRS.find((d) => underDir(path, d));
  if (system) return `is under ${system}, which holds host secrets or system state; a guest never sees it`;
  const holds = RESTRICTED_DIRS.find((d) => underDir(d, path)) ?? HIDDEN_DIRS.find((h) => underDir(h.dir, path))?.dir;
  if (holds)
    return `holds ${holds}, which holds host secrets, system state or users' files; share a directory of its own`;
  if (depth(path) <= 1 || SHARED_DIRS.includes(path))
    return `is ${depth(path) <= 1 ? 'a top-level directory' : 'a directory'} shared by everything below it; share a directory of the guest's own below it`;
  return undefined;
}

/**
 * Subdirectories of /dev that hold no block storage, and what they hold. A disk there is refused by its path,
 * whether or not the machine that generates the bundle has the node.
 */
const NOT_STORAGE_DIRS: Record<string, string> = {
  shm: 'shared memory',
  pts: 'terminals',
  mqueue: 'message queues',
  hugepages: 'huge pages',
  fd: "a process's own file descriptors",
  net: 'network interfaces (tun)',
  vfio: 'device passthrough (VFIO)',
  bus: 'USB devices',
  usb: 'USB devices',
  input: 'input devices (the host’s keyboard and mouse)',
  snd: 'sound devices',
  dri: 'graphics devices',
  char: 'links to character devices',
  serial: 'serial ports',
  v4l: 'video devices',
  dvb: 'TV tuners',
  cpu: 'per-CPU registers (msr, cpuid)',
  dma_heap: 'DMA memory',
  raw: 'raw I/O bindings',
  bsg: 'SCSI command interfaces',
  infiniband: 'InfiniBand devices',
  xen: 'Xen hypervisor interfaces',
  hidraw: 'input devices',
  gpiochip: 'GPIO lines',
};

/** Character devices of /dev by name, and what they are. */
const NOT_STORAGE_NODES: [RegExp, string][] = [
  [/^(null|zero|full|random|urandom)$/, 'data the kernel makes up'],
  [/^(mem|kmem|port|kcore)$/, 'the host’s own memory or I/O ports'],
  [/^(tty|console|ptmx|vcs|ttyS|ttyUSB|ttyACM|ttyAMA|hvc|pts)[0-9a-z]*$/, 'a terminal'],
  [/^watchdog[0-9]*$/, 'a hardware watchdog: opening it arms a reboot of the host'],
  [/^(kmsg|log)$/, 'the kernel’s log'],
  [/^(uinput|uhid|hiddev[0-9]*|hidraw[0-9]*|event[0-9]*|mouse[0-9]*|mice)$/, 'an input device'],
  [/^(dsp|audio|mixer|sequencer|midi)[0-9]*$/, 'a sound device'],
  [/^(fb|video|media|dri)[0-9]*$/, 'a display or video device'],
  [
    /^(kvm|vhost-net|vhost-vsock|vsock|fuse|userfaultfd|loop-control|btrfs-control|cpu_dma_latency|rfkill|autofs|ppp|uevent|vga_arbiter|snapshot|hwrng|net|initctl|stdin|stdout|stderr)$/,
    'a kernel interface',
  ],
  [
    /^(sg[0-9]+|st[0-9]+|nst[0-9]+|ch[0-9]+|sch[0-9]+|ng[0-9]+n[0-9]+|nvme[0-9]+|nvme-fabrics|mtd[0-9]+(ro)?|ubi[0-9_]+|mmcblk[0-9]+rpmb|dax[0-9.]+|mtdblock[0-9]+)$/,
    'a storage controller’s command interface or raw flash: it reaches past the block layer, or the host’s firmware',
  ],
  [/^(tpm|tpmrm)[0-9]*$/, 'the host’s TPM'],
  [/^(rtc|hpet|ptp|pps)[0-9]*$/, 'a clock'],
  [
    /^(i2c-[0-9]+|spidev[0-9.]+|gpiochip[0-9]+|mei[0-9]*|ipmi[0-9]+|nvram|sgx_enclave|sgx_provision|sev|udmabuf|lp[0-9]+)$/,
    'a hardware interface of the host',
  ],
];

/** Block devices by the kernel's own names: what a disk directly under /dev may be called. */
const STORAGE_NODE = new RegExp(
  '^(' +
    [
      '(sd|hd|vd|xvd)[a-z]+[0-9]*',
      'nvme[0-9]+n[0-9]+(p[0-9]+)?',
      'mmcblk[0-9]+(p[0-9]+|boot[0-9]+)?',
      'loop[0-9]+(p[0-9]+)?',
      'dm-[0-9]+',
      'md[0-9]+(p[0-9]+)?',
      'nbd[0-9]+(p[0-9]+)?',
      'rbd[0-9]+(p[0-9]+)?',
      'zd[0-9]+(p[0-9]+)?',
      'drbd[0-9]+',
      'bcache[0-9]+',
      'pmem[0-9]+(\\.[0-9]+)?s?(p[0-9]+)?',
      'sr[0-9]+',
      'ram[0-9]+',
      'zram[0-9]+',
      'ublkb[0-9]+',
      'dasd[a-z]+[0-9]*',
    ].join('|') +
    ')$',
);

/** Directories udev and the storage stacks fill with block devices or links to them. */
const STORAGE_DIRS = ['disk', 'mapper', 'zvol', 'md', 'block', 'drbd', 'bcache', 'cciss', 'ida', 'rd', 'etherd'];

const LVM_NAME = /^[A-Za-z0-9+_.][A-Za-z0-9+_.-]*$/;

/**
 * Why a path under /dev cannot be a guest's disk, judged by its name: block storage is named as the kernel, udev
 * and LVM name it (sd*, vd*, nvme*n*, /dev/disk/by-*, /dev/mapper/*, /dev/VG/LV, …); a terminal, the watchdog,
 * memory, the kernel log, an input or sound device never is, whether or not this machine has that node.
 */
export function notStorage(path: string): string | undefined {
  if (!underDir(path, '/dev')) return undefined;
  const [first, ...rest] = path.split('/').slice(2);
  const storageHint =
    'under /dev a disk is block storage named as the kernel, udev or LVM name it (sd*, vd*, nvme*n*, …, /dev/disk/by-id/*, /dev/mapper/*, /dev/VG/LV)';
  if (first === undefined || first === '') return `is /dev itself; ${storageHint}`;
  if (rest.length === 0) {
    if (STORAGE_NODE.test(first)) return undefined;
    const known = NOT_STORAGE_NODES.find(([re]) => re.test(first));
    if (known) return `${path} is a character device (${known[1]}), never a disk; ${storageHint}`;
    if (NOT_STORAGE_DIRS[first]) return `${path} is a directory of ${NOT_STORAGE_DIRS[first]}, never a disk`;
    return `${path} is not named like block storage; ${storageHint}`;
  }
  if (NOT_STORAGE_DIRS[first])
    return `${path} is under /dev/${first}, which holds ${NOT_STORAGE_DIRS[first]}, never a disk`;
  if (first === 'mapper' && rest.join('/') === 'control')
    return `${path} is a character device (device-mapper's control interface), never a disk`;
  if (STORAGE_DIRS.includes(first)) return undefined;
  if (rest.length === 1 && LVM_NAME.test(first) && LVM_NAME.test(rest[0]!)) return undefined;
  return `${path} is not named like block storage; ${storageHint}`;
}
