import { existsSync, statSync } from 'node:fs';
import type { Disk } from '../src/model.js';
import { newDisk, type Draft, type GuestDraft } from './draft.js';
import { g, optionsOf, setGuestKey, type Field, type Step, type StepContext } from './fields.js';

const disksOf = (d: GuestDraft) => (Array.isArray(d.disks) ? d.disks : []);

const FORMAT: Record<Disk['format'], string> = { qcow2: 'qcow2', raw: 'raw' };

function diskFields(ctx: StepContext, i: number): Field[] {
  const n = i + 1;
  return [
    { label: `Disk ${n} path`, kind: 'text', path: g(ctx, 'disks', i, 'path') },
    { label: `Disk ${n} format`, kind: 'select', path: g(ctx, 'disks', i, 'format'), options: optionsOf(FORMAT) },
    { label: `Disk ${n} read-only`, kind: 'toggle', path: g(ctx, 'disks', i, 'readOnly'), fallback: () => false },
    {
      label: `Disk ${n} is a block device`,
      kind: 'toggle',
      path: g(ctx, 'disks', i, 'blockDevice'),
      fallback: () => false,
      hint: 'a device under /dev: udev gives its node to this guest’s user alone; always raw',
      // A block device is raw by rule, so choosing one chooses raw too.
      set: (d, v) => {
        const list = disksOf(d.guests[ctx.guest]!).map((x, k) =>
          k === i ? { ...x, blockDevice: v === true, ...(v === true ? { format: 'raw' as const } : {}) } : x,
        );
        return setGuestKey(d, ctx.guest, 'disks', list);
      },
    },
  ];
}

/** How many fields each disk has on this step: the remove key and focus after an add count by it. */
const PER_DISK = 4;

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
    ...disksOf(ctx.draft.guests[ctx.guest]!).flatMap((_, i) => diskFields(ctx, i)),
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
  afterAdd: (ctx) => ({ field: (disksOf(ctx.draft.guests[ctx.guest]!).length - 1) * PER_DISK }),
  scope: (ctx) => [
    { path: g(ctx, 'disks'), label: 'Disks' },
    { path: g(ctx, 'boot'), label: 'Boot files' },
  ],
  images: (ctx) =>
    disksOf(ctx.draft.guests[ctx.guest]!)
      .map((d) => String(d.path ?? ''))
      .filter((p) => p.startsWith('/')),
  add: (ctx) => setGuestKey(ctx.draft, ctx.guest, 'disks', [...disksOf(ctx.draft.guests[ctx.guest]!), newDisk()]),
  remove: (ctx, field) => {
    const guest = ctx.draft.guests[ctx.guest]!;
    const list = disksOf(guest);
    if (field >= list.length * PER_DISK) return 'Tab to a disk’s field to remove that disk.';
    const i = Math.floor(field / PER_DISK);
    const path = String(list[i]!.path ?? '');
    return {
      what: `disk ${i + 1} (${path || 'no path yet'}) of guest "${String(guest.name ?? '')}"`,
      draft: setGuestKey(
        ctx.draft,
        ctx.guest,
        'disks',
        list.filter((_, k) => k !== i),
      ),
    };
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
