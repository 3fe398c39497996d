// The answers model: one zod schema for everything the operator decides. The wizard, presets, answers files
// and `--set` all end up here; every generator takes only what this module returns. The rules that span fields
// (src/rules.ts) are typed by this schema and joined to it in src/answers.ts, so this module imports no policy.
import { z } from 'zod';
import { CONFINEMENTS } from './confinement.js';
import { GUEST_NAME, MAX_SHARES } from './names.js';
import { DEFAULT_TARGET, OVMF, TARGETS } from './releases.js';

export const SCHEMA_VERSION = 1;

const noControl = (s: string) => !/[\u0000-\u001f\u007f]/.test(s);

export const absolutePath = z
  .string()
  .min(2, 'must be an absolute path')
  .max(1024, 'is longer than 1024 characters')
  .refine(noControl, 'must not contain newlines, NUL or other control characters')
  .refine((p) => p.startsWith('/'), 'must be an absolute path (start with /)')
  .refine((p) => !p.split('/').includes('..') && !p.split('/').includes('.'), 'must not contain "." or ".." segments')
  .refine((p) => !p.includes('//') && !p.endsWith('/'), 'must be a normalised path: no "//" and no trailing "/"');

export const guestName = z
  .string()
  .regex(
    GUEST_NAME,
    'must be 1-24 characters: lower-case letters, digits and "-", starting with a letter and not ending with "-"',
  );

/**
 * What `import` writes where only a person can give the reason for a risk: a request in angle brackets, which
 * the schema refuses until the operator replaces it with a reason of their own.
 */
export const reasonPlaceholder = (request: string) => `<${request}>`;
export const isReasonPlaceholder = (reason: string) => /^<.*>$/.test(reason.trim());

const reason = z
  .string()
  .trim()
  .min(10, 'must say in at least 10 characters why the risk is acceptable')
  .max(2000, 'is longer than 2000 characters')
  .refine(noControl, 'must be one line: no newlines or other control characters')
  .refine(
    (r) => !isReasonPlaceholder(r),
    'is still the request import wrote in angle brackets; replace it, brackets and all, with why this risk is acceptable, in your own words',
  );

export const diskSchema = z.strictObject({
  path: absolutePath,
  format: z.enum(['qcow2', 'raw'], { error: 'must be "qcow2" or "raw" (the format is never probed)' }),
  readOnly: z.boolean().default(false),
  blockDevice: z.boolean().default(false),
  throttle: z
    .strictObject({
      readBytesPerSecond: z.int().positive().optional(),
      writeBytesPerSecond: z.int().positive().optional(),
      readIops: z.int().positive().optional(),
      writeIops: z.int().positive().optional(),
    })
    .default({}),
});

const bootFiles = z.strictObject({
  kernel: absolutePath,
  initrd: absolutePath.optional(),
  deviceTree: absolutePath.optional(),
  cmdline: z
    .string()
    .max(4096)
    .refine(noControl, 'must not contain newlines, NUL or other control characters')
    .optional(),
});

/**
 * The firmware. UEFI's files default to the plain build, or with Secure Boot to the Secure Boot build (SMM) and a
 * variables template with Microsoft's keys enrolled: Secure Boot asked for is Secure Boot enforced.
 */
const firmware = z
  .discriminatedUnion('type', [
    z.strictObject({ type: z.literal('bios') }),
    z.strictObject({
      type: z.literal('uefi'),
      code: absolutePath.optional(),
      varsTemplate: absolutePath.optional(),
      /** Enforce UEFI Secure Boot: SMM on and the flash writable only from SMM, so the guest OS cannot change
       * the keys. Needs a q35 machine and a Secure Boot firmware build with enrolled keys. */
      secureBoot: z.boolean().default(false),
    }),
  ])
  // Written out key by key: the answers a bundle keeps read back to the same bytes (apply regenerates from them).
  .transform((f) =>
    f.type === 'bios'
      ? f
      : {
          type: f.type,
          code: f.code ?? (f.secureBoot ? OVMF.secureCode : OVMF.code),
          varsTemplate: f.varsTemplate ?? (f.secureBoot ? OVMF.secureVars : OVMF.vars),
          secureBoot: f.secureBoot,
        },
  );

