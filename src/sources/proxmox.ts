// Proxmox VE guest configurations (/etc/pve/qemu-server/VMID.conf) as an answer source. The format is read as
// Proxmox's own parser reads it (PVE::QemuServer parse_vm_config): `key: value` lines, `#` description lines,
// `[snapshot]`, `[PENDING]` and `[special:cloudinit]` sections; values that are property strings (`a=b,c=d`,
// one value without a key) as PVE::JSONSchema parse_property_string splits them. Volumes (`storage:volume`) are
// resolved through storage.cfg.
import { InputError } from '../errors.js';
import {
  checkText,
  describeGuest,
  finish,
  hostStorageFree,
  importDocuments,
  iommuGroupOf,
  knownCpuModel,
  nameGuest,
  newDraft,
  NO_ACPI_STOP,
  passedThrough,
  removedItem,
  takesRisk,
  translateRemoved,
  toGuestName,
  type GuestDraft,
  type ImportHost,
  type ImportSource,
  type SourceInput,
} from './common.js';
import * as N from '../names.js';
import { plural } from '../words.js';

export interface PveConfig {
  main: Map<string, string>;
  /** `[name]` sections: snapshots, plus `pending` and `special:cloudinit`. */
  sections: Map<string, Map<string, string>>;
  description: string;
}

const KEY_LINE = /^([a-z][a-z_-]*\d*):\s*(.+?)\s*$/;

export function parseVmConfig(text: string, where: string): PveConfig {
  checkText(text, where);
  const cfg: PveConfig = { main: new Map(), sections: new Map(), description: '' };
  let cur = cfg.main;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (/^\s*$/.test(line)) return;
    const sec = /^\[(PENDING|special:cloudinit|[a-z][a-z0-9_-]+)\]\s*$/i.exec(line);
    if (sec) {
      const name = /^pending$/i.test(sec[1]!) ? 'PENDING' : sec[1]!;
      if (cfg.sections.has(name)) throw new InputError(`${where}:${i + 1}: section [${name}] appears twice`);
      cur = new Map();
      cfg.sections.set(name, cur);
      return;
    }
    if (line.startsWith('#')) {
      if (cur === cfg.main) cfg.description += line.slice(1) + '\n';
      return;
    }
    const m = KEY_LINE.exec(line);
    if (!m) throw new InputError(`${where}:${i + 1}: not a "key: value" line: ${JSON.stringify(line.slice(0, 80))}`);
    const key = m[1] === 'cdrom' ? 'ide2' : m[1]!;
    if (cur.has(key)) throw new InputError(`${where}:${i + 1}: key "${key}" given twice`);
    cur.set(key, m[2]!);
  });
  return cfg;
}

/** A property string: `default,key=value,...` split at commas; at most one part without a key. */
export function parsePropertyString(value: string, where: string, defaultKey?: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of value.split(',')) {
    if (/^\s*$/.test(part)) continue;
    const m = /^([^=]+)=(.+)$/.exec(part);
    const [k, v] = m ? [m[1]!, m[2]!] : [defaultKey, part];
    if (k === undefined) throw new InputError(`${where}: "${part}" has no key`);
    if (out.has(k)) throw new InputError(`${where}: duplicate key "${k}" in ${JSON.stringify(value)}`);
    out.set(k, v);
  }
  return out;
}

export interface Storage {
  type: string;
  id: string;
  props: Map<string, string>;
}

/** /etc/pve/storage.cfg: `type: id` headers, then indented `key value` lines. */
export function parseStorageCfg(text: string, where: string): Map<string, Storage> {
  checkText(text, where);
  const out = new Map<string, Storage>();
  let cur: Storage | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (/^\s*(#.*)?$/.test(line)) return;
    const head = /^([a-z][a-z0-9]*):\s*(\S+)\s*$/.exec(line);
    if (head) {
      cur = { type: head[1]!, id: head[2]!, props: new Map() };
      if (out.has(cur.id)) throw new InputError(`${where}:${i + 1}: storage "${cur.id}" defined twice`);
      out.set(cur.id, cur);
      return;
    }
    const kv = /^\s+([a-z][a-z0-9_-]*)(?:\s+(.*?))?\s*$/.exec(line);
    if (!kv || !cur) throw new InputError(`${where}:${i + 1}: not a storage header or an indented "key value" line`);
    cur.props.set(kv[1]!, kv[2] ?? '1');
  });
  return out;
}

const NETWORK_STORAGE: Record<string, string> = {
  rbd: 'Ceph RBD',
  cephfs: 'CephFS',
  iscsi: 'iSCSI',
  iscsidirect: 'iSCSI (QEMU initiator)',
  zfs: 'ZFS over iSCSI',
  glusterfs: 'GlusterFS',
  pbs: 'Proxmox Backup Server',
  esxi: 'an ESXi import source',
};

type Volume = { ok: true; path: string; format: 'raw' | 'qcow2'; block: boolean } | { ok: false; refuse: string };

const FILE_STORAGE = new Set(['dir', 'nfs', 'cifs', 'btrfs']);

