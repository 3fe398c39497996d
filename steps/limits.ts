import { memoryMaxMiB } from '../src/guest.js';
import type { Draft } from './draft.js';
import { g, setGuestKey, type Field, type Step, type StepContext } from './fields.js';

const disksOf = (ctx: StepContext) => ctx.draft.guests[ctx.guest]?.disks ?? [];

type Limits = NonNullable<Draft['guests'][number]['limits']>;
type Bandwidth = NonNullable<Limits['ioBandwidth']>[number];
const bandwidthOf = (d: Draft, gi: number): Bandwidth[] => d.guests[gi]?.limits?.ioBandwidth ?? [];
const setBandwidth = (d: Draft, gi: number, list: Bandwidth[]) =>
  setGuestKey(d, gi, 'limits', { ...d.guests[gi]!.limits, ioBandwidth: list });

const nameOf = (ctx: StepContext) => String(ctx.draft.guests[ctx.guest]!.name ?? '');

/** Fields of each IO bandwidth row: the remove key counts by it. */
const PER_ROW = 3;

function bandwidthFields(ctx: StepContext): Field[] {
  return bandwidthOf(ctx.draft, ctx.guest).flatMap((_, i): Field[] => [
    {
      label: `IO limit ${i + 1} device`,
      kind: 'text',
      path: g(ctx, 'limits', 'ioBandwidth', i, 'device'),
      hint: 'a block device under /dev whose IO this guest’s cgroup is held to',
    },
    {
      label: `IO limit ${i + 1} read bytes/s`,
      kind: 'number',
      path: g(ctx, 'limits', 'ioBandwidth', i, 'readBytesPerSecond'),
      hint: 'empty: no limit',
    },
    {
      label: `IO limit ${i + 1} write bytes/s`,
      kind: 'number',
      path: g(ctx, 'limits', 'ioBandwidth', i, 'writeBytesPerSecond'),
      hint: 'empty: no limit',
    },
  ]);
}

/** QEMU's throttling of each disk, then the cgroup's budget: every field before the IO bandwidth rows. */
function cgroupFields(ctx: StepContext): Field[] {
  return [
    ...disksOf(ctx).flatMap((_, i): Field[] => [
      {
        label: `Disk ${i + 1} read bytes/s`,
        kind: 'number',
        path: g(ctx, 'disks', i, 'throttle', 'readBytesPerSecond'),
        hint: 'QEMU throttling; empty: none',
      },
      {
        label: `Disk ${i + 1} write bytes/s`,
        kind: 'number',
        path: g(ctx, 'disks', i, 'throttle', 'writeBytesPerSecond'),
      },
      { label: `Disk ${i + 1} read IOPS`, kind: 'number', path: g(ctx, 'disks', i, 'throttle', 'readIops') },
      { label: `Disk ${i + 1} write IOPS`, kind: 'number', path: g(ctx, 'disks', i, 'throttle', 'writeIops') },
    ]),
    { label: 'CPU weight', kind: 'number', path: g(ctx, 'limits', 'cpuWeight'), fallback: () => 100, hint: '1-10000' },
    { label: 'CPU quota %', kind: 'number', path: g(ctx, 'limits', 'cpuQuotaPercent'), hint: 'empty: 100 per vCPU' },
    {
      label: 'Memory high MiB',
      kind: 'number',
      path: g(ctx, 'limits', 'memoryHighMiB'),
      hint: 'empty: none; above it the kernel throttles QEMU and reclaims its memory',
    },
    {
      label: 'Memory max MiB',
      kind: 'number',
      path: g(ctx, 'limits', 'memoryMaxMiB'),
      hint: 'empty: RAM + 10%, at least 256 MiB',
    },
    { label: 'IO weight', kind: 'number', path: g(ctx, 'limits', 'ioWeight'), fallback: () => 100, hint: '1-10000' },
    { label: 'Tasks max', kind: 'number', path: g(ctx, 'limits', 'tasksMax'), fallback: () => 256, hint: '16-65536' },
  ];
}

export const limits: Step = {
  id: 'limits',
  title: 'Limits',
  perGuest: true,
  why: [
    'Isolation includes resources: a guest must not starve its neighbours. systemd puts each QEMU in a',
    'cgroup with a CPU weight and quota, a memory ceiling (the guest’s RAM plus QEMU’s own overhead), an IO',
    'weight and a cap on tasks; disk throttling is applied by QEMU itself.',
  ],
  notes: (ctx) => {
    const guest = ctx.draft.guests[ctx.guest]!;
    const mem = Number(guest.memoryMiB) || 1024;
    const lim = (guest.limits ?? {}) as { memoryMaxMiB?: number };
    const max = memoryMaxMiB({ memoryMiB: mem, limits: { memoryMaxMiB: lim.memoryMaxMiB } });
    return [
      `Memory ceiling: ${max} MiB for ${mem} MiB of guest RAM${lim.memoryMaxMiB ? '' : ' (default: RAM + 10%, at least 256 MiB)'}.`,
      ...(ctx.host ? [`This host: ${ctx.host.cpus} CPUs, ${ctx.host.memoryMiB} MiB.`] : []),
    ];
  },
  fields: (ctx) => [...cgroupFields(ctx), ...bandwidthFields(ctx)],
  addLabel: 'add IO limit',
  add: (ctx) => setBandwidth(ctx.draft, ctx.guest, [...bandwidthOf(ctx.draft, ctx.guest), { device: '' }]),
  afterAdd: (ctx) => ({ field: cgroupFields(ctx).length + (bandwidthOf(ctx.draft, ctx.guest).length - 1) * PER_ROW }),
  remove: (ctx, field) => {
    const i = Math.floor((field - cgroupFields(ctx).length) / PER_ROW);
    const list = bandwidthOf(ctx.draft, ctx.guest);
    if (i < 0) return 'Tab to an IO limit’s field to remove that limit.';
    return {
      what: `IO limit ${i + 1} (${String(list[i]!.device || 'no device yet')}) of guest "${nameOf(ctx)}"`,
      draft: setBandwidth(
        ctx.draft,
        ctx.guest,
        list.filter((_, k) => k !== i),
      ),
    };
  },
};