/** A guest keeps the MAC it has elsewhere (DHCP reservations, firewall rules and the guest's own NIC names depend
 * on it): any unicast address, in either case, kept in lower case. */
const mac = z
  .string()
  .regex(/^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/, 'must be a MAC address: six pairs of hex digits joined by ":"')
  .transform((m) => m.toLowerCase())
  .refine((m) => m !== 'ff:ff:ff:ff:ff:ff', 'is the broadcast address, which no network card may have')
  .refine(
    (m) => m === 'ff:ff:ff:ff:ff:ff' || (parseInt(m.slice(0, 2), 16) & 1) === 0,
    'is a multicast address (the first byte is odd); a network card needs a unicast address',
  )
  .refine((m) => m !== '00:00:00:00:00:00', 'is all zeros, which no network card may have');

const listenAddress = z.union([z.ipv4(), z.ipv6()], { error: 'must be an IPv4 or IPv6 address' });

/** A port of the host forwarded to the guest's user-mode network: the host listens, the guest serves. */
const forward = z.strictObject({
  protocol: z.enum(['tcp', 'udp'], { error: 'must be "tcp" or "udp"' }).default('tcp'),
  /** The host address to listen on: one address, never every address unless the operator writes 0.0.0.0 or ::. */
  listen: listenAddress,
  /** passt runs without capabilities, so it binds no privileged port. */
  port: z
    .int()
    .min(1024, 'must be 1024 or above: the user-mode network runs without capabilities and binds no privileged port')
    .max(65535),
  /** The guest's port, when it differs from the host's. */
  guestPort: z.int().min(1).max(65535).optional(),
});

const network = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('none') }),
  z.strictObject({
    mode: z.literal('user'),
    /** passt, a process of its own in a unit of its own (src/helpers/passt.ts); slirp, the NAT inside QEMU, is a
     * risk accepted by name where passt is not installed. */
    backend: z
      .enum(['passt', 'slirp'], {
        error: 'must be "passt" (the user-mode network in a unit of its own) or "slirp" (inside QEMU)',
      })
      .default('passt'),
    forwards: z.array(forward).max(64).default([]),
    mac: mac.optional(),
  }),
  z.strictObject({
    mode: z.literal('tap'),
    tapDevice: z
      .string()
      .regex(
        /^[a-z][a-z0-9-]{0,14}$/,
        'must be 1-15 characters: lower-case letters, digits and "-", starting with a letter',
      )
      .optional(),
    bridge: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/, 'must be a network interface name of 1-15 characters')
      .optional(),
    vhost: z.boolean().default(true),
    mac: mac.optional(),
  }),
]);

const tlsDir = absolutePath.describe('directory holding ca-cert.pem, server-cert.pem and server-key.pem');
/** A file systemd reads as root and hands to the unit as a credential (LoadCredential=): plain characters only. */
const credentialFile = absolutePath.refine(
  (p) => /^[A-Za-z0-9_@+=,./-]+$/.test(p),
  'must contain only letters, digits and _ @ + = , . / - (systemd reads it through LoadCredential=)',
);
const display = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('none') }),
  z.strictObject({ mode: z.literal('vnc-unix') }),
  z.strictObject({ mode: z.literal('spice-unix') }),
  z.strictObject({
    mode: z.literal('vnc-tls'),
    listen: listenAddress,
    port: z.int().min(5900).max(65535),
    tlsDir,
  }),
  z.strictObject({
    mode: z.literal('spice-tls'),
    listen: listenAddress,
    port: z.int().min(1024).max(65535),
    tlsDir,
    passwordFile: credentialFile.optional(),
  }),
]);

const pciAddress = z
  .string()
  .regex(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/, 'must be a full PCI address like 0000:01:00.0, lower-case');

const usbDevice = z.strictObject({
  vendorId: z.string().regex(/^[0-9a-f]{4}$/, 'must be 4 lower-case hex digits'),
  productId: z.string().regex(/^[0-9a-f]{4}$/, 'must be 4 lower-case hex digits'),
  port: z
    .string()
    .regex(
      /^[1-9][0-9]{0,2}-[1-9][0-9]{0,2}(\.[1-9][0-9]{0,2}){0,6}$/,
      'must be a USB port path like 1-2 or 1-2.3 (bus-port, as named under /sys/bus/usb/devices)',
    )
    .optional(),
});

