import { existsSync, statSync } from 'node:fs';
import type { Draft, GuestDraft } from './draft.js';
import { g, type Field, type Step } from './fields.js';

const disksOf = (d: GuestDraft) => (Array.isArray(d.disks) ? d.disks : []);

export const disks: Step = {
  id: 'disks',
  title: 'Disks and user-supplied files',
  perGuest: true,
  why: [
    'Disk images, kernels and device trees come from users and are untrusted input to QEMU. The format is',
    'written down, never guessed: a raw image that looks like qcow2 must not make QEMU open a backing file.',
    'A writable disk belongs to one guest only, and kernels, initrds and ISOs are read-only.',
  ],
  notes: (ctx) =>
    disksOf(ctx.draft.guests[ctx.guest]!).map((d, i) => {
      const p = String(d.path ?? '');
      if (!p.startsWith('/')) return `disk ${i + 1}: no path yet`;
      if (!existsSync(p)) return `disk ${i + 1}: ${p} does not exist here (fine if the bundle is for another host)`;
      const st = statSync(p);
      const seen = ctx.formats?.[p];
      const hint =
        seen && seen !== d.format
          ? ` — qemu-img reads it as ${seen}, you chose ${String(d.format)}`
          : seen
            ? ` — qemu-img agrees: ${seen}`
            : '';
      return `disk ${i + 1}: ${st.isBlockDevice() ? 'a block device' : `${Math.round(st.size / 1048576)} MiB`} here${hint}`;
    }),
  fields: (ctx) => [
    ...disksOf(ctx.draft.guests[ctx.guest]!).flatMap((_, i): Field[] => [
      { label: `Disk ${i + 1} path`, kind: 'text', path: g(ctx, 'disks', i, 'path') },
      {
        label: `Disk ${i + 1} format`,
        kind: 'select',
        path: g(ctx, 'disks', i, 'format'),
        options: [
          { value: 'qcow2', label: 'qcow2' },
          { value: 'raw', label: 'raw' },
        ],
      },
      { label: `Disk ${i + 1} read-only`, kind: 'toggle', path: g(ctx, 'disks', i, 'readOnly'), fallback: () => false },
    ]),
    {
      label: 'Kernel (read-only, optional)',
      kind: 'text',
      path: g(ctx, 'boot', 'kernel'),
      set: (d, v) => setBoot(d, ctx.guest, 'kernel', v),
    },
    {
      label: 'Initrd (read-only)',
      kind: 'text',
      path: g(ctx, 'boot', 'initrd'),
      set: (d, v) => setBoot(d, ctx.guest, 'initrd', v),
    },
    {
      label: 'Device tree (read-only)',
      kind: 'text',
      path: g(ctx, 'boot', 'deviceTree'),
      set: (d, v) => setBoot(d, ctx.guest, 'deviceTree', v),
    },
    {
      label: 'Kernel command line',
      kind: 'text',
      path: g(ctx, 'boot', 'cmdline'),
      set: (d, v) => setBoot(d, ctx.guest, 'cmdline', v),
    },
  ],
  addLabel: 'add disk',
  afterAdd: (ctx) => ({ field: (disksOf(ctx.draft.guests[ctx.guest]!).length - 1) * 3 }),
  scope: (ctx) => [g(ctx, 'disks')],
  images: (ctx) =>
    disksOf(ctx.draft.guests[ctx.guest]!)
      .map((d) => String(d.path ?? ''))
      .filter((p) => p.startsWith('/')),
  add: (ctx) => {
    const d = structuredClone(ctx.draft);
    const guest = d.guests[ctx.guest]!;
    guest.disks = [...disksOf(guest), { path: '', format: 'qcow2', readOnly: false }];
    return d;
  },
  remove: (ctx, field) => {
    if (field >= disksOf(ctx.draft.guests[ctx.guest]!).length * 3) return ctx.draft;
    const d = structuredClone(ctx.draft);
    const guest = d.guests[ctx.guest]!;
    guest.disks = disksOf(guest).filter((_, i) => i !== Math.floor(field / 3));
    return d;
  },
};

/** Boot files live in one optional object: it disappears again when every field in it is emptied. */
function setBoot(d: Draft, gi: number, key: 'kernel' | 'initrd' | 'deviceTree' | 'cmdline', v: unknown): Draft {
  const copy = structuredClone(d);
  const guest = copy.guests[gi]!;
  const boot: Partial<NonNullable<GuestDraft['boot']>> = { ...guest.boot };
  if (v === undefined) delete boot[key];
  else boot[key] = String(v);
  // The schema then says what is missing (a kernel for an initrd) by its path.
  if (Object.keys(boot).length === 0) delete guest.boot;
  else guest.boot = boot as NonNullable<GuestDraft['boot']>;
  return copy;
}
