// --answers-out: an answers document rebuilt from the running guests' command lines. What carries over safely
// (name, vCPUs, memory, machine, firmware, disks with formats and read-only flags, network, display) is kept;
// everything else is left at the bundle's secure default and listed, so the operator sees what changes.
import { defaultTapDevice, GUEST_NAME } from '../names.js';
import { SYSTEM_DIRS, underDir } from '../places.js';
import { splitOpts } from '../qemuargs.js';
import { removedOption } from '../releases.js';
import { isSecuritySupportedMachine } from '../rules.js';
import { isOff, isOn } from './cmdline.js';
import { localDisks } from './files.js';
import { vncAccess, vncEndpoint } from './listeners.js';
import { acceleratorOf, sandboxOn } from './process.js';
import { noFiles, type FileFacts, type QemuProcess } from './types.js';

export interface NotCarried {
  guest: string;
  choice: string;
  reason: string;
}

export interface Reconstructed {
  doc: { schemaVersion: number; useCase: string; guests: Record<string, unknown>[] };
  notCarried: NotCarried[];
  /** The pid each guest of the document was rebuilt from, in the same order. */
  pids: number[];
}

const ABS = (p: string) =>
  p.startsWith('/') &&
  p.length > 1 &&
  !/[\u0000-\u001f\u007f]/.test(p) &&
  !p
    .split('/')
    .slice(1)
    .some((s) => s === '' || s === '.' || s === '..');
const IP = /^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-f:]*:[0-9a-f:]*$/i;