function formatOf(name: string, explicit: string | undefined): 'raw' | 'qcow2' | string {
  if (explicit) return explicit;
  const m = /\.(raw|qcow2|vmdk|iso|img)$/.exec(name);
  if (!m || m[1] === 'iso' || m[1] === 'img') return 'raw';
  return m[1]!;
}

/** Where a Proxmox volume lives on the host, as Proxmox's storage plugins compute it. */
export function resolveVolume(
  vol: string,
  storages: Map<string, Storage> | undefined,
  fmt: string | undefined,
): Volume {
  if (vol.startsWith('/')) {
    const format = formatOf(vol, fmt);
    if (format !== 'raw' && format !== 'qcow2')
      return { ok: false, refuse: `format "${format}" is not supported (qcow2 or raw)` };
    return { ok: true, path: vol, format, block: vol.startsWith('/dev/') };
  }
  const m = /^([a-z][a-z0-9_.-]*):(.+)$/i.exec(vol);
  if (!m) return { ok: false, refuse: `"${vol}" is neither a path nor a storage:volume name` };
  const [, sid, name] = m as unknown as [string, string, string];
  if (!storages)
    return {
      ok: false,
      refuse: `volume on storage "${sid}": no storage.cfg to resolve it (give --storage-cfg; /etc/pve/storage.cfg is not on this machine)`,
    };
  const s = storages.get(sid);
  if (!s) return { ok: false, refuse: `storage "${sid}" is not defined in storage.cfg` };
  if (NETWORK_STORAGE[s.type])
    return {
      ok: false,
      refuse: `storage "${sid}" is ${NETWORK_STORAGE[s.type]}, a network disk: QEMU would talk to a storage server itself`,
    };
  if (name.split('/').includes('..')) return { ok: false, refuse: `volume name "${name}" contains ".."` };
  const format = formatOf(name, fmt);
  if (format !== 'raw' && format !== 'qcow2')
    return { ok: false, refuse: `format "${format}" is not supported (qcow2 or raw)` };
  if (FILE_STORAGE.has(s.type)) {
    const base = s.props.get('path') ?? (s.type === 'nfs' || s.type === 'cifs' ? `/mnt/pve/${sid}` : undefined);
    if (!base) return { ok: false, refuse: `storage "${sid}" has no path` };
    const iso = /^iso\/(.+)$/.exec(name);
    if (iso) return { ok: true, path: `${base}/template/iso/${iso[1]}`, format: 'raw', block: false };
    const img = /^(\d+)\/(.+)$/.exec(name);
    if (!img) return { ok: false, refuse: `volume "${name}" is not VMID/file` };
    if (s.type === 'btrfs')
      return {
        ok: true,
        path: `${base}/images/${img[1]}/${img[2]!.replace(/\.raw$/, '')}/disk.raw`,
        format: 'raw',
        block: false,
      };
    return { ok: true, path: `${base}/images/${img[1]}/${img[2]}`, format, block: false };
  }
  if (s.type === 'lvm' || s.type === 'lvmthin') {
    const vg = s.props.get('vgname');
    if (!vg) return { ok: false, refuse: `storage "${sid}" has no vgname` };
    return { ok: true, path: `/dev/${vg}/${name}`, format, block: true };
  }
  if (s.type === 'zfspool') {
    const pool = s.props.get('pool');
    if (!pool) return { ok: false, refuse: `storage "${sid}" has no pool` };
    return { ok: true, path: `/dev/zvol/${pool}/${name}`, format: 'raw', block: true };
  }
  return { ok: false, refuse: `storage type "${s.type}" (storage "${sid}") is not supported` };
}

const DISK_KEY = /^(ide|sata|scsi|virtio)(\d+)$/;

/** Keys Proxmox uses for things the bundle decides itself or that have no effect on the guest's isolation. */
const IGNORED = new Set([
  'bootdisk',
  'boot',
  'ostype',
  'smbios1',
  'vmgenid',
  'meta',
  'digest',
  'onboot',
  'startup',
  'protection',
  'tags',
  'keyboard',
  'localtime',
  'tablet',
  'scsihw',
  'hotplug',
  'acpi',
  'autostart',
  'template',
  'description',
  'parent',
  'snaptime',
  'vmstate',
  'runningmachine',
  'runningcpu',
  'vmstatestorage',
  'migrate_downtime',
  'migrate_speed',
  'reboot',
  'freeze',
  'startdate',
  'tdf',
  'shares',
  'balloon',
  'name',
  'memory',
  'cores',
  'sockets',
  'vcpus',
  'cpu',
  'cpulimit',
  'cpuunits',
  'bios',
  'machine',
  'vga',
  'arch',
  'kvm',
  'args',
  'hookscript',
  'lock',
  'efidisk0',
  'tpmstate0',
  'spice_enhancements',
]);
const CLOUDINIT = /^(cicustom|cipassword|citype|ciupgrade|ciuser|ipconfig\d+|nameserver|searchdomain|sshkeys)$/;

