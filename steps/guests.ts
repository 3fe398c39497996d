import type { Guest } from '../src/model.js';
import { OVMF } from '../src/releases.js';
import { isSecuritySupportedMachine } from '../src/rules.js';
import { newGuest, type Draft, type GuestDraft } from './draft.js';
import { g, optionsOf, setGuestKey, type Field, type Step, type StepContext } from './fields.js';

const FIRMWARE: Record<Guest['firmware']['type'], string> = {
  bios: 'BIOS (SeaBIOS)',
  uefi: 'UEFI (OVMF, own vars file)',
};

const TPM: Record<Guest['tpm'], string> = {
  none: 'none',
  tpm2: 'TPM 2.0 from its own swtpm (Windows 11 needs one)',
};

type Uefi = Extract<NonNullable<GuestDraft['firmware']>, { type: 'uefi' }>;
const uefiOf = (d: Draft, gi: number): Uefi | undefined => {
  const fw = d.guests[gi]!.firmware;
  return fw?.type === 'uefi' ? fw : undefined;
};

/**
 * Secure Boot on switches firmware files still at the plain build to the Secure Boot build (which is what
 * enforcing needs), and off switches them back; files the operator typed stay as typed.
 */
function setSecureBoot(d: Draft, gi: number, on: boolean): Draft {
  const fw: Uefi = { ...uefiOf(d, gi), type: 'uefi' };
  const swap = (key: 'code' | 'varsTemplate', plain: string, secure: string) => {
    if (on && (fw[key] === undefined || fw[key] === plain)) fw[key] = secure;
    if (!on && fw[key] === secure) delete fw[key];
  };
  swap('code', OVMF.code, OVMF.secureCode);
  swap('varsTemplate', OVMF.vars, OVMF.secureVars);
  if (on) fw.secureBoot = true;
  else delete fw.secureBoot;
  return setGuestKey(d, gi, 'firmware', fw);
}

function firmwareFields(ctx: StepContext): Field[] {
  const gi = ctx.guest;
  const out: Field[] = [
    {
      label: 'Firmware',
      kind: 'select',
      path: g(ctx, 'firmware', 'type'),
      fallback: () => 'bios',
      options: optionsOf(FIRMWARE),
      set: (d, v) =>
        v === 'uefi'
          ? uefiOf(d, gi)
            ? d
            : setGuestKey(d, gi, 'firmware', { type: 'uefi' })
          : setGuestKey(d, gi, 'firmware', { type: 'bios' }),
    },
  ];
  if (!uefiOf(ctx.draft, gi)) return out;
  const setFile = (key: 'code' | 'varsTemplate') => (d: Draft, v: unknown) => {
    const fw: Uefi = { ...uefiOf(d, gi), type: 'uefi' };
    if (v === undefined) delete fw[key];
    else fw[key] = String(v);
    return setGuestKey(d, gi, 'firmware', fw);
  };
  return [
    ...out,
    {
      label: 'Secure Boot',
      kind: 'toggle',
      path: g(ctx, 'firmware', 'secureBoot'),
      fallback: () => false,
      hint: 'SMM on, flash writable only from SMM; needs q35 and OVMF’s Secure Boot build with enrolled keys',
      set: (d, v) => setSecureBoot(d, gi, v === true),
    },
    {
      label: 'UEFI code (read-only)',
      kind: 'text',
      path: g(ctx, 'firmware', 'code'),
      // The schema's default, which follows Secure Boot.
      fallback: (d) => (uefiOf(d, gi)?.secureBoot ? OVMF.secureCode : OVMF.code),
      set: setFile('code'),
    },
    {
      label: 'UEFI vars template',
      kind: 'text',
      path: g(ctx, 'firmware', 'varsTemplate'),
      fallback: (d) => (uefiOf(d, gi)?.secureBoot ? OVMF.secureVars : OVMF.vars),
      hint: 'copied once into the guest’s own vars file',
      set: setFile('varsTemplate'),
    },
  ];
}

/** CPU features as typed: "+feature -feature", one list entry per word (kept while typing, spaces and all). */
function featuresField(ctx: StepContext): Field {
  const gi = ctx.guest;
  return {
    label: 'CPU features',
    kind: 'text',
    path: g(ctx, 'cpu', 'features'),
    hint: '+feature or -feature, separated by spaces; empty: the model’s own',
    value: (d) => (d.guests[gi]!.cpu?.features ?? []).join(' '),
    set: (d, v) => {
      const cpu = { ...(d.guests[gi]!.cpu ?? {}) };
      if (v === undefined || v === '') delete cpu.features;
      else cpu.features = String(v).split(' ');
      return setGuestKey(d, gi, 'cpu', Object.keys(cpu).length ? cpu : undefined);
    },
  };
}

