import { g, setGuestKey, type Field, type Step } from './fields.js';

export const network: Step = {
  id: 'network',
  title: 'Network',
  perGuest: true,
  why: [
    'Network traffic is untrusted in both directions. With no network QEMU runs in an empty network',
    'namespace. User-mode networking puts a whole NAT stack inside QEMU and lets it open IP sockets. A tap is',
    'created beforehand, owned by the guest’s user, so QEMU needs no privilege, no script and no helper.',
  ],
  notes: (ctx) =>
    ctx.host && !ctx.host.vhostNet && (ctx.draft.guests[ctx.guest]?.network as { mode?: string })?.mode === 'tap'
      ? ['This host has no /dev/vhost-net: turn vhost off if the bundle is for this host.']
      : [],
  fields: (ctx) => {
    const mode = String((ctx.draft.guests[ctx.guest]?.network as { mode?: string })?.mode ?? 'none');
    const out: Field[] = [
      {
        label: 'Network',
        kind: 'select',
        path: g(ctx, 'network', 'mode'),
        fallback: () => 'none',
        options: [
          { value: 'none', label: 'none (no NIC, empty namespace)' },
          { value: 'user', label: 'user-mode (QEMU’s own NAT)' },
          { value: 'tap', label: 'tap (pre-created, owned by the guest)' },
        ],
        set: (d, v) =>
          setGuestKey(
            d,
            ctx.guest,
            'network',
            v === 'tap' ? { mode: 'tap', vhost: ctx.host?.vhostNet ?? true } : { mode: v === 'user' ? 'user' : 'none' },
          ),
      },
    ];
    if (mode === 'tap')
      out.push(
        { label: 'Bridge (optional)', kind: 'text', path: g(ctx, 'network', 'bridge') },
        { label: 'vhost-net', kind: 'toggle', path: g(ctx, 'network', 'vhost'), fallback: () => true },
      );
    return out;
  },
};