export interface ProxmoxOptions {
  /** storage.cfg, to resolve `storage:volume` names; without it such a disk is refused. */
  storages?: Map<string, Storage>;
  /** What the caller knows of this host: CPU models, IOMMU groups, the host's own storage. */
  host: ImportHost;
}

/** The `+pveN` suffix (and `.pxe`, Proxmox's choice of network boot ROMs) Proxmox adds to machine versions for its own compatibility fixes; QEMU does not know it. */
export function machineType(value: string): { type: string; stripped?: string; extra: string[] } {
  const props = parsePropertyString(value, 'machine', 'type');
  const t = props.get('type') ?? 'pc';
  const m = /^(.*?)(\+pve\d+)?(\.pxe)?$/.exec(t)!;
  return { type: m[1]!, stripped: m[2] || m[3] ? t : undefined, extra: [...props.keys()].filter((k) => k !== 'type') };
}

/** One configuration as it is read: the draft of its guest and the keys of its current configuration. */
interface Vm {
  cfg: PveConfig;
  c: Map<string, string>;
  d: GuestDraft;
  opts: ProxmoxOptions;
  /** A key's property string, or a refusal naming the key when it is not one. */
  prop(key: string, defaultKey?: string): Map<string, string> | undefined;
}

/** The pieces of a configuration, read in this order; each carries, defaults or refuses the keys it reads. */
const PIECES: ((vm: Vm) => void)[] = [
  identity,
  refusedKeys,
  args,
  sections,
  memoryAndCpus,
  cpuModel,
  limits,
  machine,
  firmware,
  tpm,
  disks,
  network,
  display,
  passthrough,
  otherKeys,
];

/**
 * `tpmstate0`: Proxmox's TPM, an swtpm whose state is a volume in swtpm's single-file format. A TPM 2.0 becomes
 * the guest's own swtpm in the bundle; its state is named in the report as a copy the operator makes (converted to
 * swtpm's directory format), never dropped without a word. A TPM 1.2 has no equivalent and is refused.
 */
function tpm({ c, prop, opts, d: { guest: g, prov, log } }: Vm): void {
  if (!c.has('tpmstate0')) return;
  const p = prop('tpmstate0', 'file');
  if (!p) return;
  const version = p.get('version');
  if (version === 'v1.2')
    return log.refuse(
      'tpmstate0',
      'a TPM 1.2: the bundle gives a guest a TPM 2.0 only, and a TPM 1.2’s state cannot become one; refusing rather than giving the guest a different TPM',
    );
  if (version !== 'v2.0')
    return log.refuse(
      'tpmstate0',
      `${version === undefined ? 'no version= given' : `version "${version}"`}: Proxmox's default was v1.2 before it became v2.0, so which TPM this guest has is not known; write version=v2.0 if "qm config" shows it (a TPM 1.2 cannot be carried)`,
    );
  g.tpm = 'tpm2';
  prov.push(['tpm', 'tpmstate0']);
  log.carry('tpmstate0', 'TPM 2.0: the guest’s own swtpm, in a unit of its own, as the guest’s user');
  log.secureDefault(
    'tpmstate0',
    'Proxmox’s tpm-tis interface becomes tpm-crb, TPM 2.0’s own; the TPM’s keys are its state, which the copy this report names keeps',
  );
  const file = p.get('file') ?? '';
  const vol = resolveVolume(file, opts.storages, p.get('format'));
  log.copy(
    'tpmstate0',
    `the TPM’s state (its keys, BitLocker’s among them), in swtpm’s single-file format${vol.ok && vol.format === 'qcow2' ? ' inside a qcow2 volume' : ''}: convert it into the directory before the guest first starts, as docs/windows.md says ("Carrying a TPM’s state"); without it the guest starts with a new, empty TPM`,
    vol.ok ? vol.path : `${file} (its path: pvesm path ${file})`,
    N.tpmStateDir,
  );
}

export function importVmConfig(textIn: string, file: string, opts: ProxmoxOptions) {
  const cfg = parseVmConfig(textIn, file);
  const d = newDraft(file, opts.host);
  const vm: Vm = {
    cfg,
    c: cfg.main,
    d,
    opts,
    prop(key, defaultKey) {
      try {
        return parsePropertyString(cfg.main.get(key)!, key, defaultKey);
      } catch (e) {
        d.log.refuse(key, (e as Error).message.replace(/^[^:]*: /, ''));
        return undefined;
      }
    },
  };
  for (const piece of PIECES) piece(vm);
  return finish(d, cfg.main.get('name') ?? null, { disks: 'scsiN/virtioN/sataN/ideN (a disk)' });
}