const remote = z.strictObject({
  enabled: z.boolean().default(false),
  tls: z.boolean().default(true),
  listen: listenAddress.default('127.0.0.1'),
  port: z.int().min(1024).max(65535),
  tlsDir: tlsDir.optional(),
});

export const sandboxSchema = z.strictObject({
  enabled: z.boolean().default(true),
  obsolete: z.enum(['deny', 'allow']).default('deny'),
  elevatePrivileges: z.enum(['deny', 'allow']).default('deny'),
  spawn: z.enum(['deny', 'allow']).default('deny'),
  resourceControl: z.enum(['deny', 'allow']).default('deny'),
});

const limits = z.strictObject({
  cpuWeight: z.int().min(1).max(10000).default(100),
  cpuQuotaPercent: z.int().min(1).max(100_000).optional(),
  memoryHighMiB: z.int().positive().optional(),
  memoryMaxMiB: z.int().positive().optional(),
  ioWeight: z.int().min(1).max(10000).default(100),
  ioBandwidth: z
    .array(
      z.strictObject({
        device: absolutePath,
        readBytesPerSecond: z.int().positive().optional(),
        writeBytesPerSecond: z.int().positive().optional(),
      }),
    )
    .default([]),
  tasksMax: z.int().min(16).max(65536).default(256),
});

/** A host directory shared into the guest (9p inside QEMU, or virtiofsd in a unit of its own: releases.ts). */
export const shareSchema = z.strictObject({
  path: absolutePath,
  /** The name the guest mounts it by (`mount -t 9p TAG` or `mount -t virtiofs TAG`). */
  tag: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$/,
      'must be 1-31 characters: letters, digits, "_", "." and "-", starting with a letter or digit (the name the guest mounts it by)',
    ),
  /** Read-only unless a reason is given: a writable share is the risk "share-writable". */
  readOnly: z.boolean().default(true),
});

export const guestSchema = z.strictObject({
  name: guestName,
  description: z.string().max(200).refine(noControl, 'must not contain control characters').optional(),
  machine: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be a QEMU machine type name like q35 or pc-q35-7.2')
    .default('q35'),
  /** false: the guest has no ACPI (-machine acpi=off), as a guest imported from one started with -no-acpi. It then
   * does not hear the power button that stopping its unit presses. Absent or true: QEMU's default, ACPI on. */
  acpi: z.boolean().optional(),
  /** false: the guest has no HPET (-machine hpet=off), as one imported from -no-hpet. Absent or true: QEMU's
   * default, an HPET on the pc and q35 machines. */
  hpet: z.boolean().optional(),
  cpu: z
    .strictObject({
      model: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be a QEMU CPU model name')
        .optional(),
      features: z
        .array(z.string().regex(/^[+-][a-z0-9][a-z0-9_.-]{0,63}$/, 'must look like +feature or -feature'))
        .default([]),
    })
    .default({ features: [] }),
  vcpus: z.int().min(1).max(512).default(1),
  memoryMiB: z
    .int()
    .min(16)
    .max(4 * 1024 * 1024)
    .default(1024),
  firmware: firmware.default({ type: 'bios' }),
  /** A TPM 2.0 from the guest's own swtpm, in a unit of its own (src/helpers/swtpm.ts); its state is the guest's
   * secrets (BitLocker keys), kept in the guest's state directory. */
  tpm: z
    .enum(['none', 'tpm2'], { error: 'must be "none" or "tpm2" (a TPM 2.0 from the guest’s own swtpm)' })
    .default('none'),
  disks: z.array(diskSchema).max(32).default([]),
  shares: z.array(shareSchema).max(MAX_SHARES).default([]),
  boot: bootFiles.optional(),
  network: network.default({ mode: 'none' }),
  display: display.default({ mode: 'none' }),
  serial: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  passthrough: z
    .strictObject({
      pci: z
        .array(z.strictObject({ address: pciAddress, iommuGroup: z.int().min(0).max(65535) }))
        .max(16)
        .default([]),
      usb: z.array(usbDevice).max(16).default([]),
    })
    .default({ pci: [], usb: [] }),
  migration: remote.optional(),
  nbd: remote.optional(),
  limits: limits.default({ cpuWeight: 100, ioWeight: 100, ioBandwidth: [], tasksMax: 256 }),
  isolation: z
    .strictObject({
      sandbox: sandboxSchema.default({
        enabled: true,
        obsolete: 'deny',
        elevatePrivileges: 'deny',
        spawn: 'deny',
        resourceControl: 'deny',
      }),
      apparmor: z.boolean().default(true),
      /**
       * The guest's SELinux category pair (sVirt's MCS pair, c0 to c1023), where the host's confinement is SELinux.
       * Left out, qemu-harden derives one from the guest's name (src/confine/selinux.ts); set it only where a
       * process of the host that the bundle does not run (a libvirt guest) holds the derived pair already.
       */
      selinuxCategories: z
        .tuple([z.int().min(0).max(1023), z.int().min(0).max(1023)], {
          error: 'must be two category numbers from 0 to 1023, like [12, 345]',
        })
        .refine(([x, y]) => x < y, 'must be two different categories, the lower first')
        .optional(),
    })
    .default({
      sandbox: { enabled: true, obsolete: 'deny', elevatePrivileges: 'deny', spawn: 'deny', resourceControl: 'deny' },
      apparmor: true,
    }),
});

