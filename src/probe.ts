// The host probe: what this machine offers and what that implies for the bundle. Reads /sys, /proc and
// os-release, asks each confinement backend whether the kernel enforces it (its own probe), and asks QEMU, systemd
// and AppArmor's parser for their versions through tools.ts; every answer is checked against one schema. hostTarget() says which release a bundle generated here is for.
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CONFINEMENT } from './confine/index.js';
import { InputError } from './errors.js';
import { qemuCaps } from './qemucaps.js';
import {
  readOsRelease,
  RELEASES,
  releaseForVersions,
  releaseOfOs,
  describeRelease,
  TARGETS,
  type Release,
  type Target,
} from './releases.js';
import { run, runSync, which } from './tools.js';

export const hostFactsSchema = z.object({
  cpuVirtualization: z.enum(['vmx', 'svm', 'none']),
  kvm: z.object({ present: z.boolean(), owner: z.string(), group: z.string(), mode: z.string() }),
  tun: z.object({ present: z.boolean(), group: z.string(), mode: z.string() }),
  vhostNet: z.boolean(),
  /** passt, the user-mode network in a unit of its own (Debian package passt); without it, only slirp in QEMU. */
  passt: z.boolean().default(false),
  /**
   * Which virtiofsd is installed: the Rust one (/usr/libexec/virtiofsd, Debian 13), which runs as the guest's user;
   * only the C one (/usr/lib/qemu/virtiofsd, Debian 12), which needs root and is never used; or none.
   */
  virtiofsd: z.enum(['rust', 'c-only', 'none']).default('none'),
  qemu: z.object({
    binary: z.string().nullable(),
    version: z.string().nullable(),
    sandbox: z.boolean(),
    /** The binary's own machine types and CPU models (empty when it is not here). */
    machines: z.array(z.string()).default([]),
    cpuModels: z.array(z.string()).default([]),
  }),
  systemdVersion: z.number().nullable(),
  /** apparmor_parser's version ("4.1.0"), null where the parser is not installed. */
  apparmorVersion: z.string().nullable().optional(),
  /** What /etc/os-release says this host is. */
  os: z.object({ id: z.string(), versionId: z.string(), prettyName: z.string() }).optional(),
  /** The release a bundle made here is for, when qemu-harden can tell (hostTarget). */
  target: z.enum(TARGETS).optional(),
  cgroup: z.enum(['v2', 'v1-hybrid', 'unknown']),
  /** Each confinement backend qemu-harden knows (src/confine/), and whether this host's kernel enforces it. */
  confinement: z.array(
    z.object({ id: z.string(), name: z.string(), noun: z.string(), enforced: z.boolean(), evidence: z.string() }),
  ),
  groups: z.object({ kvm: z.boolean(), qemuNet: z.boolean() }),
  iommuGroups: z.number(),
  pci: z.array(
    z.object({
      address: z.string(),
      description: z.string(),
      iommuGroup: z.number().nullable(),
      groupMates: z.array(z.string()),
    }),
  ),
  usb: z.array(z.object({ vendorId: z.string(), productId: z.string(), description: z.string() })),
  cpus: z.number(),
  memoryMiB: z.number(),
});

export type HostFacts = z.infer<typeof hostFactsSchema>;

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function node(path: string, groups: Map<number, string>) {
  try {
    const st = statSync(path);
    return {
      present: true,
      owner: st.uid === 0 ? 'root' : String(st.uid),
      group: groups.get(st.gid) ?? String(st.gid),
      mode: (st.mode & 0o777).toString(8).padStart(4, '0'),
    };
  } catch {
    return { present: false, owner: '', group: '', mode: '' };
  }
}

function groupsFile(): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of read('/etc/group').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid) m.set(Number(gid), name);
  }
  return m;
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

function pciDevices() {
  return listDir('/sys/bus/pci/devices').map((address) => {
    const dir = join('/sys/bus/pci/devices', address);
    let iommuGroup: number | null;
    try {
      iommuGroup = Number(readlinkSync(join(dir, 'iommu_group')).split('/').at(-1));
    } catch {
      iommuGroup = null;
    }
    const groupMates =
      iommuGroup === null ? [] : listDir(`/sys/kernel/iommu_groups/${iommuGroup}/devices`).filter((d) => d !== address);
    return {
      address,
      description: `class ${read(join(dir, 'class'))} ${read(join(dir, 'vendor'))}:${read(join(dir, 'device'))}`,
      iommuGroup,
      groupMates,
    };
  });
}

