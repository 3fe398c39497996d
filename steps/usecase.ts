import type { Answers } from '../src/model.js';
import { optionsOf, type Field, type Step } from './fields.js';

const USE_CASES: Record<Answers['useCase'], string> = {
  virtualization: 'virtualization (KVM)',
  emulation: 'emulation (TCG) — no isolation guarantee',
};

export const usecase: Step = {
  id: 'usecase',
  title: 'Use case',
  perGuest: false,
  why: [
    'With KVM the CPU runs guest code in hardware isolation, and QEMU treats any way out as a security bug.',
    'Under TCG emulation QEMU makes no such promise: its code generator and device models were not written',
    'for hostile guests. Every other fence still applies, but choosing TCG means saying why that is acceptable.',
  ],
  notes: (ctx) =>
    ctx.draft.useCase === 'emulation'
      ? ['Emulation (TCG): QEMU gives NO isolation guarantee. Only run guests you would trust on the host itself.']
      : ctx.host && !ctx.host.kvm.present
        ? ['This host has no /dev/kvm: a KVM bundle can be generated here but must run elsewhere.']
        : [],
  fields: (ctx) => {
    const out: Field[] = [
      {
        label: 'Use case',
        kind: 'select',
        path: ['useCase'],
        options: optionsOf(USE_CASES),
      },
    ];
    const i = ctx.draft.acceptedRisks.findIndex((r) => r.risk === 'emulation');
    if (i >= 0) out.push({ label: 'Why is that acceptable?', kind: 'text', path: ['acceptedRisks', i, 'reason'] });
    return out;
  },
};