function guestName(raw: string | undefined, pid: number, taken: Set<string>): string {
  let n = (raw ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .slice(0, 24)
    .replace(/-+$/, '');
  if (!GUEST_NAME.test(n)) n = `vm-${pid}`.slice(0, 24);
  let candidate = n;
  for (let i = 2; taken.has(candidate); i++)
    candidate = `${n.slice(0, 24 - String(i).length - 1).replace(/-+$/, '')}-${i}`;
  taken.add(candidate);
  return candidate;
}

function optionValues(p: QemuProcess, name: string): string[] {
  return p.cmd.options.filter((o) => o.name === name && o.value !== undefined).map((o) => o.value!);
}

/** The answers rebuilt from the command lines; `files` holds what live.ts read of their images' headers. */
export function reconstruct(processes: QemuProcess[], files: FileFacts = noFiles()): Reconstructed {
  const notCarried: NotCarried[] = [];
  const taken = new Set<string>();
  const writers = new Map<string, string>();
  const readers = new Map<string, string>();
  const guests: Record<string, unknown>[] = [];

  for (const p of processes) {
    const name = guestName(p.cmd.name, p.pid, taken);
    const note = (choice: string, reason: string) => notCarried.push({ guest: name, choice, reason });
    if (name !== p.cmd.name)
      note(
        'name',
        `${p.cmd.name === undefined ? `pid ${p.pid} has no -name` : `"${p.cmd.name}" is not a valid guest name`}; it is called "${name}"`,
      );
    const g: Record<string, unknown> = { name };

    if (p.cmd.machine) {
      const base = p.cmd.machine.replace(/\+pve\d+$/, '');
      if (/^[a-z0-9][a-z0-9._-]{0,63}$/.test(base) && isSecuritySupportedMachine(base)) g.machine = base;
      else note('machine', `"${p.cmd.machine}" is not a machine type QEMU supports for guest isolation; q35 is used`);
    }
    // No ACPI or no HPET: by the machine property, or by the option it replaced (-no-acpi, -no-hpet: src/releases.ts).
    for (const key of ['acpi', 'hpet'] as const)
      if (
        p.cmd.options.some((o) =>
          o.name === 'machine' || o.name === 'M'
            ? isOff(splitOpts(o.value ?? '', 'type').get(key))
            : removedOption(o.name, () => new Map())?.answer === key,
        )
      )
        g[key] = false;
    if (p.cmd.smp !== undefined) g.vcpus = Math.min(512, p.cmd.smp);
    if (p.cmd.memoryMiB !== undefined) g.memoryMiB = Math.max(16, p.cmd.memoryMiB);
    const cpu = optionValues(p, 'cpu')[0];
    if (cpu) {
      const [model, ...rest] = cpu.split(',');
      const features = rest.filter((f) => /^[+-][a-z0-9][a-z0-9_.-]{0,63}$/.test(f));
      if (rest.length !== features.length) note('cpu', `-cpu ${cpu}: only the model and +/- features are carried over`);
      if (model === 'host') g.cpu = { features };
      else if (model && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(model)) g.cpu = { model, features };
    }

    if (acceleratorOf(p).accel === 'tcg') {
      note(
        'useCase',
        'runs under TCG; the answers use KVM (useCase "virtualization"). To keep TCG, set useCase to "emulation" and accept the risk "emulation" with a reason',
      );
    }

    const code = p.cmd.disks.find((d) => d.pflash && d.readOnly) ?? p.cmd.disks.find((d) => d.pflash);
    if (code) {
      if (ABS(code.path)) g.firmware = { type: 'uefi', code: code.path };
      else note('firmware', `UEFI firmware "${code.path}" is not a plain path; the default OVMF code is used`);
      const vars = p.cmd.disks.find((d) => d.pflash && d !== code);
      if (vars)
        note(
          'firmware',
          `the UEFI variables in ${vars.path} are not copied; the guest starts from the OVMF variables template`,
        );
    } else if (p.cmd.bios)
      note('firmware', `-bios ${p.cmd.bios} is not carried over; the distribution's SeaBIOS is used`);

    const disks: Record<string, unknown>[] = [];
    const local = new Set(localDisks(p));
    const attached = new Set<string>();
    for (const d of p.cmd.disks.filter((x) => !x.pflash && !local.has(x)))
      note('disks', `${d.protocol} disk ${d.path}: network and other non-file disks are not carried over`);
    for (const d of local) {
      if (!ABS(d.path)) {
        note('disks', `${d.path}: not a normalised absolute path`);
        continue;
      }
      if (attached.has(d.path)) continue;
      const blockDevice = underDir(d.path, '/dev');
      let format = d.format;
      if (format === undefined) {
        const b = files.backing.get(d.path);
        const header = b && 'ok' in b && b.ok !== undefined ? 'qcow2 with a backing file' : 'not read';
        note(
          'disks',
          `${d.path}: no format was given, so QEMU guessed it (header: ${header}); it is attached as raw, which never follows a header a guest may have written. Set format to "qcow2" only if you created the image as qcow2`,
        );
        format = 'raw';
      }
      if (format !== 'raw' && format !== 'qcow2') {
        note('disks', `${d.path}: format "${format}" is not supported by the bundle (qcow2 or raw)`);
        continue;
      }
      if (blockDevice && format !== 'raw') {
        note('disks', `${d.path}: a block device is attached as raw only`);
        continue;
      }
      const readOnly = d.readOnly;
      const sys = SYSTEM_DIRS.find((s) => underDir(d.path, s));
      if (!readOnly && !blockDevice && sys) {
        note(
          'disks',
          `${d.path}: a writable disk under ${sys} is not carried over; move it (e.g. to /srv or /var/lib)`,
        );
        continue;
      }
      const writer = writers.get(d.path);
      const reader = readers.get(d.path);
      if (!readOnly && (writer || reader)) {
        note(
          'disks',
          `${d.path} is already a disk of guest "${writer ?? reader}"; a disk another guest uses is never writable here, so it is left out`,
        );
        continue;
      }
      if (readOnly && writer) {
        note('disks', `${d.path} is written by guest "${writer}"; it cannot be shared`);
        continue;
      }
      if (readOnly) readers.set(d.path, name);
      else writers.set(d.path, name);
      attached.add(d.path);
      disks.push({ path: d.path, format, readOnly, ...(blockDevice ? { blockDevice: true } : {}) });
    }
    if (disks.length) g.disks = disks;

    const kernel = optionValues(p, 'kernel')[0];
    if (kernel && ABS(kernel)) {
      const boot: Record<string, string> = { kernel };
      const initrd = optionValues(p, 'initrd')[0];
      const dtb = optionValues(p, 'dtb')[0];
      const append = optionValues(p, 'append')[0];
      if (initrd && ABS(initrd)) boot.initrd = initrd;
      if (dtb && ABS(dtb)) boot.deviceTree = dtb;
      if (append !== undefined && append.length <= 4096 && !/[\u0000-\u001f\u007f]/.test(append)) boot.cmdline = append;
      g.boot = boot;
    }

    g.network = network(p, note);
    g.display = display(p, note);

    if (p.cmd.incoming)
      note(
        'migration',
        `-incoming ${p.cmd.incoming} is a one-time start; migration is configured in the answers (with TLS)`,
      );
    for (const dev of p.cmd.devices) {
      if (dev.driver === 'vfio-pci')
        note(
          'passthrough',
          `PCI device ${dev.opts.get('host') ?? dev.raw}: passthrough needs its IOMMU group and the risk "pci-passthrough" accepted; not carried over`,
        );
      if (dev.driver === 'usb-host')
        note(
          'passthrough',
          `USB device ${dev.raw}: passthrough needs the risk "usb-passthrough" accepted; not carried over`,
        );
    }
    const sb = p.cmd.sandbox;
    if (!sb || !sandboxOn(p))
      note(
        'isolation.sandbox',
        'ran without QEMU’s seccomp sandbox; the answers turn it on with every sub-option denied',
      );
    else if (
      ['obsolete', 'elevateprivileges', 'spawn', 'resourcecontrol'].some(
        (k) => (sb.opts.get(k) ?? (k === 'obsolete' ? 'deny' : 'allow')) !== 'deny',
      )
    )
      note('isolation.sandbox', `-sandbox ${sb.raw}: the answers deny every sub-option`);
    guests.push(g);
  }

  // A tap device belongs to one guest: a name already taken (the same tap passed to several command lines, or two
  // long guest names whose default tap names are cut to the same 15 characters) is replaced by a free one.
  const taps = new Set<string>();
  for (const g of guests) {
    const net = g.network as { mode: string; tapDevice?: string };
    if (net.mode !== 'tap') continue;
    let tap = net.tapDevice ?? defaultTapDevice(g.name as string);
    if (taps.has(tap)) {
      let i = taps.size;
      while (taps.has(`qh-tap${i}`)) i++;
      notCarried.push({
        guest: g.name as string,
        choice: 'network',
        reason: `tap device "${tap}" is already another guest's; this guest gets "qh-tap${i}"`,
      });
      tap = `qh-tap${i}`;
      net.tapDevice = tap;
    }
    taps.add(tap);
  }
  return {
    doc: { schemaVersion: 1, useCase: 'virtualization', guests },
    notCarried,
    pids: processes.map((p) => p.pid),
  };
}

type Note = (choice: string, reason: string) => void;

function network(p: QemuProcess, note: Note): Record<string, unknown> {
  const nets = p.cmd.netdevs;
  if (!nets.length) return { mode: 'none' };
  if (nets.length > 1) note('network', `${nets.length} network back-ends; only the first is carried over`);
  const n = nets[0]!;
  const nic = p.cmd.devices.find((d) => n.id !== undefined && d.opts.get('netdev') === n.id);
  const macRaw = nic?.opts.get('mac') ?? n.opts.get('mac');
  const mac = macRaw && /^52:54:00(:[0-9a-f]{2}){3}$/.test(macRaw.toLowerCase()) ? macRaw.toLowerCase() : undefined;
  if (macRaw && !mac)
    note(
      'network',
      `MAC address ${macRaw} is not a QEMU-local address (52:54:00:…); a stable one is derived from the name`,
    );
  if (n.type === 'user') {
    note(
      'network',
      'user-mode networking inside QEMU (slirp) becomes passt, in a unit of its own, and QEMU keeps no IP socket; on a host without passt, answer network.backend "slirp" and accept the risk "slirp"',
    );
    return { mode: 'user', ...(mac ? { mac } : {}) };
  }
  // passt on the other end of a unix stream (QEMU 7.2 to 10.0), or named as such (10.1 and later): the bundle's user
  // networking, served by a passt unit of its own. What listens on the socket is not read, so it is said.
  if (n.type === 'passt' || (n.type === 'stream' && n.opts.get('addr.type') === 'unix')) {
    if (n.type === 'stream')
      note(
        'network',
        `-netdev stream to the unix socket ${n.opts.get('addr.path') ?? '(unnamed)'} is taken for passt's user-mode network: the bundle runs its own passt for the guest, and whatever served that socket is not carried over`,
      );
    return { mode: 'user', ...(mac ? { mac } : {}) };
  }
  if (n.type === 'tap' || n.type === 'bridge') {
    const ifname = n.opts.get('ifname');
    const bridge = n.opts.get('br');
    const out: Record<string, unknown> = { mode: 'tap', vhost: n.opts.has('vhost') ? isOn(n.opts.get('vhost')) : true };
    if (ifname && /^[a-z][a-z0-9-]{0,14}$/.test(ifname)) out.tapDevice = ifname;
    else
      note(
        'network',
        `${ifname ? `tap "${ifname}" is not a name the bundle uses` : 'the tap device was passed as a file descriptor or made by a helper'}; the bundle creates its own tap owned by the guest's user`,
      );
    if (n.opts.has('script') && n.opts.get('script') !== 'no')
      note(
        'network',
        `script=${n.opts.get('script')}: QEMU runs no helper scripts; the tap is created before QEMU starts`,
      );
    if (bridge && /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/.test(bridge)) out.bridge = bridge;
    if (mac) out.mac = mac;
    return out;
  }
  note('network', `-netdev ${n.type}: this network back-end is not carried over; the guest has no network`);
  return { mode: 'none' };
}

function display(p: QemuProcess, note: Note): Record<string, unknown> {
  const vnc = p.cmd.vnc;
  if (vnc) {
    const d = vnc.opts.get('display') ?? '';
    if (d.startsWith('unix:')) return { mode: 'vnc-unix' };
    const ep = vncEndpoint(d);
    const creds = p.cmd.tlsCreds.get(vnc.opts.get('tls-creds') ?? '');
    if (ep && creds?.type === 'tls-creds-x509' && creds.dir && ABS(creds.dir) && IP.test(ep.host) && ep.port <= 65535) {
      if (!creds.verifyPeer)
        note(
          'display',
          `-vnc ${vnc.raw}: its TLS credentials checked no client (verify-peer=off); the bundle's vnc-tls does, so a client now needs a certificate signed by the CA in ${creds.dir}`,
        );
      return { mode: 'vnc-tls', listen: ep.host, port: ep.port, tlsDir: creds.dir };
    }
    if (ep) {
      const tls = vncAccess(p.cmd).tls;
      note(
        'display',
        `-vnc ${vnc.raw}: VNC on the network ${tls === 'none' ? 'without TLS' : `with ${tls === 'unauthenticated' ? 'TLS that checks no client' : 'TLS credentials the bundle does not model'}`} is not carried over; the console is a unix socket only the guest's user can open (vnc-unix)`,
      );
      return { mode: 'vnc-unix' };
    }
  }
  const spice = p.cmd.spice;
  if (spice) {
    const port = Number(spice.opts.get('tls-port'));
    const addr = spice.opts.get('addr');
    const dir = spice.opts.get('x509-dir');
    if (port >= 1024 && addr && IP.test(addr) && dir && ABS(dir))
      return { mode: 'spice-tls', listen: addr, port, tlsDir: dir };
    note(
      'display',
      `-spice ${spice.raw}: SPICE without TLS (or without an explicit address) is not carried over; the console is a unix socket (vnc-unix)`,
    );
    return { mode: 'vnc-unix' };
  }
  const dispType = p.cmd.display;
  if (dispType && dispType !== 'none')
    note('display', `-display ${dispType}: a local window is not carried over; the guest has no display`);
  return { mode: 'none' };
}
