import { isSecuritySupportedMachine } from '../src/rules.js';
import { newGuest } from '../src/ui/draft.js';
import { g, setGuestKey, type Step } from '../src/ui/fields.js';

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
    const m = String(ctx.draft.guests[ctx.guest]?.machine ?? 'q35');
    return ctx.draft.useCase === 'virtualization' && !isSecuritySupportedMachine(m)
      ? [`Machine type "${m}" is outside the security-supported list: you will be asked to accept that risk.`]
      : [];
  },
  fields: (ctx) => [
    { label: 'Name', kind: 'text', path: g(ctx, 'name') },
    { label: 'vCPUs', kind: 'number', path: g(ctx, 'vcpus') },
    { label: 'Memory (MiB)', kind: 'number', path: g(ctx, 'memoryMiB') },
    { label: 'Machine type', kind: 'text', path: g(ctx, 'machine'), hint: 'q35, pc, or a versioned pc-q35-*/pc-i440fx-*' },
    {
      label: 'Firmware',
      kind: 'select',
      path: g(ctx, 'firmware', 'type'),
      options: [
        { value: 'bios', label: 'BIOS (SeaBIOS)' },
        { value: 'uefi', label: 'UEFI (OVMF, own vars file)' },
      ],
      set: (d, v) => setGuestKey(d, ctx.guest, 'firmware', { type: v }),
    },
  ],
  addLabel: 'add guest',
  add: (ctx) => ({ ...ctx.draft, guests: [...ctx.draft.guests, newGuest(ctx.draft.guests.length + 1, ctx.host)] }),
  remove: (ctx) => (ctx.draft.guests.length > 1 ? { ...ctx.draft, guests: ctx.draft.guests.filter((_, i) => i !== ctx.guest) } : ctx.draft),
};
