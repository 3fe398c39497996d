import type { Guest } from '../src/model.js';
import { defaultTapDevice } from '../src/names.js';
import type { Draft, GuestDraft } from './draft.js';
import { g, optionsOf, setGuestKey, type Field, type Step, type StepContext } from './fields.js';

type Mode = Guest['network']['mode'];
type Network = NonNullable<GuestDraft['network']>;

const MODES: Record<Mode, string> = {
  none: 'none (no NIC, empty namespace)',
  user: 'user-mode (QEMU’s own NAT)',
  tap: 'tap (pre-created, owned by the guest)',
};

/** What a guest's network becomes when a mode is chosen; a MAC address typed earlier is kept. */
const MAKE: { [M in Mode]: (prev: Network | undefined, ctx: StepContext) => Extract<Network, { mode: M }> } = {
  none: () => ({ mode: 'none' }),
  user: (prev) => ({ mode: 'user', ...macOf(prev) }),
  tap: (prev, ctx) => ({ mode: 'tap', vhost: ctx.host?.vhostNet ?? true, ...macOf(prev) }),
};

const macOf = (n: Network | undefined) => (n && n.mode !== 'none' && n.mac !== undefined ? { mac: n.mac } : {});
const modeOf = (d: Draft, gi: number): string => String(d.guests[gi]?.network?.mode ?? 'none');

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
    ctx.host && !ctx.host.vhostNet && modeOf(ctx.draft, ctx.guest) === 'tap'
      ? ['This host has no /dev/vhost-net: turn vhost off if the bundle is for this host.']
      : [],
  fields: (ctx) => {
    const mode = modeOf(ctx.draft, ctx.guest);
    const out: Field[] = [
      {
        label: 'Network',
        kind: 'select',
        path: g(ctx, 'network', 'mode'),
        fallback: () => 'none',
        options: optionsOf(MODES),
        set: (d, v) => {
          const m = (v as Mode) in MAKE ? (v as Mode) : 'none';
          return setGuestKey(d, ctx.guest, 'network', MAKE[m](d.guests[ctx.guest]?.network, ctx));
        },
      },
    ];
    if (mode === 'tap')
      out.push(
        {
          label: 'Tap device',
          kind: 'text',
          path: g(ctx, 'network', 'tapDevice'),
          fallback: (d) => defaultTapDevice(String(d.guests[ctx.guest]?.name ?? '')),
          hint: 'created by the bundle’s helper unit, owned by the guest’s user',
        },
        { label: 'Bridge (optional)', kind: 'text', path: g(ctx, 'network', 'bridge') },
        { label: 'vhost-net', kind: 'toggle', path: g(ctx, 'network', 'vhost'), fallback: () => true },
      );
    if (mode !== 'none')
      out.push({
        label: 'MAC address',
        kind: 'text',
        path: g(ctx, 'network', 'mac'),
        hint: 'empty: one derived from the guest’s name; keep a moved guest’s own here',
      });
    return out;
  },
};
