import { g, type Step } from '../src/ui/fields.js';
import { memoryMaxMiB } from '../src/guest.js';

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
    const max = memoryMaxMiB({ memoryMiB: mem, limits: { memoryMaxMiB: lim.memoryMaxMiB } } as never);
    return [
      `Memory ceiling: ${max} MiB for ${mem} MiB of guest RAM${lim.memoryMaxMiB ? '' : ' (default: RAM + 10%, at least 256 MiB)'}.`,
      ...(ctx.host ? [`This host: ${ctx.host.cpus} CPUs, ${ctx.host.memoryMiB} MiB.`] : []),
    ];
  },
  fields: (ctx) => [
    { label: 'CPU weight', kind: 'number', path: g(ctx, 'limits', 'cpuWeight'), hint: '1-10000, default 100' },
    { label: 'CPU quota %', kind: 'number', path: g(ctx, 'limits', 'cpuQuotaPercent'), hint: 'default: 100 per vCPU' },
    { label: 'Memory max MiB', kind: 'number', path: g(ctx, 'limits', 'memoryMaxMiB') },
    { label: 'IO weight', kind: 'number', path: g(ctx, 'limits', 'ioWeight') },
    { label: 'Tasks max', kind: 'number', path: g(ctx, 'limits', 'tasksMax'), hint: 'default 256' },
  ],
};
