// libvirt domain XML as an answer source. The XML is untrusted: a DOCTYPE (and with it every entity
// declaration) is refused before parsing, the parser expands no entities, and size and depth are bounded. Each
// element is carried into the answers, changed to the secure default, or refused — and the report says which.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
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
  takesRisk,
  toGuestName,
  translateRemoved,
  type GuestDraft,
  type ImportHost,
  type ImportSource,
  type PassedOption,
  type SourceInput,
} from './common.js';
import * as N from '../names.js';

type Node = Record<string, unknown>;

const QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0';
/** libvirt's own domain documents nest a dozen levels deep; far past that is an attack on the parser. */
export const MAX_XML_DEPTH = 48;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  alwaysCreateTextNode: true,
  textNodeName: '#text',
  isArray: (_name, _jpath, _leaf, isAttribute) => !isAttribute,
  maxNestedTags: MAX_XML_DEPTH,
});

/** The five predefined XML entities and character references, decoded once; nothing else is ever expanded. */
function decode(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|lt|gt|amp|quot|apos);/g, (_m, e: string) => {
    switch (e) {
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'amp':
        return '&';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
    }
    const cp = e.startsWith('#x') ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? '\ufffd' : String.fromCodePoint(cp);
  });
}

const kids = (n: Node | undefined, tag: string): Node[] => (n && Array.isArray(n[tag]) ? (n[tag] as Node[]) : []);
const kid = (n: Node | undefined, tag: string): Node | undefined => kids(n, tag)[0];
const attr = (n: Node | undefined, a: string): string | undefined =>
  n && typeof n[`@${a}`] === 'string' ? decode(n[`@${a}`] as string) : undefined;
const text = (n: Node | undefined): string | undefined =>
  n && typeof n['#text'] === 'string' ? decode(n['#text'] as string) : undefined;
const childText = (n: Node | undefined, tag: string) => text(kid(n, tag));

/** Parse domain XML text into its root element, refusing what the parser must never see. */
export function parseDomainXml(xml: string, where: string): Node {
  checkText(xml, where);
  if (/<!DOCTYPE/i.test(xml) || /<!ENTITY/i.test(xml))
    throw new InputError(
      `${where}: <!DOCTYPE> is refused: domain XML needs no document type, and entity declarations in it are how XML bombs and external-entity reads work`,
    );
  const stray = /&(?!#x[0-9a-fA-F]{1,6};|#[0-9]{1,7};|lt;|gt;|amp;|quot;|apos;)([^\s;<]{0,20};?)/.exec(xml);
  if (stray)
    throw new InputError(
      `${where}: "&${stray[1]}" is not one of XML's predefined entities or a character reference; no other entity is expanded`,
    );
  // The parser goes first: it stops at the depth bound at once, where the validator would walk all of a deeply
  // nested file. Nothing it returns is used unless the validator then finds the document well-formed.
  let doc: Node;
  try {
    doc = parser.parse(xml) as Node;
  } catch (e) {
    const msg = (e as Error).message;
    if (/nested/i.test(msg)) throw new InputError(`${where}: elements nest deeper than ${MAX_XML_DEPTH} levels`);
    doc = {};
  }
  const v = XMLValidator.validate(xml);
  if (v !== true)
    throw new InputError(`${where}: not well-formed XML (line ${v.err.line}, column ${v.err.col}): ${v.err.msg}`);
  const root = kid(doc, 'domain');
  const tops = Object.keys(doc).filter((k) => !k.startsWith('?'));
  if (!root || tops.length !== 1)
    throw new InputError(
      `${where}: the document element must be <domain> (found ${tops.map((t) => `<${t}>`).join(', ') || 'nothing'})`,
    );
  return root;
}

export interface QemuConf {
  vncTls: boolean;
  vncTlsDir: string;
  vncListen: string;
  spiceTls: boolean;
  spiceTlsDir: string;
  spiceListen: string;
  migrateTlsForce: boolean | undefined;
}

export const QEMU_CONF_DEFAULTS: QemuConf = {
  vncTls: false,
  vncTlsDir: '/etc/pki/libvirt-vnc',
  vncListen: '127.0.0.1',
  spiceTls: false,
  spiceTlsDir: '/etc/pki/libvirt-spice',
  spiceListen: '127.0.0.1',
  migrateTlsForce: undefined,
};

/** /etc/libvirt/qemu.conf: `key = value` lines (strings in double quotes, integers, lists), `#` comments. */
export function parseQemuConf(textIn: string, where: string): QemuConf {
  checkText(textIn, where);
  const values = new Map<string, string>();
  const lines = textIn.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-z_][a-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new InputError(`${where}:${i + 1}: expected "key = value"`);
    let v = m[2]!.replace(/\s+#[^"]*$/, '').trim();
    if (v.startsWith('[')) {
      // A list may span lines up to its closing bracket; none of the keys read here is a list.
      const start = i;
      while (!v.includes(']') && i + 1 < lines.length) v += ' ' + lines[++i]!.replace(/#.*$/, '').trim();
      if (!v.includes(']')) throw new InputError(`${where}:${start + 1}: list "${m[1]}" is never closed with "]"`);
      continue;
    }
    const q = /^"((?:[^"\\]|\\.)*)"$/.exec(v);
    if (q) v = q[1]!.replace(/\\(.)/g, '$1');
    else if (!/^-?\d+$/.test(v))
      throw new InputError(`${where}:${i + 1}: ${m[1]}: expected a quoted string, a number or a list`);
    values.set(m[1]!, v);
  }
  const bool = (k: string) => (values.has(k) ? values.get(k) !== '0' : undefined);
  const defaultDir = values.get('default_tls_x509_cert_dir');
  return {
    vncTls: bool('vnc_tls') ?? false,
    vncTlsDir: values.get('vnc_tls_x509_cert_dir') ?? defaultDir ?? QEMU_CONF_DEFAULTS.vncTlsDir,
    vncListen: values.get('vnc_listen') ?? QEMU_CONF_DEFAULTS.vncListen,
    spiceTls: bool('spice_tls') ?? false,
    spiceTlsDir: values.get('spice_tls_x509_cert_dir') ?? defaultDir ?? QEMU_CONF_DEFAULTS.spiceTlsDir,
    spiceListen: values.get('spice_listen') ?? QEMU_CONF_DEFAULTS.spiceListen,
    migrateTlsForce: bool('migrate_tls_force'),
  };
}

const UNITS: Record<string, number> = {
  b: 1,
  bytes: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
};

/** A libvirt scaled integer (`<memory unit='KiB'>`) in bytes; KiB when no unit is given, as libvirt reads it. */
function bytesOf(n: Node | undefined, defaultUnit = 'kib'): number | undefined {
  const t = text(n);
  if (t === undefined || !/^\d{1,20}$/.test(t)) return undefined;
  const unit = (attr(n, 'unit') ?? defaultUnit).toLowerCase();
  const f = UNITS[unit];
  return f === undefined ? undefined : Number(t) * f;
}

const MiB = 1024 * 1024;

/** Elements the bundle decides itself: leaving them out changes nothing the operator chose. */
const STRUCTURAL = new Set([
  'name',
  'uuid',
  'genid',
  'title',
  'description',
  'metadata',
  'memory',
  'currentMemory',
  'vcpu',
  'vcpus',
  'os',
  'features',
  'clock',
  'on_poweroff',
  'on_reboot',
  'on_crash',
  'on_lockfailure',
  'pm',
  'devices',
  'cpu',
  'cputune',
  'memtune',
  'blkiotune',
  'numatune',
  'memoryBacking',
  'iothreads',
  'iothreadids',
  'resource',
  'seclabel',
  'sysinfo',
  'idmap',
  'keywrap',
  'perf',
  'launchSecurity',
  'maxMemory',
  'defaultiothread',
  'throttlegroups',
]);
const STRUCTURAL_DEVICES = new Set([
  'emulator',
  'filesystem',
  'controller',
  'input',
  'memballoon',
  'video',
  'disk',
  'interface',
  'graphics',
  'hostdev',
  'tpm',
]);

