import { existsSync, statSync } from 'node:fs';
import type { Disk } from '../src/model.js';
import { DEFAULT_TARGET, RELEASES } from '../src/releases.js';
import { newDisk, type Draft, type GuestDraft } from './draft.js';
import { g, optionsOf, setGuestKey, type Field, type Step, type StepContext } from './fields.js';

const disksOf = (d: GuestDraft) => (Array.isArray(d.disks) ? d.disks : []);
const sharesOf = (d: GuestDraft) => (Array.isArray(d.shares) ? d.shares : []);

/** How many folders a guest may share, as the interview offers them. */
const MAX_SHARES = 8;
const SHARE_COUNTS = Object.fromEntries(
  Array.from({ length: MAX_SHARES + 1 }, (_, n) => [String(n), n === 0 ? 'none' : String(n)]),
);

/** Shared folders, as many as chosen: those already filled in are kept, new ones start read-only. */
function setShareCount(d: Draft, gi: number, v: unknown): Draft {
  const want = Math.max(0, Math.min(MAX_SHARES, Number(v) || 0));
  const have = sharesOf(d.guests[gi]!);
  const next = Array.from({ length: want }, (_, i) => have[i] ?? { path: '', tag: `share${i + 1}`, readOnly: true });
  return setGuestKey(d, gi, 'shares', next.length ? next : undefined);
}

function shareFields(ctx: StepContext, i: number): Field[] {
  const n = i + 1;
  return [
    {
      label: `Shared folder ${n} path`,
      kind: 'text',
      path: g(ctx, 'shares', i, 'path'),
      hint: 'a directory of this guest’s own, e.g. /srv/shares/NAME; never a system or another guest’s directory',
    },
    {
      label: `Shared folder ${n} tag`,
      kind: 'text',
      path: g(ctx, 'shares', i, 'tag'),
      hint: 'the name the guest mounts it by (mount -t 9p TAG, or -t virtiofs TAG)',
    },
    {
      label: `Shared folder ${n} read-only`,
      kind: 'toggle',
      path: g(ctx, 'shares', i, 'readOnly'),
      fallback: () => true,
      hint: 'writable is a risk: its reason is asked on the Isolation step',
    },
  ];
}

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
    'A writable disk belongs to one guest only; kernels, initrds and ISOs are read-only. A shared folder is',
    'read-only unless you give a reason, and never a system directory or another guest’s.',
  ],
  notes: (ctx) => [
    ...disksOf(ctx.draft.guests[ctx.guest]!).map((d, i) => {
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
    ...(sharesOf(ctx.draft.guests[ctx.guest]!).length ? [sharesNote(ctx)] : []),
  ],
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
    {
      label: 'Shared folders',
      kind: 'select',
      path: ['$shares', ctx.guest],
      writes: [g(ctx, 'shares')],
      options: optionsOf(SHARE_COUNTS),
      value: (d) => String(sharesOf(d.guests[ctx.guest]!).length),
      set: (d, v) => setShareCount(d, ctx.guest, v),
    },
    ...sharesOf(ctx.draft.guests[ctx.guest]!).flatMap((_, i) => shareFields(ctx, i)),
  ],
  addLabel: 'add disk',
  afterAdd: (ctx) => ({ field: (disksOf(ctx.draft.guests[ctx.guest]!).length - 1) * PER_DISK }),
  scope: (ctx) => [
    { path: g(ctx, 'disks'), label: 'Disks' },
    { path: g(ctx, 'boot'), label: 'Boot files' },
    { path: g(ctx, 'shares'), label: 'Shared folders' },
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

/** Which of the two ways the draft's release serves shared folders, and why. */
function sharesNote(ctx: StepContext): string {
  const release = RELEASES[(ctx.draft.host?.target as keyof typeof RELEASES | undefined) ?? DEFAULT_TARGET];
  const selinux = ctx.draft.host?.confinement === 'selinux';
  if (release.sharedFolders === 'virtiofs')
    return `shared folders: on ${release.name} each is served by its own virtiofsd unit, as the guest’s user, seeing only that folder${selinux ? ' and in the guest’s SELinux context, the folder labelled with the guest’s category pair' : ''}; the guest’s memory becomes shared with it (memfd)`;
  return `shared folders: ${release.name} has only the C virtiofsd, which needs root, so QEMU serves them itself over 9p, inside its own unit and ${selinux ? 'SELinux context: each folder is labelled with the guest’s category pair' : 'AppArmor profile'}`;
}

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