/** The binary's own list when the probe has it (only those are offered), else free text the schema checks. */
function machineField(ctx: StepContext): Field {
  const machines = ctx.host?.qemu.machines ?? [];
  const field: Field = {
    label: 'Machine type',
    kind: 'text',
    path: g(ctx, 'machine'),
    fallback: () => 'q35',
    hint: 'q35, pc, or a versioned pc-q35-*/pc-i440fx-*',
  };
  if (machines.length === 0) return field;
  const ranked = [
    ...machines.filter(isSecuritySupportedMachine),
    ...machines.filter((m) => !isSecuritySupportedMachine(m)),
  ];
  return {
    ...field,
    kind: 'select',
    options: ranked.map((m) => ({ value: m, label: m })),
    hint: `${machines.length} machine types of ${ctx.host!.qemu.binary}; type to jump`,
  };
}

function cpuField(ctx: StepContext): Field {
  const models = ctx.host?.qemu.cpuModels ?? [];
  const auto = ctx.draft.useCase === 'emulation' ? 'max' : 'host';
  const options = [{ value: '', label: `default (${auto})` }, ...models.map((m) => ({ value: m, label: m }))];
  return {
    label: 'CPU model',
    kind: models.length ? 'select' : 'text',
    path: g(ctx, 'cpu', 'model'),
    options: models.length ? options : undefined,
    hint: models.length ? `${models.length} CPU models of ${ctx.host!.qemu.binary}; type to jump` : `empty: ${auto}`,
    set: (d, v) => {
      const cpu = { ...(d.guests[ctx.guest]!.cpu ?? {}) };
      if (v === undefined || v === '') delete cpu.model;
      else cpu.model = String(v);
      return setGuestKey(d, ctx.guest, 'cpu', Object.keys(cpu).length ? cpu : undefined);
    },
  };
}

export const guests: Step = {
  id: 'guests',
  title: 'Guests',
  perGuest: true,
  why: [
    'Each guest gets its own system user, its own unit and its own AppArmor profile: a guest that takes',
    'over its QEMU process lands in an account that owns nothing but that guest. The machine type matters',
    'too: only the pc and q35 families are covered by QEMU’s security promise for virtualization.',
    'A TPM keeps the guest’s own secrets (BitLocker’s keys), so its state is as sensitive as the disk: its',
    'swtpm runs in a unit of its own as the guest’s user, under its own AppArmor profile, and QEMU never reads',
    'that state. Windows 11 needs a TPM 2.0 and Secure Boot.',
  ],
  notes: (ctx) => {
    const guest = ctx.draft.guests[ctx.guest];
    const m = String(guest?.machine ?? 'q35');
    const cpu = guest?.cpu?.model;
    const q = ctx.host?.qemu;
    return [
      ...(ctx.draft.useCase === 'virtualization' && !isSecuritySupportedMachine(m)
        ? [`Machine type "${m}" is outside the security-supported list: you will be asked to accept that risk.`]
        : []),
      ...(q?.machines.length && !q.machines.includes(m)
        ? [`"${m}" is not a machine type of ${q.binary}: choose one it has (←/→).`]
        : []),
      ...(q?.cpuModels.length && cpu && !q.cpuModels.includes(cpu)
        ? [`CPU model "${cpu}" is not one of ${q.binary}'s: choose one it has (←/→).`]
        : []),
    ];
  },
  scope: (ctx) => [
    { path: g(ctx, 'cpu'), label: 'CPU' },
    { path: g(ctx, 'firmware'), label: 'Firmware' },
  ],
  owns: (ctx) => [{ path: `guests.${ctx.guest}`, label: 'Guest' }],
  fields: (ctx) => [
    { label: 'Name', kind: 'text', path: g(ctx, 'name') },
    { label: 'vCPUs', kind: 'number', path: g(ctx, 'vcpus'), fallback: () => 1 },
    { label: 'Memory (MiB)', kind: 'number', path: g(ctx, 'memoryMiB'), fallback: () => 1024 },
    machineField(ctx),
    cpuField(ctx),
    featuresField(ctx),
    ...firmwareFields(ctx),
    {
      label: 'TPM',
      kind: 'select',
      path: g(ctx, 'tpm'),
      fallback: () => 'none',
      options: optionsOf(TPM),
      hint: 'it keeps the guest’s own secrets (BitLocker keys): its state is as sensitive as the disk',
    },
    { label: 'Description', kind: 'text', path: g(ctx, 'description'), hint: 'optional; the unit’s Description=' },
  ],
  addLabel: 'add guest',
  add: (ctx) => ({ ...ctx.draft, guests: [...ctx.draft.guests, newGuest(ctx.draft.guests.length + 1, ctx.host)] }),
  afterAdd: (ctx) => ({ guest: ctx.draft.guests.length - 1, field: 0 }),
  remove: (ctx) => {
    const { guests } = ctx.draft;
    if (guests.length === 1) return 'The only guest cannot be removed: the answers need at least one.';
    return {
      what: `guest ${ctx.guest + 1} "${String(guests[ctx.guest]!.name ?? '')}" and all its answers`,
      draft: { ...ctx.draft, guests: guests.filter((_, i) => i !== ctx.guest) },
    };
  },
};
