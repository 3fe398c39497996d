import type { Answers } from '../src/model.js';
import { listPresets, type Preset } from '../src/sources/preset.js';
import { fromAnswers, initialDraft, type Draft } from './draft.js';
import { optionsOf, type Field, type Step } from './fields.js';

const USE_CASES: Record<Answers['useCase'], string> = {
  virtualization: 'virtualization (KVM)',
  emulation: 'emulation (TCG) — no isolation guarantee',
};

let shipped: Preset[] | undefined;
/** The shipped presets, read once, when the step is first shown. */
const presets = () => (shipped ??= listPresets());

const guestsOf = (d: Draft) => JSON.stringify(d.guests);

/**
 * What the draft's guests were started from and not changed since: '' for the interview's own first guest, a
 * preset's name, or undefined once they were edited. A preset replaces the guests, so it is offered only while
 * nothing typed would be lost, and moving between presets (or back to the blank guest) loses nothing either.
 */
function startedFrom(d: Draft): string | undefined {
  if (guestsOf(d) === guestsOf(initialDraft())) return '';
  return presets().find((p) => guestsOf(fromAnswers(p.answers)) === guestsOf(d))?.name;
}

/** The draft started from a preset (or the blank guest): its use case, guests and risks; the host step's answers stay. */
function startFrom(d: Draft, name: string): Draft {
  const preset = presets().find((p) => p.name === name);
  const next = preset ? fromAnswers(preset.answers) : initialDraft();
  return d.host ? { ...next, host: d.host } : next;
}

export const usecase: Step = {
  id: 'usecase',
  title: 'Use case',
  perGuest: false,
  why: [
    'With KVM the CPU runs guest code in hardware isolation, and QEMU treats any way out as a security bug.',
    'Under TCG emulation QEMU makes no such promise: its code generator and device models were not written',
    'for hostile guests. Every other fence still applies, but choosing TCG means saying why that is acceptable.',
    'A preset starts the guests from a shipped example (a Windows 11 guest, a desktop, several tenants).',
  ],
  notes: (ctx) => {
    const from = startedFrom(ctx.draft);
    const preset = from ? presets().find((p) => p.name === from) : undefined;
    return [
      ...(preset?.notes.length
        ? [
            `${preset.name}: ${preset.notes[0]}${preset.notes.length > 1 ? ` ('qemu-harden presets' shows all ${preset.notes.length} notes.)` : ''}`,
          ]
        : []),
      ...(ctx.draft.useCase === 'emulation'
        ? ['Emulation (TCG): QEMU gives NO isolation guarantee. Only run guests you would trust on the host itself.']
        : ctx.host && !ctx.host.kvm.present
          ? ['This host has no /dev/kvm: a KVM bundle can be generated here but must run elsewhere.']
          : []),
    ];
  },
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
    out.push({
      label: 'Start from',
      kind: 'select',
      path: ['$preset'],
      options: [
        { value: '', label: 'a new guest of my own' },
        ...presets().map((p) => ({ value: p.name, label: `${p.name}: ${p.description}` })),
      ],
      value: (d) => startedFrom(d) ?? '',
      set: (d, v) => startFrom(d, String(v ?? '')),
      inactive: (d) =>
        startedFrom(d) === undefined ? 'the guests were edited, and a preset would replace them' : undefined,
      hint: 'a preset replaces the guests (offered until they are edited); the next steps show its answers',
    });
    return out;
  },
};