function usbDevices() {
  return listDir('/sys/bus/usb/devices')
    .map((d) => join('/sys/bus/usb/devices', d))
    .filter((d) => existsSync(join(d, 'idVendor')) && read(join(d, 'bDeviceClass')) !== '09')
    .map((d) => ({
      vendorId: read(join(d, 'idVendor')),
      productId: read(join(d, 'idProduct')),
      description: read(join(d, 'product')) || 'USB device',
    }));
}

/** The quick part, from files only: no process is started. */
export function probeFiles(): Omit<HostFacts, 'qemu' | 'systemdVersion'> {
  const cpuinfo = read('/proc/cpuinfo');
  const groups = groupsFile();
  const names = new Set(groups.values());
  const tun = node('/dev/net/tun', groups);
  return {
    cpuVirtualization: /\bvmx\b/.test(cpuinfo) ? 'vmx' : /\bsvm\b/.test(cpuinfo) ? 'svm' : 'none',
    kvm: node('/dev/kvm', groups),
    tun: { present: tun.present, group: tun.group, mode: tun.mode },
    vhostNet: existsSync('/dev/vhost-net'),
    passt: existsSync('/usr/bin/passt'),
    virtiofsd: existsSync('/usr/libexec/virtiofsd')
      ? 'rust'
      : existsSync('/usr/lib/qemu/virtiofsd')
        ? 'c-only'
        : 'none',
    cgroup: existsSync('/sys/fs/cgroup/cgroup.controllers')
      ? 'v2'
      : existsSync('/sys/fs/cgroup/unified') || existsSync('/sys/fs/cgroup/memory')
        ? 'v1-hybrid'
        : 'unknown',
    confinement: CONFINEMENT.map((b) => ({ id: b.id, name: b.name, noun: b.noun, ...b.probe() })),
    groups: { kvm: names.has('kvm'), qemuNet: names.has('qemu-net') },
    iommuGroups: listDir('/sys/kernel/iommu_groups').length,
    pci: pciDevices(),
    usb: usbDevices(),
    cpus: (cpuinfo.match(/^processor\s*:/gm) ?? []).length || 1,
    memoryMiB: Math.floor(Number(/^MemTotal:\s+(\d+)/m.exec(read('/proc/meminfo'))?.[1] ?? 0) / 1024),
  };
}

/** Where RHEL, CentOS Stream and Fedora's qemu-kvm package puts QEMU, off PATH, with Red Hat's own machine types. */
export const RHEL_QEMU = '/usr/libexec/qemu-kvm';

export async function probeHost(qemuBinary = 'qemu-system-x86_64'): Promise<HostFacts> {
  const files = probeFiles();
  const binary = qemuBinary.startsWith('/')
    ? existsSync(qemuBinary)
      ? qemuBinary
      : null
    : (which(qemuBinary) ?? (qemuBinary === 'qemu-system-x86_64' && existsSync(RHEL_QEMU) ? RHEL_QEMU : null));
  const parser = which('apparmor_parser');
  const [version, sandbox, systemd, caps, apparmorParser] = await Promise.all([
    binary ? run(binary, ['--version'], { timeoutMs: 5000 }) : undefined,
    binary
      ? run(binary, ['-sandbox', 'on', '-machine', 'none', '-display', 'none', '-nodefaults', '-S', '-qmp', 'stdio'], {
          timeoutMs: 5000,
          input: '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
        })
      : undefined,
    which('systemctl') ? run(which('systemctl')!, ['--version'], { timeoutMs: 5000 }) : undefined,
    binary ? qemuCaps(binary) : undefined,
    parser ? run(parser, ['--version'], { timeoutMs: 5000 }) : undefined,
  ]);
  return hostFactsSchema.parse({
    ...files,
    qemu: {
      binary,
      version: /version ([0-9.]+)/.exec(version?.stdout ?? '')?.[1] ?? null,
      sandbox: sandbox?.exitCode === 0,
      machines: caps?.machines ?? [],
      cpuModels: caps?.cpuModels ?? [],
    },
    systemdVersion: Number(/^systemd (\d+)/.exec(systemd?.stdout ?? '')?.[1]) || null,
    apparmorVersion: apparmorVersionOf(apparmorParser?.stdout),
    os: readOsRelease(),
    target: thisHostTarget()?.target,
  });
}

