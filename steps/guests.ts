import { isSecuritySupportedMachine } from '../src/rules.js';
import { newGuest } from './draft.js';
import { g, setGuestKey, type Field, type Step, type StepContext } from './fields.js';

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
  scope: (ctx) => [g(ctx, 'cpu')],
  owns: (ctx) => [`guests.${ctx.guest}`],
  fields: (ctx) => [
    { label: 'Name', kind: 'text', path: g(ctx, 'name') },
    { label: 'vCPUs', kind: 'number', path: g(ctx, 'vcpus'), fallback: () => 1 },
    { label: 'Memory (MiB)', kind: 'number', path: g(ctx, 'memoryMiB'), fallback: () => 1024 },
    machineField(ctx),
    cpuField(ctx),
    {
      label: 'Firmware',
      kind: 'select',
      path: g(ctx, 'firmware', 'type'),
      fallback: () => 'bios',
      options: [
        { value: 'bios', label: 'BIOS (SeaBIOS)' },
        { value: 'uefi', label: 'UEFI (OVMF, own vars file)' },
      ],
      set: (d, v) => setGuestKey(d, ctx.guest, 'firmware', v === 'uefi' ? { type: 'uefi' } : { type: 'bios' }),
    },
  ],
  addLabel: 'add guest',
  add: (ctx) => ({ ...ctx.draft, guests: [...ctx.draft.guests, newGuest(ctx.draft.guests.length + 1, ctx.host)] }),
  afterAdd: (ctx) => ({ guest: ctx.draft.guests.length - 1, field: 0 }),
  remove: (ctx) =>
    ctx.draft.guests.length > 1
      ? { ...ctx.draft, guests: ctx.draft.guests.filter((_, i) => i !== ctx.guest) }
      : ctx.draft,
};