function identity({ c, cfg, d }: Vm): void {
  const vmid = /(?:^|\/)(\d+)\.conf$/.exec(d.file)?.[1];
  const stem = d.file.replace(/^.*\//, '').replace(/\.conf$/, '');
  nameGuest(d, c.get('name'), vmid ? `vm-${vmid}` : toGuestName(stem, 'imported'), 'name');
  // Proxmox writes the description as `#` lines with some characters percent-encoded (PVE::Tools::encode_text).
  const descr = c.get('description') ?? cfg.description;
  let decoded: string;
  try {
    decoded = decodeURIComponent(descr);
  } catch {
    decoded = descr;
  }
  describeGuest(d, decoded, c.has('description') ? 'description' : '# (description)');
}

/** Keys that change what the guest is in ways the bundle cannot keep, or that run host scripts. */
function refusedKeys({ c, d: { log } }: Vm): void {
  if (c.has('hookscript'))
    log.refuse('hookscript', 'runs a host script at each start and stop; the bundle runs no hook scripts');
  if (c.has('lock'))
    log.refuse(
      'lock',
      `the configuration is locked ("${c.get('lock')}"): an operation (backup, migration, snapshot) is in progress or failed; import once it is unlocked`,
    );
  if (c.has('arch') && c.get('arch') !== 'x86_64')
    log.refuse('arch', `"${c.get('arch')}" is not an x86 guest; the bundle runs qemu-system-x86_64`);
  if (c.get('kvm') === '0')
    log.secureDefault(
      'kvm',
      '"0" (emulation) is imported as KVM virtualization, the use case QEMU supports for isolation',
    );
  for (const k of ['amd-sev', 'intel-tdx'])
    if (c.has(k))
      log.refuse(
        k,
        'confidential-computing guests need firmware and host support the bundle does not set up; running without it would silently drop that protection',
      );
}

/**
 * Proxmox's split of `args:` (PVE::Tools::split_args, Perl's Text::ParseWords::shellwords): words at white space,
 * "..." with backslash escapes, '...' as written, a backslash outside quotes escaping the next character. Undefined
 * for an unclosed quote or a trailing backslash, where Perl returns no words and Proxmox passes none.
 */
export function shellWords(line: string): string[] | undefined {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length;) {
    const c = line[i]!;
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let quoted = '';
      for (; j < line.length && line[j] !== c; j++) {
        if (line[j] !== '\\') quoted += line[j];
        else if (j + 1 >= line.length) return undefined;
        else quoted += c === '"' ? line[++j] : line[j]! + line[++j]!;
      }
      if (j >= line.length) return undefined;
      word = (word ?? '') + quoted;
      i = j + 1;
    } else if (c === '\\') {
      if (i + 1 >= line.length) return undefined;
      word = (word ?? '') + line[i + 1];
      i += 2;
    } else {
      word = (word ?? '') + c;
      i++;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * `args:` passes options straight to QEMU: refused, except the options QEMU removed whose replacement the answers
 * or the bundle say (src/releases.ts), which are translated and named with the release that removed them.
 */
function args({ c, d }: Vm): void {
  if (!c.has('args')) return;
  const words = shellWords(c.get('args')!);
  if (words === undefined)
    return d.log.refuse(
      'args',
      'an unclosed quote or a trailing backslash: Proxmox splits it into no words at all and passes QEMU none of these options; fix it at the source',
    );
  for (const o of passedThrough(words, () => 'args')) {
    if (o.refusal === undefined) translateRemoved(d, o);
    else d.log.refuse('args', `${o.shown}: ${o.refusal}`, o.removed && removedItem(o.removed));
  }
}

/** Snapshots and pending changes: only the current configuration is imported. */
function sections({ cfg, opts, d: { log } }: Vm): void {
  for (const [name, sec] of cfg.sections) {
    if (name === 'PENDING')
      log.secureDefault(
        '[PENDING]',
        `pending changes (${[...sec.keys()].join(', ') || 'none'}) are not applied; the current configuration is imported`,
      );
    else if (name === 'special:cloudinit') continue;
    else {
      const chain = [...sec.entries()].some(
        ([k, v]) =>
          DISK_KEY.test(k) && opts.storages?.get(v.split(':')[0]!)?.props.get('snapshot-as-volume-chain') === '1',
      );
      if (chain)
        log.refuse(
          `[${name}]`,
          'a snapshot stored as a qcow2 volume chain: the current disk reads its backing files, which the bundle does not list (and AppArmor denies); delete or merge the snapshots first',
        );
      else log.secureDefault(`[${name}]`, 'snapshot not carried: only the current configuration is imported');
    }
  }
}

function memoryAndCpus({ c, prop, d: { guest: g, prov, log } }: Vm): void {
  const memProps = c.has('memory') ? prop('memory', 'current') : new Map([['current', '512']]);
  const mem = memProps?.get('current');
  if (mem !== undefined) {
    if (!/^\d{1,9}$/.test(mem)) log.refuse('memory', `"${mem}" is not a number of MiB`);
    else {
      g.memoryMiB = Number(mem);
      prov.push(['memoryMiB', 'memory']);
      log.carry('memory', `${mem} MiB${c.has('memory') ? '' : ' (Proxmox default)'}`);
    }
  }
  const n = (k: string) => {
    const v = c.get(k) ?? '1';
    if (!/^\d{1,4}$/.test(v)) {
      log.refuse(k, `"${v}" is not a number`);
      return 1;
    }
    return Number(v);
  };
  const cores = n('cores');
  const sockets = n('sockets');
  g.vcpus = cores * sockets;
  prov.push(['vcpus', c.has('sockets') ? 'sockets' : 'cores']);
  log.carry(
    c.has('sockets') ? 'sockets' : 'cores',
    `${plural(cores * sockets, 'vCPU')} (${plural(sockets, 'socket')} × ${plural(cores, 'core')})`,
  );
  if (c.has('vcpus'))
    log.secureDefault('vcpus', `vCPU hotplug is not carried; the guest starts with all ${cores * sockets}`);
}

function cpuModel({ c, prop, d }: Vm): void {
  const { guest: g, prov, log } = d;
  if (c.has('cpu')) {
    const p = prop('cpu', 'cputype');
    if (p) {
      const model = p.get('cputype') ?? 'kvm64';
      const cpuOut: { model?: string; features: string[] } = { features: [] };
      if (model.startsWith('custom-'))
        log.refuse('cpu', `custom CPU model "${model}" is defined in Proxmox's cpu-models.conf, which is not imported`);
      else if (/^x86-64-v\d/.test(model))
        log.secureDefault(
          'cpu',
          `"${model}" is a Proxmox alias, not a QEMU model; the bundle's default CPU model is used`,
        );
      else if (knownCpuModel(d, model, 'cpu')) {
        cpuOut.model = model;
        prov.push(['cpu.model', 'cpu']);
        log.carry('cpu', `CPU model "${model}"`);
      }
      const flags = p.get('flags');
      if (flags) {
        cpuOut.features = flags
          .split(';')
          .filter(Boolean)
          .map((f) => f.toLowerCase());
        prov.push(['cpu.features', 'cpu']);
        log.carry('cpu', `flags ${cpuOut.features.join(' ')}`);
      }
      const rest = [...p.keys()].filter((k) => k !== 'cputype' && k !== 'flags');
      if (rest.length) log.secureDefault('cpu', `${rest.join(', ')} not carried`);
      g.cpu = cpuOut;
    }
  }
}

/** CPU and memory limits, and placement that is not carried. */
function limits({ c, d: { guest: g, prov, log } }: Vm): void {
  const limits: Record<string, unknown> = {};
  if (c.has('cpulimit')) {
    const v = Number(c.get('cpulimit'));
    if (Number.isFinite(v) && v > 0) {
      limits.cpuQuotaPercent = Math.max(1, Math.ceil(v * 100));
      prov.push(['limits.cpuQuotaPercent', 'cpulimit']);
      log.carry('cpulimit', `${c.get('cpulimit')} CPUs → CPUQuota=${limits.cpuQuotaPercent}%`);
    } else if (v !== 0) log.refuse('cpulimit', `"${c.get('cpulimit')}" is not a number of CPUs`);
  }
  if (c.has('cpuunits')) {
    const v = Number(c.get('cpuunits'));
    if (Number.isInteger(v) && v >= 1) {
      limits.cpuWeight = Math.min(10000, v);
      prov.push(['limits.cpuWeight', 'cpuunits']);
      log.carry(
        'cpuunits',
        `${v} → CPUWeight=${limits.cpuWeight} (Proxmox on cgroup v2 writes cpuunits as the weight${v > 10000 ? ', at most 10000' : ''})`,
      );
    } else log.refuse('cpuunits', `"${c.get('cpuunits')}" is not a positive integer`);
  }
  if (Object.keys(limits).length) g.limits = limits;
  for (const k of ['affinity', 'numa', 'hugepages', 'keephugepages'])
    if (c.has(k) && !(k === 'numa' && c.get(k) === '0'))
      log.secureDefault(
        k,
        k === 'hugepages' || k === 'keephugepages'
          ? 'huge pages are not carried; guest memory is ordinary private memory'
          : 'pinning and NUMA placement are not carried',
      );
  for (const k of c.keys()) if (/^numa\d+$/.test(k)) log.secureDefault(k, 'guest NUMA nodes are not carried');
}

function machine({ c, d: { guest: g, prov, log } }: Vm): void {
  if (c.has('machine')) {
    try {
      const m = machineType(c.get('machine')!);
      g.machine = m.type;
      prov.push(['machine', 'machine']);
      log.carry(
        'machine',
        `machine type "${m.type}"${m.stripped ? ` (Proxmox's "${m.stripped}" without its +pve/.pxe suffixes, which only Proxmox's QEMU and ROM choice know)` : ''}`,
      );
      if (m.extra.length) log.secureDefault('machine', `${m.extra.join(', ')} not carried`);
    } catch (e) {
      log.refuse('machine', (e as Error).message.replace(/^[^:]*: /, ''));
    }
  } else {
    g.machine = 'pc';
    log.carry('machine', 'no machine type given: "pc", as Proxmox picks');
  }
  // Proxmox reads booleans as 1, on, yes, true and 0, off, no, false; it gave QEMU -no-acpi for `acpi: 0` until
  // QEMU deprecated that option, and -machine acpi=off since.
  const acpi = c.get('acpi');
  if (acpi === undefined || /^(1|on|yes|true)$/i.test(acpi)) return;
  if (!/^(0|off|no|false)$/i.test(acpi)) return log.refuse('acpi', `"${acpi}" is not a boolean`);
  g.acpi = false;
  prov.push(['acpi', 'acpi']);
  log.carry('acpi', `${acpi}: no ACPI → acpi: false, which the bundle writes as -machine acpi=off; ${NO_ACPI_STOP}`);
}

function firmware({ c, prop, d: { guest: g, prov, log } }: Vm): void {
  if (c.get('bios') === 'ovmf') {
    const efi = c.has('efidisk0') ? prop('efidisk0', 'file') : undefined;
    g.firmware = { type: 'uefi' };
    prov.push(['firmware', 'bios']);
    log.carry('bios', 'UEFI firmware (the host’s OVMF)');
    if (efi?.get('pre-enrolled-keys') === '1') {
      // Proxmox's Secure Boot: the 4 MiB OVMF build with SMM, and a vars volume made from the Microsoft-keys template.
      g.firmware = {
        type: 'uefi',
        secureBoot: true,
        code: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
        varsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
      };
      prov.push(['firmware.secureBoot', 'efidisk0']);
      log.carry(
        'efidisk0',
        'UEFI Secure Boot (pre-enrolled-keys=1), enforced: SMM on and the firmware flash writable only from SMM; Microsoft keys enrolled from the vars template',
      );
    }
    if (efi)
      log.secureDefault(
        'efidisk0',
        `the EFI vars volume ${efi.get('file') ?? ''} is not carried; the bundle starts from the OVMF vars template in its own state directory (boot entries are set up again)`,
      );
  } else log.carry('bios', 'BIOS firmware');
}

/** Disks, in Proxmox's order of buses, each resolved through storage.cfg. */
function disks({ c, prop, opts, d }: Vm): void {
  const { guest: g, prov, log } = d;
  const disks: Record<string, unknown>[] = [];
  // The bundle boots disks in their order: Proxmox's boot order first (`boot: order=a;b`, or the legacy
  // `bootdisk`), then the rest by bus and number.
  let bootOrder: string[] = [];
  try {
    bootOrder = c.has('boot')
      ? (parsePropertyString(c.get('boot')!, 'boot', 'legacy').get('order') ?? '').split(';').filter(Boolean)
      : [];
  } catch {
    log.secureDefault('boot', 'not a boot order Proxmox writes; disks boot by bus and number');
  }
  if (bootOrder.length === 0 && c.has('bootdisk')) bootOrder = [c.get('bootdisk')!];
  const rank = (k: string) => (bootOrder.includes(k) ? bootOrder.indexOf(k) : bootOrder.length);
  const diskKeys = [...c.keys()]
    .filter((k) => DISK_KEY.test(k))
    .sort((a, b) => {
      if (rank(a) !== rank(b)) return rank(a) - rank(b);
      const [, ba, na] = DISK_KEY.exec(a)!;
      const [, bb, nb] = DISK_KEY.exec(b)!;
      return ba === bb ? Number(na) - Number(nb) : ba! < bb! ? -1 : 1;
    });
  for (const key of diskKeys) {
    const p = prop(key, 'file');
    if (!p) continue;
    const vol = p.get('file') ?? '';
    const media = p.get('media') ?? 'disk';
    if (vol === 'none') {
      log.secureDefault(key, `empty ${media === 'cdrom' ? 'CD-ROM' : ''} drive is not carried`);
      continue;
    }
    if (vol === 'cdrom') {
      log.secureDefault(key, "the host's physical CD-ROM drive is not passed through");
      continue;
    }
    if (/cloudinit/.test(vol)) {
      log.secureDefault(
        key,
        'the cloud-init drive Proxmox generates is not carried (the bundle does not generate one); the guest boots without it',
      );
      continue;
    }
    if (p.get('snapshot') === '1') {
      log.refuse(
        key,
        'snapshot=1 (writes discarded at shutdown) has no equivalent; it would become a disk whose writes persist',
      );
      continue;
    }
    const r = resolveVolume(vol, opts.storages, p.get('format'));
    if (!r.ok) {
      log.refuse(key, r.refuse);
      continue;
    }
    if (!hostStorageFree(d, r.path, key)) continue;
    const readOnly = media === 'cdrom' || p.get('ro') === '1';
    const disk: Record<string, unknown> = { path: r.path, format: r.format, readOnly, blockDevice: r.block };
    const th: Record<string, number> = {};
    const mbps = (k: string) => {
      const v = Number(p.get(k));
      return p.has(k) && Number.isFinite(v) && v > 0 ? Math.round(v * 1024 * 1024) : undefined;
    };
    const iops = (k: string) => {
      const v = Number(p.get(k));
      return p.has(k) && Number.isInteger(v) && v > 0 ? v : undefined;
    };
    const set = (k: string, v: number | undefined) => v !== undefined && (th[k] = v);
    set('readBytesPerSecond', mbps('mbps_rd'));
    set('writeBytesPerSecond', mbps('mbps_wr'));
    set('readIops', iops('iops_rd'));
    set('writeIops', iops('iops_wr'));
    if (Object.keys(th).length) disk.throttle = th;
    const extra = [...p.keys()].filter(
      (k) =>
        /^(mbps|iops|bps)(_max|_rd_max|_wr_max|_rd_length|_wr_length|_length)?$/.test(k) || /_max$|_length$/.test(k),
    );
    if (extra.length)
      log.secureDefault(
        key,
        `${extra.join(', ')} not carried: the answers throttle reads and writes separately, without totals or bursts`,
      );
    prov.push([`disks.${disks.length}`, key]);
    disks.push(disk);
    log.carry(
      key,
      `${r.block ? 'block device' : 'file'} ${r.path}, ${r.format}${readOnly ? ', read-only' : ''}${
        Object.keys(th).length
          ? `, throttled (${Object.entries(th)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ')})`
          : ''
      }`,
    );
    if (!key.startsWith('virtio'))
      log.secureDefault(
        key,
        `the ${key.replace(/\d+$/, '').toUpperCase()} bus becomes virtio-blk: the guest needs virtio drivers`,
      );
  }
  if (disks.length) g.disks = disks;
}

/** net0 only: a bridge becomes a tap on that bridge, no bridge user-mode networking. */
function network({ c, prop, d: { guest: g, prov, log } }: Vm): void {
  const nets = [...c.keys()].filter((k) => /^net\d+$/.test(k)).sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  for (const key of nets) {
    if (g.network) {
      log.secureDefault(key, 'only one network interface per guest is carried; this one is not');
      continue;
    }
    const p = prop(key);
    if (!p) continue;
    const model =
      [
        'virtio',
        'e1000',
        'e1000e',
        'rtl8139',
        'vmxnet3',
        'i82551',
        'i82557b',
        'i82559er',
        'ne2k_isa',
        'ne2k_pci',
        'pcnet',
      ].find((m) => p.has(m)) ?? p.get('model');
    const macRaw = model ? p.get(model) : p.get('macaddr');
    if (p.has('tag') || p.has('trunks')) {
      log.refuse(key, 'VLAN tags have no equivalent; without them the guest would land on the untagged network');
      continue;
    }
    const bridge = p.get('bridge');
    const net: Record<string, unknown> = bridge ? { mode: 'tap', bridge, vhost: true } : { mode: 'user' };
    log.carry(
      key,
      bridge ? `tap device on bridge ${bridge} with vhost-net` : 'no bridge: user-mode networking, as Proxmox does',
    );
    if (!bridge)
      log.secureDefault(
        key,
        'user-mode networking is served by passt in a unit of its own, not by slirp inside QEMU as Proxmox runs it: QEMU keeps no IP socket',
      );
    if (bridge) prov.push(['network.bridge', key]);
    // The guest keeps its MAC, Proxmox's own BC:24:11 prefix included; the schema refuses only what no network
    // card may have.
    if (macRaw) {
      net.mac = macRaw.toLowerCase();
      prov.push(['network.mac', key]);
      log.carry(key, `MAC ${macRaw.toLowerCase()}`);
    }
    if (model && model !== 'virtio') log.secureDefault(key, `model "${model}" becomes virtio-net`);
    if (p.get('firewall') === '1')
      log.secureDefault(
        key,
        "firewall=1: Proxmox's per-guest firewall is not carried; filter on the bridge or host firewall",
      );
    for (const k of ['rate', 'queues', 'mtu', 'link_down'])
      if (p.has(k)) log.secureDefault(key, `${k}=${p.get(k)} not carried`);
    prov.push(['network', key]);
    g.network = net;
  }
}

/** Proxmox always offers VNC on a unix socket behind its own proxy; SPICE (qxl) goes through spiceproxy. */
function display({ c, prop, d: { guest: g, prov, log } }: Vm): void {
  const vga = c.has('vga') ? prop('vga', 'type') : undefined;
  const vgaType = vga?.get('type') ?? 'std';
  if (vgaType === 'none' || /^serial\d$/.test(vgaType)) {
    g.display = { mode: 'none' };
    log.carry('vga', `"${vgaType}": no display`);
  } else if (/^qxl/.test(vgaType)) {
    g.display = { mode: 'spice-unix' };
    prov.push(['display', 'vga']);
    log.secureDefault(
      'vga',
      `"${vgaType}": SPICE, which Proxmox serves through its spiceproxy over TCP, becomes SPICE on a unix socket, reachable only from the host`,
    );
  } else {
    g.display = { mode: 'vnc-unix' };
    prov.push(['display', 'vga']);
    log.carry(
      'vga',
      'VNC on a unix socket, as Proxmox serves its console (no password: the socket is reachable only from the host)',
    );
  }
}

/** PCI devices (with their IOMMU group on this host) and USB devices by vendor and product. */
function passthrough({ c, prop, d }: Vm): void {
  const { guest: g, prov, log } = d;
  const pci: Record<string, unknown>[] = [];
  const usb: Record<string, unknown>[] = [];
  for (const key of [...c.keys()].filter((k) => /^hostpci\d+$/.test(k))) {
    const p = prop(key, 'host');
    if (!p) continue;
    if (p.has('mapping')) {
      log.refuse(key, `resource mapping "${p.get('mapping')}" is defined cluster-wide in Proxmox, not in this file`);
      continue;
    }
    for (const h of (p.get('host') ?? '').split(';')) {
      const full = /^[0-9a-f]{4}:/i.test(h) ? h.toLowerCase() : `0000:${h.toLowerCase()}`;
      if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(full)) {
        log.refuse(key, `"${h}" is not a single PCI function (all functions of a device are passed as one entry each)`);
        continue;
      }
      const group = iommuGroupOf(d, full, key);
      if (group === undefined) continue;
      prov.push([`passthrough.pci.${pci.length}`, key]);
      pci.push({ address: full, iommuGroup: group });
      log.carry(key, `PCI device ${full} (IOMMU group ${group})`);
      takesRisk(d, 'pci-passthrough', key, `PCI device ${full} (IOMMU group ${group})`);
    }
    const rest = [...p.keys()].filter((k) => !['host', 'pcie'].includes(k));
    if (rest.length) log.secureDefault(key, `${rest.join(', ')} not carried`);
  }
  for (const key of [...c.keys()].filter((k) => /^usb\d+$/.test(k))) {
    const p = prop(key, 'host');
    if (!p) continue;
    const host = p.get('host') ?? '';
    const m = /^(?:0x)?([0-9a-f]{4}):(?:0x)?([0-9a-f]{4})$/i.exec(host);
    if (host === 'spice') log.secureDefault(key, 'USB redirection from a SPICE client is not carried');
    else if (p.has('mapping'))
      log.refuse(key, `resource mapping "${p.get('mapping')}" is defined cluster-wide in Proxmox, not in this file`);
    else if (!m)
      log.refuse(key, `"${host}" chooses a USB device by bus and port, not by vendor:product; cannot be carried`);
    else {
      const id = `${m[1]!.toLowerCase()}:${m[2]!.toLowerCase()}`;
      prov.push([`passthrough.usb.${usb.length}`, key]);
      usb.push({ vendorId: m[1]!.toLowerCase(), productId: m[2]!.toLowerCase() });
      log.carry(key, `USB device ${id}`);
      takesRisk(d, 'usb-passthrough', key, `USB device ${id}`);
    }
  }
  if (pci.length || usb.length) g.passthrough = { pci, usb };
}

/** Every other key: cloud-init, serial ports, the agent, and keys with no equivalent. */
function otherKeys({ c, d: { log } }: Vm): void {
  for (const k of c.keys()) {
    if (
      IGNORED.has(k) ||
      DISK_KEY.test(k) ||
      /^(net|hostpci|usb|unused|numa)\d+$/.test(k) ||
      ['affinity', 'numa', 'hugepages', 'keephugepages', 'amd-sev', 'intel-tdx'].includes(k)
    )
      continue;
    if (/^virtiofs\d+$/.test(k))
      log.refuse(
        k,
        'names a Proxmox directory mapping (datacenter-wide, in /etc/pve/mapping/dir.cfg), which import does not read: add the folder to the guest’s shares (path, tag, readOnly) by hand',
      );
    else if (k === 'ivshmem') log.refuse(k, 'memory shared with other processes is not supported');
    else if (CLOUDINIT.test(k))
      log.secureDefault(k, 'cloud-init settings are not carried (the bundle generates no cloud-init drive)');
    else if (/^serial\d$/.test(k) && c.get(k) === 'socket')
      log.carry(k, "serial console on a unix socket → the bundle's serial console on a unix socket, logged");
    else if (/^serial\d$/.test(k))
      log.secureDefault(
        k,
        `host serial port ${c.get(k)} is not passed through; the guest gets the bundle's serial console`,
      );
    else if (k === 'agent') log.secureDefault(k, 'the guest agent channel is not carried');
    else log.secureDefault(k, 'not carried: qemu-harden has no equivalent for this key');
  }
}

/** The Proxmox answer source: VMID.conf documents → `{ document, report }` (document null when refused). */
export function fromProxmox(inputs: SourceInput[], opts: ProxmoxOptions) {
  return importDocuments(
    'proxmox',
    inputs,
    (text, file) => importVmConfig(text, file, opts),
    (m, file) =>
      m.startsWith(file)
        ? m
            .slice(file.length)
            .replace(/^:(\d+): /, 'line $1: ')
            .replace(/^:\s*/, '')
        : m,
  );
}

/** `import proxmox`: /etc/pve/qemu-server/VMID.conf files, their volumes resolved through storage.cfg. */
export const proxmox: ImportSource = {
  kind: 'proxmox',
  inputs: 'VMID.conf...',
  input: 'a Proxmox guest configuration',
  config: { flag: '--storage-cfg', path: '/etc/pve/storage.cfg', what: 'storage.cfg' },
  import: (inputs, config, host) =>
    fromProxmox(inputs, { host, ...(config ? { storages: parseStorageCfg(config.text, config.file) } : {}) }),
};
