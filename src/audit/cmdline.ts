// The QEMU command-line reader: /proc/PID/cmdline split into options, and each option's value into the keys
// QEMU itself would read (QemuOpts: "key=value,..." where ",," is a literal comma; or JSON for -blockdev,
// -device, -object and -netdev as libvirt writes them). Only what the audit and --answers-out use is modelled.
import { splitArgv, splitOpts, type Option, type Opts } from '../qemuargs.js';

/** How deep a JSON option value may nest. libvirt's and Proxmox's go four or five levels deep. */
export const MAX_JSON_DEPTH = 64;

/** Whether JSON text nests deeper than `limit` ([ and { outside strings), found without parsing it. */
export function nestsDeeper(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * Read a QemuOpts string, or the JSON object libvirt passes instead, as flat string keys. JSON that is not an
 * object, that does not parse, or that nests deeper than MAX_JSON_DEPTH is not read: `unread` says why.
 */
export function optsOrJson(
  value: string,
  implied?: string,
): { opts: Opts; json: Record<string, unknown> | undefined; unread?: string } {
  if (value.trimStart().startsWith('{')) {
    if (nestsDeeper(value, MAX_JSON_DEPTH))
      return { opts: new Map(), json: undefined, unread: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` };
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch (e) {
      return { opts: new Map(), json: undefined, unread: `not valid JSON (${(e as Error).message})` };
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json))
      return { opts: new Map(), json: undefined, unread: 'JSON that is not an object' };
    const opts: Opts = new Map();
    for (const [k, v] of Object.entries(json)) if (v !== null && typeof v !== 'object') opts.set(k, String(v));
    return { opts, json: json as Record<string, unknown> };
  }
  return { opts: splitOpts(value, implied), json: undefined };
}

/** A boolean option as QEMU reads it (qapi_bool_parse): on, yes, true, y; and off, no, false, n. */
export const isOn = (v: string | undefined) => v === 'on' || v === 'yes' || v === 'true' || v === 'y';
export const isOff = (v: string | undefined) => v === 'off' || v === 'no' || v === 'false' || v === 'n';

export interface Endpoint {
  host: string;
  port: number;
}

export interface Chardev {
  /** Where it was given: "-chardev id=x", "-qmp", "-monitor", "-serial". */
  via: string;
  id: string | undefined;
  backend: string;
  /** A TCP or telnet server endpoint, when it is one. */
  tcp: (Endpoint & { telnet: boolean; server: boolean }) | undefined;
  unixPath: string | undefined;
  /** The argument as given, for evidence. */
  raw: string;
}

export interface DiskSpec {
  path: string;
  format: string | undefined;
  readOnly: boolean;
  /** "file" or "host_device" for local files; anything else (nbd, rbd, iscsi…) is a network disk. */
  protocol: string;
  raw: string;
  /** Firmware flash, not a guest disk. */
  pflash: boolean;
}

/** A host folder QEMU's own 9p server shares into the guest: -virtfs local, or -fsdev local. */
export interface ShareSpec {
  path: string;
  readOnly: boolean;
  /** The argument as given, for evidence. */
  raw: string;
}

export interface QemuCommandLine {
  options: Option[];
  binary: string;
  name: string | undefined;
  machine: string | undefined;
  accel: string[];
  smp: number | undefined;
  memoryMiB: number | undefined;
  sandbox: { raw: string; opts: Opts } | undefined;
  chardevs: Chardev[];
  vnc: { raw: string; opts: Opts } | undefined;
  spice: { raw: string; opts: Opts } | undefined;
  display: string | undefined;
  incoming: string | undefined;
  tlsCreds: Map<string, TlsCreds>;
  disks: DiskSpec[];
  shares: ShareSpec[];
  bios: string | undefined;
  netdevs: { id: string | undefined; type: string; opts: Opts; raw: string }[];
  devices: { driver: string; opts: Opts; raw: string }[];
  /** -runas / -run-with user= */
  runas: string | undefined;
  /** Options whose value could not be read (JSON too deep or broken), and why: nothing of them is judged. */
  unread: { option: string; reason: string }[];
}

/** A -object tls-creds-*: its type, directory, end and whether it verifies the peer's certificate. */
export interface TlsCreds {
  type: 'tls-creds-x509' | 'tls-creds-anon' | 'tls-creds-psk';
  dir: string | undefined;
  endpoint: string | undefined;
  /** verify-peer: QEMU's default is on; it only means something for x509 (anonymous credentials check nobody). */
  verifyPeer: boolean;
}

function memoryMiB(v: string): number | undefined {
  const size = splitOpts(v, 'size').get('size');
  const m = /^(\d+(?:\.\d+)?)([kKmMgGtT]?)[bB]?$/.exec(size ?? '');
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = (m[2] || 'M').toUpperCase();
  const mib = unit === 'K' ? n / 1024 : unit === 'M' ? n : unit === 'G' ? n * 1024 : n * 1024 * 1024;
  return Math.floor(mib);
}

/** "tcp:HOST:PORT", "HOST:PORT", "[v6]:PORT", ":PORT" → endpoint. */
export function parseHostPort(s: string): Endpoint | undefined {
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(s);
  if (!m) return undefined;
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

/** A legacy character-device spec (-qmp, -monitor, -serial): "tcp:HOST:PORT,server", "unix:PATH,server", … */
function legacyChardev(via: string, raw: string): Chardev {
  const opts = splitOpts(raw, 'spec');
  const spec = opts.get('spec') ?? raw;
  const colon = spec.indexOf(':');
  const backend = colon >= 0 ? spec.slice(0, colon) : spec;
  const rest = colon >= 0 ? spec.slice(colon + 1) : '';
  const server = isOn(opts.get('server'));
  let tcp: Chardev['tcp'];
  let unixPath: string | undefined;
  if (backend === 'tcp' || backend === 'telnet') {
    const ep = parseHostPort(rest);
    if (ep) tcp = { ...ep, telnet: backend === 'telnet', server };
  } else if (backend === 'unix') unixPath = rest;
  const id = backend === 'chardev' ? rest : undefined;
  return { via, id, backend, tcp, unixPath, raw };
}

function chardevOption(raw: string, opts: Opts): Chardev {
  const backend = opts.get('backend') ?? '';
  let tcp: Chardev['tcp'];
  if ((backend === 'socket' || backend === 'tcp' || backend === 'telnet') && opts.has('port'))
    tcp = {
      host: opts.get('host') ?? '',
      port: Number(opts.get('port')),
      telnet: isOn(opts.get('telnet')) || backend === 'telnet',
      server: isOn(opts.get('server')),
    };
  return { via: '-chardev', id: opts.get('id'), backend, tcp, unixPath: opts.get('path'), raw };
}

/** Follow a -blockdev (or nested "file" object) down to its protocol layer: [format, protocol node]. */
function resolveBlock(
  node: Record<string, unknown>,
  byName: Map<string, Record<string, unknown>>,
  depth = 0,
): { format: string | undefined; proto: Record<string, unknown> } | undefined {
  if (depth > 8) return undefined;
  const driver = String(node.driver ?? '');
  const child =
    typeof node.file === 'string' ? byName.get(node.file) : (node.file as Record<string, unknown> | undefined);
  if ('filename' in node || !child) return { format: undefined, proto: node };
  const below = resolveBlock(child, byName, depth + 1);
  if (!below) return undefined;
  const isFilter = driver === 'throttle' || driver === 'copy-on-read' || driver === 'blkdebug';
  return { format: below.format ?? (isFilter ? undefined : driver), proto: below.proto };
}

export function parseCommandLine(argv: string[]): QemuCommandLine {
  const options = splitArgv(argv);
  const cmd: QemuCommandLine = {
    options,
    binary: argv[0] ?? '',
    name: undefined,
    machine: undefined,
    accel: [],
    smp: undefined,
    memoryMiB: undefined,
    sandbox: undefined,
    chardevs: [],
    vnc: undefined,
    spice: undefined,
    display: undefined,
    incoming: undefined,
    tlsCreds: new Map(),
    disks: [],
    shares: [],
    bios: undefined,
    netdevs: [],
    devices: [],
    runas: undefined,
    unread: [],
  };
  const byId = new Map<string, Chardev>();
  const read = (option: string, value: string, implied?: string) => {
    const r = optsOrJson(value, implied);
    if (r.unread) cmd.unread.push({ option: `-${option}`, reason: r.unread });
    return r;
  };
  const blockdevs: Record<string, unknown>[] = [];
  const pflashNodes = new Set<string>();
  for (const { name, value } of options) {
    const v = value ?? '';
    switch (name) {
      case 'name':
        cmd.name = splitOpts(v, 'guest').get('guest');
        break;
      case 'machine':
      case 'M': {
        const o = splitOpts(v, 'type');
        if (o.get('type')) cmd.machine = o.get('type');
        if (o.get('accel')) cmd.accel.push(...o.get('accel')!.split(':'));
        for (const k of ['pflash0', 'pflash1']) if (o.get(k)) pflashNodes.add(o.get(k)!);
        break;
      }
      case 'accel':
        cmd.accel.push(splitOpts(v, 'accel').get('accel') ?? v);
        break;
      case 'enable-kvm':
        cmd.accel.push('kvm');
        break;
      case 'smp': {
        const o = splitOpts(v, 'cpus');
        const n = Number(o.get('cpus'));
        if (Number.isInteger(n) && n > 0) cmd.smp = n;
        break;
      }
      case 'm':
        cmd.memoryMiB = memoryMiB(v);
        break;
      case 'sandbox':
        cmd.sandbox = { raw: v, opts: splitOpts(v, 'enable') };
        break;
      case 'chardev': {
        const cd = chardevOption(v, read('chardev', v, 'backend').opts);
        cmd.chardevs.push(cd);
        if (cd.id !== undefined && !byId.has(cd.id)) byId.set(cd.id, cd);
        break;
      }
      case 'qmp':
      case 'qmp-pretty':
      case 'monitor':
      case 'serial':
      case 'parallel':
        cmd.chardevs.push(legacyChardev(`-${name}`, v));
        break;
      case 'mon': {
        const o = splitOpts(v);
        const id = o.get('chardev');
        const cd = id === undefined ? undefined : byId.get(id);
        if (cd) cd.via = `-mon (${o.get('mode') === 'control' ? 'QMP' : 'HMP'}) chardev=${id}`;
        break;
      }
      case 'vnc':
        cmd.vnc = { raw: v, opts: splitOpts(v, 'display') };
        break;
      case 'spice':
        cmd.spice = { raw: v, opts: splitOpts(v) };
        break;
      case 'display':
        cmd.display = splitOpts(v, 'type').get('type');
        break;
      case 'nographic':
        cmd.display = 'none';
        break;
      case 'incoming':
        cmd.incoming = v;
        break;
      case 'object': {
        const { opts } = read('object', v, 'qom-type');
        const type = opts.get('qom-type');
        if (type === 'tls-creds-x509' || type === 'tls-creds-anon' || type === 'tls-creds-psk')
          cmd.tlsCreds.set(opts.get('id') ?? '', {
            type,
            dir: opts.get('dir'),
            endpoint: opts.get('endpoint'),
            verifyPeer: !isOff(opts.get('verify-peer')),
          });
        break;
      }
      case 'virtfs':
      case 'fsdev': {
        const o = splitOpts(v, 'fsdriver');
        const path = o.get('path');
        if (o.get('fsdriver') === 'local' && path) cmd.shares.push({ path, readOnly: isOn(o.get('readonly')), raw: v });
        break;
      }
      case 'drive': {
        const o = splitOpts(v);
        const file = o.get('file');
        if (!file) break;
        const protoMatch = /^([a-z+]+):/.exec(file);
        cmd.disks.push({
          path: file,
          format: o.get('format'),
          readOnly: isOn(o.get('readonly')) || o.get('media') === 'cdrom',
          protocol:
            protoMatch && protoMatch[1] !== 'file' ? protoMatch[1]! : file.startsWith('/dev/') ? 'host_device' : 'file',
          raw: v,
          pflash: o.get('if') === 'pflash',
        });
        break;
      }
      case 'hda':
      case 'hdb':
      case 'hdc':
      case 'hdd':
      case 'cdrom':
      case '':
        if (v)
          cmd.disks.push({
            path: v,
            format: undefined,
            readOnly: name === 'cdrom',
            protocol: v.startsWith('/dev/') ? 'host_device' : 'file',
            raw: v,
            pflash: false,
          });
        break;
      case 'bios':
        cmd.bios = v;
        break;
      case 'blockdev': {
        const { json, opts, unread } = read('blockdev', v);
        if (json) blockdevs.push(json);
        else if (!unread) {
          const node: Record<string, unknown> = Object.fromEntries(opts);
          const file: Record<string, unknown> = {};
          for (const [k, val] of opts) if (k.startsWith('file.')) file[k.slice(5)] = val;
          if (Object.keys(file).length) node.file = file;
          blockdevs.push(node);
        }
        break;
      }
      case 'netdev':
      case 'nic': {
        const { opts } = read(name, v, 'type');
        cmd.netdevs.push({ id: opts.get('id'), type: opts.get('type') ?? '', opts, raw: v });
        break;
      }
      case 'device': {
        const { opts } = read('device', v, 'driver');
        cmd.devices.push({ driver: opts.get('driver') ?? '', opts, raw: v });
        break;
      }
      case 'runas':
        cmd.runas = v;
        break;
      case 'run-with': {
        const u = splitOpts(v).get('user');
        if (u) cmd.runas = u;
        break;
      }
    }
  }

  // -blockdev: a disk is a top node (one no other node uses as its "file"), followed down to its protocol layer.
  const byName = new Map<string, Record<string, unknown>>();
  for (const b of blockdevs) if (typeof b['node-name'] === 'string') byName.set(b['node-name'] as string, b);
  const used = new Set(blockdevs.map((b) => b.file).filter((f): f is string => typeof f === 'string'));
  for (const b of blockdevs) {
    const nodeName = b['node-name'] as string | undefined;
    if (nodeName && used.has(nodeName)) continue;
    const r = resolveBlock(b, byName);
    if (!r) continue;
    const filename = r.proto.filename ?? r.proto.path;
    const protocol = String(r.proto.driver ?? 'file');
    const readOnly = b['read-only'] === true || b['read-only'] === 'on';
    cmd.disks.push({
      path: typeof filename === 'string' ? filename : JSON.stringify(r.proto),
      format: r.format,
      readOnly,
      protocol,
      raw: JSON.stringify(b),
      pflash: !!nodeName && pflashNodes.has(nodeName),
    });
  }
  if (!cmd.accel.length && /(^|\/)kvm$|qemu-kvm$/.test(cmd.binary)) cmd.accel.push('kvm');
  return cmd;
}

/** The guest's name as the audit reports it. */
export function guestLabel(cmd: QemuCommandLine, pid: number): string {
  return cmd.name && cmd.name.length ? cmd.name : `pid ${pid}`;
}

/** The file names a QEMU program has: qemu-system-ARCH, qemu-kvm, kvm. */
export const QEMU_PROGRAM = /^(qemu-system-[a-z0-9_]+|qemu-kvm|kvm)$/;

export function isQemuBinary(argv0: string): boolean {
  return QEMU_PROGRAM.test(argv0.slice(argv0.lastIndexOf('/') + 1));
}