export interface LibvirtOptions {
  /** What qemu.conf says (libvirt's defaults when none was read), and the file it came from. */
  qemuConf?: QemuConf;
  qemuConfFile?: string;
  /** What the caller knows of this host: CPU models, IOMMU groups, the host's own storage. */
  host: ImportHost;
}

/** One domain as it is read: the draft of its guest, the domain element, and what qemu.conf adds. */
interface Domain {
  dom: Node;
  d: GuestDraft;
  conf: QemuConf;
  confName: string;
}

/** The pieces of a domain, read in this order; each carries, defaults or refuses what it reads. */
const PIECES: ((x: Domain) => void)[] = [
  identity,
  qemuNamespace,
  domainType,
  memoryAndVcpus,
  cpu,
  os,
  platform,
  tuning,
  disks,
  interfaces,
  filesystems,
  graphics,
  hostdevs,
  tpm,
  consoles,
  otherDevices,
  security,
];

/** One domain: the answers guest it becomes (absent when refused) and the report of every decision. */
export function importDomain(xml: string, file: string, opts: LibvirtOptions) {
  const dom = parseDomainXml(xml, file);
  const x: Domain = {
    dom,
    d: newDraft(file, opts.host),
    conf: opts.qemuConf ?? QEMU_CONF_DEFAULTS,
    confName: opts.qemuConfFile ?? 'qemu.conf (none read: libvirt defaults)',
  };
  for (const piece of PIECES) piece(x);
  return finish(x.d, childText(dom, 'name') ?? null, { disks: 'devices/disk (or os/kernel)' });
}

