import { memoryMaxMiB } from '../src/guest.js';
import { g, type Field, type Step, type StepContext } from './fields.js';

const disksOf = (ctx: StepContext) => ctx.draft.guests[ctx.guest]?.disks ?? [];

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
  fields: (ctx) => [
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
      label: 'Memory max MiB',
      kind: 'number',
      path: g(ctx, 'limits', 'memoryMaxMiB'),
      hint: 'empty: RAM + 10%, at least 256 MiB',
    },
    { label: 'IO weight', kind: 'number', path: g(ctx, 'limits', 'ioWeight'), fallback: () => 100, hint: '1-10000' },
    { label: 'Tasks max', kind: 'number', path: g(ctx, 'limits', 'tasksMax'), fallback: () => 256, hint: '16-65536' },
  ],
};