function apparmorVersionOf(text: string | undefined): string | null {
  return /version (\d+\.\d+(?:\.\d+)?)/i.exec(text ?? '')?.[1] ?? null;
}

export interface HostTarget {
  target: Target;
  /** Where the target came from, in a few words for the operator. */
  how: string;
}

/**
 * The release a bundle generated on this machine is for: the one os-release names, when qemu-harden knows it;
 * otherwise the newest known release whose QEMU, systemd and AppArmor are no newer than the versions installed
 * here; undefined when even the oldest is newer (the caller then says so and asks for --target).
 */
export function hostTarget(root = '/'): HostTarget | undefined {
  const os = readOsRelease(root);
  const known = os ? releaseOfOs(os) : undefined;
  if (known) return { target: known.target, how: `this host runs ${os!.prettyName}` };
  const version = (file: string | undefined, args: string[], re: RegExp) => {
    if (!file) return null;
    return re.exec(runSync(file, args).stdout)?.[1] ?? null;
  };
  const found = {
    qemu: version(which('qemu-system-x86_64'), ['--version'], /version (\d+\.\d+)/),
    systemd: Number(version(which('systemctl'), ['--version'], /^systemd (\d+)/m)) || null,
    apparmor: version(which('apparmor_parser'), ['--version'], /version (\d+\.\d+)/i),
  };
  const fit: Release | undefined = releaseForVersions(found);
  if (!fit) return undefined;
  return {
    target: fit.target,
    how: `${os?.prettyName ?? 'this host'} is not a release qemu-harden knows by name; its versions (QEMU ${found.qemu ?? 'absent'}, systemd ${found.systemd ?? 'absent'}, AppArmor ${found.apparmor ?? 'absent'}) fit ${describeRelease(fit)}`,
  };
}

/** qemu-img's reading of an existing image: a suggestion for the operator, never written into the bundle. */
export async function suggestFormat(path: string): Promise<string | undefined> {
  const qemuImg = which('qemu-img');
  if (!qemuImg) return undefined;
  const r = await run(qemuImg, ['info', '-U', '--output=json', path], { timeoutMs: 5000 });
  if (r.exitCode !== 0) return undefined;
  try {
    const format = (JSON.parse(r.stdout) as { format?: unknown }).format;
    return typeof format === 'string' ? format : undefined;
  } catch {
    return undefined;
  }
}

let thisHost: { target?: HostTarget } | undefined;

/** hostTarget() of this machine, asked once per process. */
function thisHostTarget(): HostTarget | undefined {
  thisHost ??= { target: hostTarget() };
  return thisHost.target;
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function withTarget(doc: unknown, target: string): unknown {
  if (!isObject(doc) || (doc.host !== undefined && !isObject(doc.host))) return doc;
  return { ...doc, host: { ...(doc.host as Record<string, unknown> | undefined), target } };
}

/**
 * The answers document with the release its bundle is for: --target when given, else the answers' own
 * host.target, else this host's release (hostTarget). `how` says which, for the operator.
 */
export function chooseTarget(doc: unknown, flag: string | undefined): { doc: unknown; how: string } {
  if (flag !== undefined) {
    if (!(TARGETS as readonly string[]).includes(flag))
      throw new InputError(`--target: "${flag}" is not a release qemu-harden knows; use one of ${TARGETS.join(', ')}`);
    return { doc: withTarget(doc, flag), how: 'chosen with --target' };
  }
  if (isObject(doc) && isObject(doc.host) && doc.host.target !== undefined)
    return { doc, how: 'as the answers say (host.target)' };
  const here = thisHostTarget();
  if (!here)
    throw new InputError(
      `this host's release is not one qemu-harden knows, and its QEMU, systemd or AppArmor is older than ${RELEASES['debian-12'].name}'s: name the release the bundle is for with --target (${TARGETS.join(', ')})`,
    );
  return { doc: withTarget(doc, here.target), how: here.how };
}