function identity({ dom, d }: Domain): void {
  const fallback = toGuestName(d.file.replace(/^.*\//, '').replace(/\.xml$/, ''), 'imported');
  nameGuest(d, childText(dom, 'name'), fallback, 'name');
  const title = childText(dom, 'title');
  describeGuest(d, title || childText(dom, 'description'), title ? 'title' : 'description');
}

/**
 * The namespace an element is in: its prefix's declaration on the element itself, else on the domain (the
 * elements read here are the domain's children). Unprefixed, the default namespace declared the same way.
 */
function namespaceOf(el: Node, dom: Node, tag: string): string | undefined {
  const prefix = tag.includes(':') ? tag.slice(0, tag.indexOf(':')) : undefined;
  const decl = prefix === undefined ? '@xmlns' : `@xmlns:${prefix}`;
  return attr(el, decl.slice(1)) ?? attr(dom, decl.slice(1));
}

/**
 * libvirt's QEMU namespace (qemu:commandline, qemu:override, qemu:capabilities, qemu:deprecation) passes options
 * straight to QEMU or changes what libvirt asks of it, around every check and confinement the bundle builds. It is
 * refused in every form: a prefix declared on the domain or on the element itself, or the element's default
 * namespace. Any other element the answers have no equivalent for is reported as not carried.
 */
function qemuNamespace({ dom, d }: Domain): void {
  for (const k of Object.keys(dom)) {
    if (k.startsWith('@') || k === '#text') continue;
    const local = k.includes(':') ? k.slice(k.indexOf(':') + 1) : k;
    const inQemu = kids(dom, k).some((el) => namespaceOf(el, dom, k) === QEMU_NS);
    if (inQemu) {
      const options = local === 'commandline' ? commandLineOptions(dom, k) : undefined;
      if (options?.length && options.every((o) => o.refusal === undefined)) {
        for (const o of options) translateRemoved(d, o);
        continue;
      }
      const removed = (options ?? []).filter((o) => o.removed && o.refusal !== undefined);
      d.log.refuse(
        k,
        `is in libvirt's QEMU namespace (${QEMU_NS}), which passes options straight to QEMU, around every check and confinement this bundle builds; move what <${local}> does into the domain proper${removed.map((o) => `; ${o.shown}: ${o.refusal}`).join('')}`,
      );
    } else if (k.includes(':') || !STRUCTURAL.has(k))
      d.log.secureDefault(k, 'not carried: qemu-harden has no equivalent for this element');
  }
}

/**
 * The options of libvirt's <qemu:commandline> elements named `tag`, each an <arg value=…> in the same namespace,
 * as import makes of them (src/sources/common.ts passedThrough): undefined when an element holds anything else
 * (<qemu:env>, text, an element of another namespace), which leaves it refused as a whole.
 */
function commandLineOptions(dom: Node, tag: string): PassedOption[] | undefined {
  const prefix = tag.includes(':') ? tag.slice(0, tag.indexOf(':')) : undefined;
  const argTag = prefix === undefined ? 'arg' : `${prefix}:arg`;
  const decl = prefix === undefined ? 'xmlns' : `xmlns:${prefix}`;
  const elements = kids(dom, tag);
  const out: PassedOption[] = [];
  for (const [n, el] of elements.entries()) {
    const others = Object.keys(el).filter((c) => !c.startsWith('@') && c !== argTag && c !== '#text');
    if (others.length || (text(el) ?? '') !== '') return undefined;
    const args = kids(el, argTag);
    if (args.some((a) => attr(a, 'value') === undefined || (attr(a, decl) ?? QEMU_NS) !== QEMU_NS)) return undefined;
    const at = elements.length > 1 ? `${tag}[${n + 1}]` : tag;
    out.push(
      ...passedThrough(
        args.map((a) => attr(a, 'value')!),
        (i) => `${at}/${argTag}[${i + 1}]@value`,
      ),
    );
  }
  return out;
}

/** qemu-harden runs guests under KVM, the only case QEMU treats as a security boundary. */
function domainType({ dom, d }: Domain): void {
  const type = attr(dom, 'type');
  if (type !== 'kvm')
    d.log.secureDefault(
      'domain@type',
      `"${type ?? ''}" (emulation) is imported as KVM virtualization, the use case QEMU supports for isolation; choose emulation in the wizard if this host has no KVM`,
    );
}

function memoryAndVcpus({ dom, d: { guest: g, prov, log } }: Domain): void {
  const memBytes = bytesOf(kid(dom, 'memory'));
  if (memBytes === undefined) log.refuse('memory', 'missing or not a number with a known unit');
  else {
    const mib = Math.ceil(memBytes / MiB);
    g.memoryMiB = mib;
    prov.push(['memoryMiB', 'memory']);
    log.carry('memory', `${mib} MiB${memBytes % MiB ? ' (rounded up to whole MiB)' : ''}`);
  }
  if (kid(dom, 'maxMemory'))
    log.secureDefault('maxMemory', 'memory hotplug is not carried; the guest has its boot-time memory only');
  const vcpuNode = kid(dom, 'vcpu');
  const vcpus = vcpuNode ? text(vcpuNode) : '1';
  if (!vcpus || !/^\d{1,6}$/.test(vcpus)) log.refuse('vcpu', 'not a number');
  else {
    g.vcpus = Number(vcpus);
    prov.push(['vcpus', 'vcpu']);
    log.carry('vcpu', `${vcpus} vCPU${vcpus === '1' ? '' : 's'}`);
  }
  if (attr(vcpuNode, 'cpuset'))
    log.secureDefault('vcpu@cpuset', 'CPU pinning is not carried; the host scheduler places the vCPUs');
  if (attr(vcpuNode, 'current') && attr(vcpuNode, 'current') !== vcpus)
    log.secureDefault('vcpu@current', `vCPU hotplug is not carried; the guest starts with all ${vcpus} vCPUs`);
}

function cpu({ dom, d }: Domain): void {
  const { guest: g, prov, log } = d;
  const c = kid(dom, 'cpu');
  if (!c) return;
  const mode = attr(c, 'mode') ?? 'custom';
  const cpuOut: { model?: string; features: string[] } = { features: [] };
  if (mode === 'host-passthrough' || mode === 'host-model' || mode === 'maximum') {
    cpuOut.model = mode === 'maximum' ? 'max' : 'host';
    log.carry('cpu@mode', `${mode} → QEMU CPU model "${cpuOut.model}"`);
  } else {
    const model = childText(c, 'model');
    if (model && knownCpuModel(d, model, 'cpu/model')) {
      cpuOut.model = model;
      log.carry('cpu/model', `CPU model "${model}"`);
    }
  }
  kids(c, 'feature').forEach((f, i) => {
    const name = attr(f, 'name') ?? '';
    const policy = attr(f, 'policy') ?? 'require';
    if (policy === 'optional')
      return log.secureDefault(`cpu/feature[${i + 1}]`, `optional feature "${name}" is left to the CPU model`);
    cpuOut.features.push(`${policy === 'disable' || policy === 'forbid' ? '-' : '+'}${name}`);
  });
  if (cpuOut.features.length) log.carry('cpu/feature', cpuOut.features.join(' '));
  prov.push(
    ['cpu.model', cpuOut.model && mode === 'custom' ? 'cpu/model' : 'cpu@mode'],
    ['cpu.features', 'cpu/feature'],
  );
  g.cpu = cpuOut;
  if (kid(c, 'topology'))
    log.secureDefault(
      'cpu/topology',
      'sockets/cores/threads are not carried; the guest sees its vCPUs as single-core sockets',
    );
  if (kid(c, 'numa')) log.secureDefault('cpu/numa', 'guest NUMA cells are not carried');
  if (kid(c, 'cache')) log.secureDefault('cpu/cache', 'CPU cache passthrough is not carried');
}

function os({ dom, d: { guest: g, prov, log } }: Domain): void {
  const o = kid(dom, 'os');
  const t = kid(o, 'type');
  const arch = attr(t, 'arch');
  if (arch && arch !== 'x86_64' && arch !== 'i686')
    log.refuse('os/type@arch', `"${arch}" is not an x86 guest; the bundle runs qemu-system-x86_64`);
  if (text(t) && text(t) !== 'hvm') log.refuse('os/type', `"${text(t)}" guests are not full virtual machines`);
  const machine = attr(t, 'machine');
  g.machine = machine ?? 'pc';
  prov.push(['machine', 'os/type@machine']);
  log.carry(
    'os/type@machine',
    machine ? `machine type "${machine}"` : 'no machine type given; "pc", as libvirt picks for x86',
  );

  const loader = kid(o, 'loader');
  const nvram = kid(o, 'nvram');
  const efi = attr(o, 'firmware') === 'efi' || (loader && attr(loader, 'type') !== 'rom') || nvram !== undefined;
  const fwFeatures = kids(kid(o, 'firmware'), 'feature');
  const secure =
    attr(loader, 'secure') === 'yes' ||
    fwFeatures.some((f) => attr(f, 'name') === 'secure-boot' && attr(f, 'enabled') === 'yes');
  if (loader && attr(loader, 'type') === 'rom')
    log.refuse('os/loader@type', '"rom": a custom BIOS image is not in the answers model');
  else if (efi) {
    const fw: Record<string, unknown> = { type: 'uefi' };
    const keys = fwFeatures.find((f) => attr(f, 'name') === 'enrolled-keys');
    if (secure) {
      fw.secureBoot = true;
      fw.code = SECBOOT_CODE;
      fw.varsTemplate = attr(keys, 'enabled') === 'no' ? PLAIN_VARS : MS_VARS;
      prov.push(['firmware.secureBoot', secureSource(loader, fwFeatures)]);
      log.carry(
        secureSource(loader, fwFeatures),
        `UEFI Secure Boot, enforced: SMM on and the firmware flash writable only from SMM${attr(keys, 'enabled') === 'no' ? ' (no keys enrolled, as the source asks)' : '; Microsoft keys enrolled from the vars template'}`,
      );
    }
    const code = text(loader);
    if (code) {
      fw.code = code;
      prov.push(['firmware.code', 'os/loader']);
      log.carry('os/loader', `UEFI firmware ${code}`);
      if (attr(loader, 'readonly') === 'no')
        log.secureDefault(
          'os/loader@readonly',
          'the firmware image is mapped read-only; variables live in a per-guest copy of the template',
        );
    } else log.carry(attr(o, 'firmware') ? 'os@firmware' : 'os/nvram', 'UEFI firmware (the host’s OVMF)');
    const tmpl = attr(nvram, 'template');
    if (tmpl) {
      fw.varsTemplate = tmpl;
      prov.push(['firmware.varsTemplate', 'os/nvram@template']);
      log.carry('os/nvram@template', `UEFI variables template ${tmpl}`);
    }
    if (nvram && text(nvram))
      log.secureDefault(
        'os/nvram',
        `the guest's variables file ${text(nvram)} is not carried; the bundle starts from the template in its own state directory`,
      );
    g.firmware = fw;
    prov.push(['firmware', attr(o, 'firmware') ? 'os@firmware' : 'os/loader']);
  } else log.carry('os', 'BIOS firmware');

  const kernel = childText(o, 'kernel');
  if (kernel) {
    const boot: Record<string, unknown> = { kernel };
    const initrd = childText(o, 'initrd');
    const cmdline = childText(o, 'cmdline');
    const dtb = childText(o, 'dtb');
    if (initrd) boot.initrd = initrd;
    if (cmdline !== undefined && cmdline !== '') boot.cmdline = cmdline;
    if (dtb) boot.deviceTree = dtb;
    g.boot = boot;
    prov.push(
      ['boot.kernel', 'os/kernel'],
      ['boot.initrd', 'os/initrd'],
      ['boot.cmdline', 'os/cmdline'],
      ['boot.deviceTree', 'os/dtb'],
      ['boot', 'os/kernel'],
    );
    log.carry(
      'os/kernel',
      `direct kernel boot: ${kernel}${initrd ? `, initrd ${initrd}` : ''}${cmdline ? `, command line ${JSON.stringify(cmdline)}` : ''}`,
    );
  }
}

/**
 * ACPI and the HPET, which are on unless the domain says otherwise: libvirt starts a domain without <acpi/> in
 * <features> with -machine acpi=off, and one whose <clock> has <timer name='hpet' present='no'/> with -machine
 * hpet=off (once with -no-acpi and -no-hpet). The answers say the same.
 */
function platform({ dom, d: { guest: g, prov, log } }: Domain): void {
  if (!kid(kid(dom, 'features'), 'acpi')) {
    g.acpi = false;
    prov.push(['acpi', 'features']);
    log.carry(
      'features',
      `no <acpi/>: the guest has no ACPI → acpi: false, which the bundle writes as -machine acpi=off, as libvirt starts it; ${NO_ACPI_STOP}`,
    );
  }
  kids(kid(dom, 'clock'), 'timer').forEach((t, i) => {
    if (attr(t, 'name') !== 'hpet' || attr(t, 'present') !== 'no') return;
    g.hpet = false;
    prov.push(['hpet', `clock/timer[${i + 1}]@present`]);
    log.carry(
      `clock/timer[${i + 1}]@present`,
      'no HPET → hpet: false, which the bundle writes as -machine hpet=off, as libvirt starts it',
    );
  });
}

const SECBOOT_CODE = '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd';
const MS_VARS = '/usr/share/OVMF/OVMF_VARS_4M.ms.fd';
const PLAIN_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

function secureSource(loader: Node | undefined, features: Node[]): string {
  if (attr(loader, 'secure') === 'yes') return 'os/loader@secure';
  const i = features.findIndex((f) => attr(f, 'name') === 'secure-boot');
  return `os/firmware/feature[${i + 1}]`;
}

/**
 * CPU shares as libvirt applies them on cgroup v2: written unchanged as cpu.weight (1-10000). A value above
 * 10000 is only valid on cgroup v1 (2-262144, default 1024); it is converted as systemd converts CPUShares.
 */
export function sharesToWeight(shares: number): { weight: number; v1: boolean } {
  if (shares >= 1 && shares <= 10000) return { weight: shares, v1: false };
  return { weight: Math.min(10000, Math.max(1, Math.round((shares * 100) / 1024))), v1: true };
}

function tuning({ dom, d: { guest: g, prov, log } }: Domain): void {
  const limits: Record<string, unknown> = {};
  const ct = kid(dom, 'cputune');
  if (ct) {
    const shares = childText(ct, 'shares');
    if (shares && /^\d{1,7}$/.test(shares)) {
      const w = sharesToWeight(Number(shares));
      limits.cpuWeight = w.weight;
      prov.push(['limits.cpuWeight', 'cputune/shares']);
      log.carry(
        'cputune/shares',
        w.v1
          ? `${shares} is on cgroup v1's scale (default 1024) → CPUWeight=${w.weight} (cgroup v2, default 100)`
          : `${shares} → CPUWeight=${w.weight}, as libvirt writes it on cgroup v2 (default 100; on a cgroup v1 host the same number was relative to 1024)`,
      );
    }
    const num = (tag: string) => {
      const v = childText(ct, tag);
      return v && /^-?\d{1,19}$/.test(v) ? Number(v) : undefined;
    };
    const gq = num('global_quota');
    const gp = num('global_period') ?? 100000;
    const q = num('quota');
    const p = num('period') ?? 100000;
    const vcpus = typeof g.vcpus === 'number' ? g.vcpus : 1;
    if (gq !== undefined && gq > 0 && gp > 0) {
      limits.cpuQuotaPercent = Math.max(1, Math.ceil((gq / gp) * 100));
      prov.push(['limits.cpuQuotaPercent', 'cputune/global_quota']);
      log.carry('cputune/global_quota', `${gq}/${gp} µs → CPUQuota=${limits.cpuQuotaPercent}%`);
    } else if (q !== undefined && q > 0 && p > 0) {
      limits.cpuQuotaPercent = Math.max(1, Math.ceil((q / p) * 100 * vcpus));
      prov.push(['limits.cpuQuotaPercent', 'cputune/quota']);
      log.carry(
        'cputune/quota',
        `${q}/${p} µs per vCPU × ${vcpus} vCPUs → CPUQuota=${limits.cpuQuotaPercent}% for the whole guest`,
      );
    }
    for (const tag of [
      'vcpupin',
      'emulatorpin',
      'iothreadpin',
      'vcpusched',
      'iothreadsched',
      'emulatorsched',
      'cachetune',
      'memorytune',
    ])
      if (kid(ct, tag))
        log.secureDefault(
          `cputune/${tag}`,
          'pinning and real-time scheduling are not carried; the host scheduler places the guest',
        );
  }
  const mt = kid(dom, 'memtune');
  if (mt) {
    const mem = typeof g.memoryMiB === 'number' ? g.memoryMiB : 0;
    const lim = (tag: string, key: 'memoryMaxMiB' | 'memoryHighMiB', directive: string) => {
      const b = bytesOf(kid(mt, tag));
      if (b === undefined) return;
      const mib = Math.ceil(b / MiB);
      if (mib < mem)
        return log.secureDefault(
          `memtune/${tag}`,
          `${mib} MiB is below the guest's memory (${mem} MiB); left unset (the bundle's own ${directive === 'MemoryMax' ? `MemoryMax of guest memory plus QEMU's overhead` : 'limits'} apply)`,
        );
      limits[key] = mib;
      prov.push([`limits.${key}`, `memtune/${tag}`]);
      log.carry(`memtune/${tag}`, `${mib} MiB → ${directive}=${mib}M`);
    };
    lim('hard_limit', 'memoryMaxMiB', 'MemoryMax');
    lim('soft_limit', 'memoryHighMiB', 'MemoryHigh');
    if (kid(mt, 'swap_hard_limit'))
      log.secureDefault(
        'memtune/swap_hard_limit',
        'the bundle sets MemorySwapMax=0: guest memory is never swapped, which is stricter than any swap limit',
      );
    if (kid(mt, 'min_guarantee'))
      log.secureDefault('memtune/min_guarantee', 'not carried (no cgroup v2 equivalent libvirt uses)');
  }
  const bt = kid(dom, 'blkiotune');
  if (bt) {
    const w = childText(bt, 'weight');
    if (w && /^\d{1,5}$/.test(w)) {
      limits.ioWeight = Number(w);
      prov.push(['limits.ioWeight', 'blkiotune/weight']);
      log.carry(
        'blkiotune/weight',
        `${w} → IOWeight=${w}, as libvirt writes it on cgroup v2 (default 100; on cgroup v1 the default was 500)`,
      );
    }
    const bw: Record<string, unknown>[] = [];
    kids(bt, 'device').forEach((d, i) => {
      const at = `blkiotune/device[${i + 1}]`;
      const path = childText(d, 'path');
      const entry: Record<string, unknown> = { device: path };
      const n = (tag: string) => {
        const v = childText(d, tag);
        return v && /^\d{1,19}$/.test(v) && Number(v) > 0 ? Number(v) : undefined;
      };
      const r = n('read_bytes_sec');
      const wr = n('write_bytes_sec');
      if (r) entry.readBytesPerSecond = r;
      if (wr) entry.writeBytesPerSecond = wr;
      if (r || wr) {
        prov.push([`limits.ioBandwidth.${bw.length}`, at]);
        bw.push(entry);
        log.carry(
          at,
          `${path}: ${r ? `IOReadBandwidthMax ${r}` : ''}${r && wr ? ', ' : ''}${wr ? `IOWriteBandwidthMax ${wr}` : ''} bytes/s`,
        );
      }
      for (const tag of ['weight', 'read_iops_sec', 'write_iops_sec'])
        if (kid(d, tag))
          log.secureDefault(
            `${at}/${tag}`,
            'per-device IO weight and IOPS limits are not in the answers model; not carried',
          );
    });
    if (bw.length) limits.ioBandwidth = bw;
  }
  if (Object.keys(limits).length) g.limits = limits;
  if (kid(dom, 'numatune'))
    log.secureDefault('numatune', 'NUMA memory placement is not carried; the host kernel places guest memory');
  const mb = kid(dom, 'memoryBacking');
  if (mb) {
    for (const k of Object.keys(mb).filter((k) => !k.startsWith('@') && k !== '#text'))
      log.secureDefault(
        `memoryBacking/${k}`,
        k === 'hugepages'
          ? 'huge pages are not carried; guest memory is ordinary private memory'
          : k === 'access'
            ? 'shared guest memory is not carried; the bundle shares it (memfd) itself only where virtiofsd serves the guest’s folders'
            : 'not carried; guest memory is ordinary private anonymous memory',
      );
  }
}

const NET_REFUSED: Record<string, string> = {
  direct: 'macvtap on a host interface is not supported; use a bridge',
  vhostuser: 'vhost-user hands guest memory to another process; not supported',
  hostdev:
    'a passed-through network function (SR-IOV) must be imported as a PCI host device; not supported as an interface',
  vdpa: 'vDPA devices are not supported',
  mcast: 'socket networking (multicast) is not supported',
  udp: 'socket networking (UDP) is not supported',
  server: 'socket networking (TCP server) is not supported',
  client: 'socket networking (TCP client) is not supported',
  vds: 'distributed switches are not supported',
  null: 'not supported',
};

function disks({ dom, d: draft }: Domain): void {
  const { guest: g, prov, log } = draft;
  const dev = kid(dom, 'devices');
  const disks: Record<string, unknown>[] = [];
  // The bundle boots disks in their order: per-device <boot order='N'/> first, then the first <os><boot dev>
  // kind (a CD-ROM before disks for dev='cdrom'), then document order.
  const firstDev = attr(kid(kid(dom, 'os'), 'boot'), 'dev');
  const bootRank = (d: Node) => {
    const order = Number(attr(kid(d, 'boot'), 'order'));
    if (Number.isInteger(order) && order > 0) return order;
    return 1e6 + (firstDev === 'cdrom' && attr(d, 'device') === 'cdrom' ? 0 : 1);
  };
  const ordered = kids(dev, 'disk')
    .map((d, i) => ({ d, i, rank: bootRank(d) }))
    .sort((a, b) => a.rank - b.rank || a.i - b.i);
  ordered.forEach(({ d, i }) => {
    const at = `devices/disk[${i + 1}]`;
    const type = attr(d, 'type') ?? 'file';
    const device = attr(d, 'device') ?? 'disk';
    const src = kid(d, 'source');
    const bus = attr(kid(d, 'target'), 'bus');
    if (type === 'network')
      return log.refuse(
        `${at}/source@protocol`,
        `network disk (${attr(src, 'protocol') ?? 'unknown protocol'}${attr(src, 'name') ? ` ${attr(src, 'name')}` : ''}): QEMU would talk to a storage server itself; attach the volume on the host (e.g. krbd, iscsiadm) and import the block device`,
      );
    if (type !== 'file' && type !== 'block')
      return log.refuse(`${at}@type`, `"${type}" disks are not supported (only file and block)`);
    if (device === 'lun')
      return log.refuse(`${at}@device`, '"lun" passes SCSI commands to a host device; not supported');
    const path = attr(src, type === 'file' ? 'file' : 'dev');
    if (!path) {
      if (device === 'cdrom' || device === 'floppy')
        return log.secureDefault(at, `empty ${device} drive is not carried`);
      return log.refuse(`${at}/source`, 'no source path');
    }
    if (kid(d, 'encryption') || kid(src, 'encryption'))
      return log.refuse(`${at}/encryption`, 'encrypted disks need a secret the bundle does not manage');
    const backing = kid(d, 'backingStore');
    if (backing && kid(backing, 'source'))
      return log.refuse(
        `${at}/backingStore`,
        'a backing chain: QEMU would open files the bundle does not list (and AppArmor denies); flatten it with qemu-img convert first',
      );
    if (kid(d, 'transient'))
      return log.refuse(
        `${at}/transient`,
        'a transient disk (changes discarded at shutdown) has no equivalent; it would become a disk whose writes persist',
      );
    const driver = kid(d, 'driver');
    const fmt = attr(driver, 'type');
    let format: string;
    if (fmt === undefined || fmt === 'raw') format = 'raw';
    else if (fmt === 'qcow2') format = 'qcow2';
    else return log.refuse(`${at}/driver@type`, `format "${fmt}" is not supported (qcow2 or raw)`);
    if (!hostStorageFree(draft, path, `${at}/source`)) return;
    const readOnly = kid(d, 'readonly') !== undefined || device === 'cdrom';
    const disk: Record<string, unknown> = { path, format, readOnly, blockDevice: type === 'block' };
    const io = kid(d, 'iotune');
    if (io) {
      const th: Record<string, number> = {};
      const map: [string, string][] = [
        ['read_bytes_sec', 'readBytesPerSecond'],
        ['write_bytes_sec', 'writeBytesPerSecond'],
        ['read_iops_sec', 'readIops'],
        ['write_iops_sec', 'writeIops'],
      ];
      for (const [tag, key] of map) {
        const v = childText(io, tag);
        if (v && /^\d{1,19}$/.test(v) && Number(v) > 0) th[key] = Number(v);
      }
      if (Object.keys(th).length) {
        disk.throttle = th;
        log.carry(
          `${at}/iotune`,
          Object.entries(th)
            .map(([k, v]) => `${k} ${v}`)
            .join(', '),
        );
      }
      const rest = Object.keys(io).filter((k) => !k.startsWith('@') && k !== '#text' && !map.some(([t]) => t === k));
      if (rest.length)
        log.secureDefault(
          `${at}/iotune`,
          `${rest.join(', ')} not carried: the answers throttle reads and writes separately, without bursts or groups`,
        );
    }
    if (kid(d, 'shareable')) log.secureDefault(`${at}/shareable`, 'not shared: a writable disk belongs to one guest');
    prov.push([`disks.${disks.length}`, `${at}/source`], [`disks.${disks.length}.format`, `${at}/driver@type`]);
    disks.push(disk);
    log.carry(
      at,
      `${type === 'block' ? 'block device' : 'file'} ${path}, ${format}${fmt === undefined ? ' (no format given: raw, as libvirt assumes; never probed)' : ''}${readOnly ? ', read-only' : ''}`,
    );
    if (bus && bus !== 'virtio')
      log.secureDefault(`${at}/target@bus`, `"${bus}" becomes virtio-blk: the guest needs virtio drivers`);
  });
  if (disks.length) g.disks = disks;
}

/** The most ports one <portForward> may forward, ranges counted port by port: the answers list each. */
const MAX_FORWARDED_PORTS = 64;

/**
 * libvirt's port forwards of a passt interface (<portForward proto address><range start end to exclude/>) as the
 * answers' forwards, each port on its own; undefined when one cannot be carried (it is then refused by its path).
 */
function portForwards(n: Node, at: string, log: Domain['d']['log']): Record<string, unknown>[] | undefined {
  const out: Record<string, unknown>[] = [];
  for (const [i, pf] of kids(n, 'portForward').entries()) {
    const pat = `${at}/portForward[${i + 1}]`;
    const protocol = attr(pf, 'proto') ?? 'tcp';
    if (protocol !== 'tcp' && protocol !== 'udp') {
      log.refuse(`${pat}@proto`, `"${protocol}" is not a protocol passt forwards (tcp, udp)`);
      return undefined;
    }
    if (attr(pf, 'dev')) {
      log.refuse(`${pat}@dev`, 'a forward bound to one host interface has no equivalent; give its address instead');
      return undefined;
    }
    // libvirt's default is every address; the answers name one, so the carried forward says 0.0.0.0.
    const listen = attr(pf, 'address') ?? '0.0.0.0';
    if (!attr(pf, 'address'))
      log.secureDefault(`${pat}@address`, 'no address: forwarded on every IPv4 address (0.0.0.0); narrow it to one');
    for (const [j, r] of kids(pf, 'range').entries()) {
      const rat = `${pat}/range[${j + 1}]`;
      if (attr(r, 'exclude') === 'yes') {
        log.refuse(`${rat}@exclude`, 'excluded ranges have no equivalent: forward the ports you mean, one by one');
        return undefined;
      }
      const start = Number(attr(r, 'start'));
      const end = attr(r, 'end') === undefined ? start : Number(attr(r, 'end'));
      const to = attr(r, 'to') === undefined ? start : Number(attr(r, 'to'));
      if (![start, end, to].every((x) => Number.isInteger(x) && x > 0 && x <= 65535) || end < start) {
        log.refuse(`${rat}`, 'a range needs start (and end, to) ports from 1 to 65535, end not below start');
        return undefined;
      }
      if (out.length + end - start + 1 > MAX_FORWARDED_PORTS) {
        log.refuse(`${rat}`, `more than ${MAX_FORWARDED_PORTS} forwarded ports; the answers list each one`);
        return undefined;
      }
      for (let p = start; p <= end; p++)
        out.push({ protocol, listen, port: p, ...(to !== start ? { guestPort: to + (p - start) } : {}) });
    }
  }
  return out;
}

/**
 * The first interface: bridge or ethernet becomes a tap; user stays user-mode networking, served by passt; a
 * libvirt NAT network becomes passt's user-mode networking too, with the change named.
 */
function interfaces({ dom, d: { guest: g, prov, log } }: Domain): void {
  const dev = kid(dom, 'devices');
  kids(dev, 'interface').forEach((n, i) => {
    const at = `devices/interface[${i + 1}]`;
    const type = attr(n, 'type') ?? '';
    if (NET_REFUSED[type]) return log.refuse(`${at}@type`, `"${type}": ${NET_REFUSED[type]}`);
    if (type !== 'bridge' && type !== 'ethernet' && type !== 'user' && type !== 'network')
      return log.refuse(`${at}@type`, `"${type}" interfaces are not supported`);
    if (kid(n, 'vlan'))
      return log.refuse(
        `${at}/vlan`,
        'VLAN tags have no equivalent; without them the guest would land on the untagged network',
      );
    if (g.network) return log.secureDefault(at, 'only one network interface per guest is carried; this one is not');
    const net: Record<string, unknown> = {};
    if (type === 'network') {
      const name = attr(kid(n, 'source'), 'network') ?? '';
      net.mode = 'user';
      net.backend = 'passt';
      log.secureDefault(
        `${at}/source@network`,
        `libvirt network "${name}" (libvirt's NAT, dnsmasq and firewall rules on its bridge) becomes user-mode networking from passt in a unit of its own: the guest still reaches out through the host, with the host's own address, but is no longer on that network, reachable from the host or from other guests at its old address; forward the ports it serves (network.forwards), or attach it to a bridge (type="bridge") instead`,
      );
      if (kid(n, 'portForward')) return log.refuse(`${at}/portForward`, 'port forwards belong to type="user" (passt)');
    } else if (type === 'user') {
      net.mode = 'user';
      net.backend = 'passt';
      const backend = attr(kid(n, 'backend'), 'type');
      if (backend === 'passt') log.carry(`${at}/backend@type`, 'user-mode networking from passt, in a unit of its own');
      else
        log.secureDefault(
          backend ? `${at}/backend@type` : at,
          `user-mode networking${backend ? ` ("${backend}")` : ''} inside QEMU (slirp) becomes passt, in a unit of its own: QEMU keeps no IP socket`,
        );
      for (const k of ['logFile', 'upstream'])
        if (attr(kid(n, 'backend'), k) || (k === 'upstream' && kid(kid(n, 'backend'), 'upstream')))
          log.secureDefault(
            `${at}/backend@${k}`,
            'not carried: passt logs to the journal, and follows the host’s route',
          );
      const forwards = portForwards(n, at, log);
      if (forwards === undefined) return;
      if (forwards.length) {
        net.forwards = forwards;
        prov.push(['network.forwards', `${at}/portForward`]);
        log.carry(`${at}/portForward`, `${forwards.length} forwarded port${forwards.length === 1 ? '' : 's'}`);
      }
    } else {
      net.mode = 'tap';
      const bridge = attr(kid(n, 'source'), 'bridge');
      if (type === 'bridge') {
        if (!bridge) return log.refuse(`${at}/source@bridge`, 'a bridge interface without a bridge name');
        net.bridge = bridge;
        prov.push(['network.bridge', `${at}/source@bridge`]);
      }
      const tap = attr(kid(n, 'target'), 'dev');
      if (tap && /^[a-z][a-z0-9-]{0,14}$/.test(tap) && !/^(vnet|macvtap|macvlan)\d+$/.test(tap)) {
        net.tapDevice = tap;
        prov.push(['network.tapDevice', `${at}/target@dev`]);
      } else if (tap)
        log.secureDefault(
          `${at}/target@dev`,
          `tap name "${tap}" is libvirt's or not valid here; the bundle names its own`,
        );
      const drv = attr(kid(n, 'driver'), 'name');
      net.vhost = drv !== 'qemu';
      log.carry(
        at,
        `tap device${net.tapDevice ? ` ${net.tapDevice as string}` : ''}${bridge ? ` on bridge ${bridge}` : ''}${net.vhost ? ' with vhost-net' : ''}`,
      );
      if (kid(n, 'script'))
        log.secureDefault(
          `${at}/script`,
          'the ifup script is not run: QEMU may not spawn programs; the bundle creates the tap beforehand',
        );
    }
    // The guest keeps its MAC (DHCP reservations, firewall rules and its own NIC names depend on it); the schema
    // refuses only what no network card may have.
    const mac = attr(kid(n, 'mac'), 'address');
    if (mac) {
      net.mac = mac.toLowerCase();
      prov.push(['network.mac', `${at}/mac@address`]);
      log.carry(`${at}/mac@address`, `MAC ${mac.toLowerCase()}`);
    }
    const model = attr(kid(n, 'model'), 'type');
    if (model && model !== 'virtio') log.secureDefault(`${at}/model@type`, `"${model}" becomes virtio-net`);
    for (const tag of ['filterref', 'bandwidth', 'port', 'portOptions'])
      if (kid(n, tag))
        log.secureDefault(
          `${at}/${tag}`,
          tag === 'filterref'
            ? 'the libvirt network filter is not carried; filter on the bridge or host firewall'
            : 'not carried',
        );
    prov.push(['network', at]);
    g.network = net;
  });
}

/**
 * Host directories shared into the guest (<filesystem type='mount'>, virtiofs or 9p): shared folders, served on the
 * bundle's host as its release can (virtiofsd in a unit of its own, or QEMU's 9p). A writable one keeps its
 * writes, as the risk "share-writable", whose reason the operator gives; libvirt's owner mapping (accessmode) and
 * virtiofsd's own settings are the bundle's choice, named. Other kinds (a file, a block device, RAM) are refused.
 */
function filesystems({ dom, d }: Domain): void {
  const { guest: g, prov, log } = d;
  const shares: Record<string, unknown>[] = [];
  kids(kid(dom, 'devices'), 'filesystem').forEach((f, i) => {
    const at = `devices/filesystem[${i + 1}]`;
    const type = attr(f, 'type') ?? 'mount';
    if (type !== 'mount')
      return log.refuse(`${at}@type`, `"${type}" filesystems are not supported: only a host directory (type="mount")`);
    const driver = attr(kid(f, 'driver'), 'type') ?? 'path';
    if (driver !== 'virtiofs' && driver !== 'path')
      return log.refuse(`${at}/driver@type`, `"${driver}" is not a way the bundle shares a folder (virtiofs, path)`);
    const path = attr(kid(f, 'source'), 'dir');
    const tag = attr(kid(f, 'target'), 'dir');
    if (!path) return log.refuse(`${at}/source@dir`, 'a shared folder without its host directory');
    if (!tag) return log.refuse(`${at}/target@dir`, 'a shared folder without the tag the guest mounts it by');
    const readOnly = kid(f, 'readonly') !== undefined;
    prov.push([`shares.${shares.length}`, at]);
    shares.push({ path, tag, readOnly });
    log.carry(at, `shared folder ${path} as "${tag}" (${readOnly ? 'read-only' : 'writable'})`);
    if (!readOnly) takesRisk(d, 'share-writable', at, `the guest writes ${path}`);
    const mode = attr(f, 'accessmode');
    if (mode && mode !== 'passthrough')
      log.secureDefault(
        `${at}@accessmode`,
        `"${mode}" is not carried: virtiofsd maps every guest owner to the guest's user, and 9p keeps the guest's owners in extended attributes`,
      );
    for (const k of ['binary', 'idmap'])
      if (kid(f, k))
        log.secureDefault(
          `${at}/${k}`,
          'not carried: the bundle runs its own virtiofsd, as the guest’s user, with its own settings',
        );
  });
  if (shares.length) g.shares = shares;
}

/** The first graphics device, on a unix socket unless qemu.conf turns TLS on for it. */
function graphics({ dom, d: { guest: g, prov, log }, conf, confName }: Domain): void {
  const dev = kid(dom, 'devices');
  kids(dev, 'graphics').forEach((gr, i) => {
    const at = `devices/graphics[${i + 1}]`;
    if (g.display) return log.secureDefault(at, 'only one display per guest is carried; this one is not');
    const type = attr(gr, 'type') ?? '';
    const listens = kids(gr, 'listen');
    const sock = attr(gr, 'socket') ?? listens.map((l) => attr(l, 'socket')).find(Boolean) ?? undefined;
    const listenSocket = sock !== undefined || listens.some((l) => attr(l, 'type') === 'socket');
    const addr = attr(gr, 'listen') ?? listens.map((l) => attr(l, 'address')).find(Boolean);
    const ln = listens.find((l) => attr(l, 'type') === 'network');
    if (attr(gr, 'passwd') !== undefined)
      log.secureDefault(
        `${at}@passwd`,
        'the VNC password is not carried (it would sit in clear text in the answers); VNC is reached through its unix socket or with TLS client certificates',
      );
    if (type === 'vnc' || type === 'spice') {
      const tls = type === 'vnc' ? conf.vncTls : conf.spiceTls;
      const listen = addr ?? (type === 'vnc' ? conf.vncListen : conf.spiceListen);
      const port = Number(attr(gr, type === 'vnc' ? 'port' : 'tlsPort') ?? attr(gr, 'port') ?? '-1');
      const local = type === 'vnc' ? 'vnc-unix' : 'spice-unix';
      const name = type.toUpperCase();
      if (listenSocket) {
        g.display = { mode: local };
        log.carry(at, `${name} on a unix socket (the bundle's own path under the guest's runtime directory)`);
      } else if (ln) {
        g.display = { mode: local };
        log.secureDefault(
          at,
          `${name} listens on libvirt network "${attr(ln, 'network') ?? ''}", which has no equivalent: ${name} on a unix socket instead, reachable only from the host`,
        );
      } else if (tls && type === 'spice') {
        g.display = { mode: local };
        log.secureDefault(
          at,
          `SPICE with TLS on ${listen} is not carried: spice-server checks no client certificate, so the bundle requires a password file (display.passwordFile), which libvirt does not keep as one; SPICE on a unix socket instead, reachable only from the host`,
        );
      } else if (tls) {
        const p = port >= (type === 'vnc' ? 5900 : 1024) ? port : 5900;
        g.display = {
          mode: type === 'vnc' ? 'vnc-tls' : 'spice-tls',
          listen,
          port: p,
          tlsDir: type === 'vnc' ? conf.vncTlsDir : conf.spiceTlsDir,
        };
        log.carry(
          at,
          `${name} with TLS on ${listen}:${p}, certificates from ${type === 'vnc' ? conf.vncTlsDir : conf.spiceTlsDir} (${confName})`,
        );
        if (p !== port) log.secureDefault(`${at}@autoport`, `no fixed port; ${p} chosen (check it is free)`);
        const plain = Number(attr(gr, 'port') ?? '-1');
        if (type === 'spice' && attr(gr, 'tlsPort') && plain > 0)
          log.secureDefault(
            `${at}@port`,
            `the plaintext SPICE port ${plain} is not opened: every channel goes over TLS on ${p}`,
          );
      } else {
        g.display = { mode: local };
        log.secureDefault(
          at,
          `${name} on ${listen}${port > 0 ? `:${port}` : ''} without TLS (${type}_tls is off in ${confName}) is not carried: ${name} on a unix socket instead, reachable only from the host`,
        );
      }
      prov.push(['display', at], ['display.listen', `${at}@listen`], ['display.tlsDir', confName]);
      if (kid(gr, 'websocket') || attr(gr, 'websocket'))
        log.secureDefault(`${at}@websocket`, 'the websocket listener is not carried');
    } else log.secureDefault(`${at}@type`, `"${type}" display is not carried; the guest has no display`);
  });
}

/** PCI devices (with their IOMMU group on this host) and USB devices by vendor and product. */
function hostdevs({ dom, d }: Domain): void {
  const { guest: g, prov, log } = d;
  const dev = kid(dom, 'devices');
  const pci: Record<string, unknown>[] = [];
  const usb: Record<string, unknown>[] = [];
  kids(dev, 'hostdev').forEach((h, i) => {
    const at = `devices/hostdev[${i + 1}]`;
    const type = attr(h, 'type');
    if (attr(h, 'mode') !== 'subsystem')
      return log.refuse(`${at}@mode`, `"${attr(h, 'mode') ?? ''}" host devices are not supported`);
    const src = kid(h, 'source');
    if (type === 'pci') {
      const a = kid(src, 'address');
      const hex = (v: string | undefined, len: number) =>
        v ? v.replace(/^0x/i, '').toLowerCase().padStart(len, '0') : undefined;
      const address = `${hex(attr(a, 'domain') ?? '0', 4)}:${hex(attr(a, 'bus'), 2)}:${hex(attr(a, 'slot'), 2)}.${(attr(a, 'function') ?? '0').replace(/^0x/i, '')}`;
      if (!/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(address))
        return log.refuse(`${at}/source/address`, `"${address}" is not a PCI address`);
      const group = iommuGroupOf(d, address, `${at}/source/address`);
      if (group === undefined) return;
      prov.push([`passthrough.pci.${pci.length}`, `${at}/source/address`]);
      pci.push({ address, iommuGroup: group });
      log.carry(at, `PCI device ${address} (IOMMU group ${group})`);
      takesRisk(d, 'pci-passthrough', at, `PCI device ${address} (IOMMU group ${group})`);
    } else if (type === 'usb') {
      const v = attr(kid(src, 'vendor'), 'id');
      const p = attr(kid(src, 'product'), 'id');
      if (!v || !p)
        return log.refuse(
          `${at}/source`,
          'a USB device chosen by bus and port, not by vendor and product, cannot be carried',
        );
      const id = (x: string) => x.replace(/^0x/i, '').toLowerCase();
      prov.push([`passthrough.usb.${usb.length}`, `${at}/source`]);
      usb.push({ vendorId: id(v), productId: id(p) });
      log.carry(at, `USB device ${id(v)}:${id(p)}`);
      takesRisk(d, 'usb-passthrough', at, `USB device ${id(v)}:${id(p)}`);
    } else log.refuse(`${at}@type`, `"${type ?? ''}" host devices (SCSI, mediated) are not supported`);
  });
  if (pci.length || usb.length) g.passthrough = { pci, usb };
}

/** Serial consoles all become the bundle's own, on a unix socket and logged. */
function consoles({ dom, d: { log } }: Domain): void {
  const dev = kid(dom, 'devices');
  for (const k of ['serial', 'console']) {
    kids(dev, k).forEach((c, i) => {
      const type = attr(c, 'type') ?? 'pty';
      const at = `devices/${k}[${i + 1}]`;
      if (['pty', 'unix', 'file', 'null', 'vc', 'stdio'].includes(type))
        log.carry(at, `serial console (${type}) → the bundle's serial console on a unix socket, logged`);
      else
        log.secureDefault(
          `${at}@type`,
          `"${type}" (reachable over the network or a host device) becomes the bundle's serial console on a unix socket, logged`,
        );
    });
  }
}

/** Every other device: refused when leaving it out would change what the guest is, otherwise not carried. */
function otherDevices({ dom, d: { log } }: Domain): void {
  const dev = kid(dom, 'devices');
  if (!dev) return;
  const refusedDevices: Record<string, string> = {
    shmem: 'memory shared with other processes is not supported',
  };
  const defaulted: Record<string, string> = {
    redirdev: 'USB redirection from a SPICE client is not carried',
    smartcard: 'smartcard forwarding is not carried',
    channel: 'guest channels (e.g. the guest agent) are not carried',
    parallel: 'not carried',
    rng: 'the virtio RNG is not carried',
    watchdog: 'not carried',
    sound: 'not carried',
    audio: 'not carried',
    panic: 'not carried',
    vsock: 'not carried',
    iommu: 'the virtual IOMMU is not carried',
    hub: 'not carried',
    lease: 'not carried',
    nvram: 'not carried',
    crypto: 'not carried',
    pstore: 'not carried',
  };
  for (const k of Object.keys(dev)) {
    if (k.startsWith('@') || k === '#text' || STRUCTURAL_DEVICES.has(k) || k === 'serial' || k === 'console') continue;
    const n = kids(dev, k).length;
    if (refusedDevices[k]) log.refuse(`devices/${k}`, refusedDevices[k]!);
    else
      log.secureDefault(
        `devices/${k}`,
        `${n > 1 ? `${n} devices: ` : ''}${defaulted[k] ?? 'not carried: qemu-harden has no equivalent'}`,
      );
  }
}

/**
 * `<tpm>`: an emulated TPM 2.0 (libvirt's swtpm) becomes the guest's own swtpm in the bundle, and its state is named
 * in the report as a copy the operator makes, never dropped without a word. A TPM 1.2, the host's own TPM passed
 * through, and state encrypted with a libvirt secret are refused: the bundle could carry none of them.
 */
function tpm({ dom, d: { guest: g, prov, log } }: Domain): void {
  kids(kid(dom, 'devices'), 'tpm').forEach((t, i) => {
    const at = `devices/tpm[${i + 1}]`;
    if (i > 0) return log.refuse(at, 'a second TPM: a guest has one');
    const backend = kid(t, 'backend');
    const type = attr(backend, 'type');
    const model = attr(t, 'model') ?? 'tpm-tis';
    if (type !== 'emulator')
      return log.refuse(
        `${at}/backend@type`,
        type === 'passthrough'
          ? 'the host’s own TPM passed through: the bundle gives each guest a TPM of its own (swtpm), never the host’s'
          : type === undefined
            ? 'no <backend type=...>: which TPM the guest has is not said'
            : `"${type}" is not a TPM the bundle can give a guest`,
      );
    const version = attr(backend, 'version') ?? (model === 'tpm-crb' ? '2.0' : undefined);
    if (version !== '2.0')
      return log.refuse(
        `${at}/backend@version`,
        version === undefined
          ? "not given for a tpm-tis TPM: libvirt chooses 1.2 or 2.0 by its own version, so which TPM this guest has is not known; write version='2.0' if the guest has a TPM 2.0 (a TPM 1.2 cannot be carried)"
          : `"${version}": the bundle gives a guest a TPM 2.0 only, and a TPM ${version}’s state cannot become one; refusing rather than giving the guest a different TPM`,
      );
    if (kid(backend, 'encryption'))
      return log.refuse(
        `${at}/backend/encryption`,
        'the TPM’s state is encrypted with a libvirt secret, which the bundle’s swtpm has no key for; refusing rather than starting the guest with a new, empty TPM',
      );
    if (model !== 'tpm-crb' && model !== 'tpm-tis')
      return log.refuse(`${at}@model`, `"${model}" is not a TPM interface of an x86 guest`);
    g.tpm = 'tpm2';
    prov.push(['tpm', at]);
    log.carry(at, 'TPM 2.0 (emulated): the guest’s own swtpm, in a unit of its own, as the guest’s user');
    if (model === 'tpm-tis')
      log.secureDefault(
        `${at}@model`,
        '"tpm-tis" becomes tpm-crb, TPM 2.0’s own interface; the TPM’s keys are its state, which the copy this report names keeps',
      );
    if (attr(backend, 'active_pcr_banks') || kid(backend, 'active_pcr_banks'))
      log.secureDefault(
        `${at}/backend/active_pcr_banks`,
        'not carried: a new TPM gets a SHA-256 bank, and a carried state keeps the banks it has',
      );
    const source = kid(backend, 'source');
    const uuid = childText(dom, 'uuid');
    const single = attr(source, 'type') === 'file';
    const from =
      attr(source, 'path') ??
      (uuid
        ? `/var/lib/libvirt/swtpm/${uuid}/tpm2/tpm2-00.permall`
        : '/var/lib/libvirt/swtpm/UUID/tpm2/tpm2-00.permall (UUID: virsh domuuid of this domain)');
    log.copy(
      at,
      single
        ? 'the TPM’s state (its keys, BitLocker’s among them), in swtpm’s single-file format: convert it into the directory before the guest first starts, as docs/windows.md says ("Carrying a TPM’s state"); without it the guest starts with a new, empty TPM'
        : 'the TPM’s state (its keys, BitLocker’s among them): copy tpm2-00.permall into the directory before the guest first starts, owned by the guest’s user, mode 0600; without it the guest starts with a new, empty TPM',
      attr(source, 'type') === 'dir' && attr(source, 'path') ? `${from}/tpm2-00.permall` : from,
      N.tpmStateDir,
    );
  });
}

/** Confidential computing, an unconfined seclabel, and migration without TLS in qemu.conf. */
function security({ dom, d: { log }, conf, confName }: Domain): void {
  if (kid(dom, 'launchSecurity'))
    log.refuse(
      'launchSecurity',
      'confidential-computing guests (SEV, SEV-SNP, TDX, s390 PV) need firmware and host support the bundle does not set up; running the guest without it would silently drop that protection',
    );
  if (kid(dom, 'seclabel') && kids(dom, 'seclabel').some((s) => attr(s, 'type') === 'none'))
    log.secureDefault(
      'seclabel@type',
      '"none" is not carried: the bundle confines every guest (its own user, systemd sandbox, AppArmor profile)',
    );
  if (conf.migrateTlsForce === false)
    log.secureDefault(
      `${confName}: migrate_tls_force`,
      'migration without TLS is not carried; the bundle opens no migration listener unless you add one with TLS',
    );
}

/** The libvirt answer source: domain XML documents → `{ document, report }` (document null when refused). */
export function fromLibvirt(inputs: SourceInput[], opts: LibvirtOptions) {
  return importDocuments(
    'libvirt',
    inputs,
    (text, file) => importDomain(text, file, opts),
    (m, file) => (m.startsWith(`${file}: `) ? m.slice(file.length + 2) : m),
  );
}

/** `import libvirt`: domain XML files or the running domains (virsh dumpxml), completed by qemu.conf. */
export const libvirt: ImportSource = {
  kind: 'libvirt',
  inputs: 'DOMAIN.xml...',
  input: 'a domain XML file',
  config: { flag: '--qemu-conf', path: '/etc/libvirt/qemu.conf', what: 'qemu.conf' },
  running: {
    flag: '--running',
    what: 'domains',
    tool: 'virsh',
    debianPackage: 'libvirt-clients',
    list: ['list', '--name'],
    // Without --security-info: no passwords.
    dump: (name) => ['dumpxml', '--', name],
  },
  import: (inputs, config, host) =>
    fromLibvirt(inputs, {
      host,
      ...(config ? { qemuConf: parseQemuConf(config.text, config.file), qemuConfFile: config.file } : {}),
    }),
};