export const acceptedRiskSchema = z.strictObject({
  risk: z.string().regex(/^[a-z][a-z0-9-]*$/, 'must be a risk identifier such as "sandbox-spawn"'),
  guest: guestName.optional(),
  reason,
});

/** The QEMU a bundle runs unless the answers name another. */
export const DEFAULT_QEMU_BINARY = '/usr/bin/qemu-system-x86_64';

export const hostSchema = z.strictObject({
  /** The release the bundle is made for: its QEMU, systemd and AppArmor decide what the files may say. */
  target: z
    .enum(TARGETS, {
      error: `must be one of ${TARGETS.map((t) => `"${t}"`).join(', ')} (the release the bundle is for)`,
    })
    .default(DEFAULT_TARGET),
  qemuBinary: absolutePath.default(DEFAULT_QEMU_BINARY),
  /**
   * The mandatory access control the guests run under: a confinement backend's id, or "none" (an accepted risk).
   * Left out, it is AppArmor (confinement.ts), and it stays left out of the answers written back, so bundles made
   * before it existed regenerate unchanged.
   */
  confinement: z
    .enum(CONFINEMENTS, {
      error: `must be one of ${CONFINEMENTS.map((c) => `"${c}"`).join(', ')} (the mandatory access control of the host)`,
    })
    .optional(),
  kvmGroup: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,30}$/, 'must be a valid group name')
    .default('kvm'),
  netGroup: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,30}$/, 'must be a valid group name')
    .default('qemu-net'),
});

/** The answers document before the cross-field rules: what a draft is checked against while it is edited. */
export const answersObject = z.strictObject({
  schemaVersion: z.literal(SCHEMA_VERSION, {
    error: (issue) =>
      typeof issue.input === 'number' && issue.input > SCHEMA_VERSION
        ? `is ${issue.input}, newer than this qemu-harden understands (${SCHEMA_VERSION}); upgrade qemu-harden`
        : `must be ${SCHEMA_VERSION}`,
  }),
  useCase: z.enum(['virtualization', 'emulation'], {
    error: 'must be "virtualization" (KVM) or "emulation" (TCG)',
  }),
  host: hostSchema.default({
    target: DEFAULT_TARGET,
    qemuBinary: DEFAULT_QEMU_BINARY,
    kvmGroup: 'kvm',
    netGroup: 'qemu-net',
  }),
  guests: z.array(guestSchema).min(1, 'must list at least one guest').max(4096),
  acceptedRisks: z.array(acceptedRiskSchema).default([]),
});

export type AnswersInput = z.input<typeof answersObject>;
export type Answers = z.output<typeof answersObject>;
export type Guest = Answers['guests'][number];
export type Disk = Guest['disks'][number];
export type Share = Guest['shares'][number];
