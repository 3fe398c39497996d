import type { Guest } from '../src/model.js';
import { defaultTapDevice } from '../src/names.js';
import type { Draft, GuestDraft } from './draft.js';
import { g, optionsOf, setGuestKey, type Field, type Step, type StepContext } from './fields.js';

type Mode = Guest['network']['mode'];
type Network = NonNullable<GuestDraft['network']>;
type UserNetwork = Extract<Guest['network'], { mode: 'user' }>;
type Forward = UserNetwork['forwards'][number];

const MODES: Record<Mode, string> = {
  none: 'none (no NIC, empty namespace)',
  user: 'user-mode (NAT through the host’s own IP)',
  tap: 'tap (pre-created, owned by the guest)',
};

const BACKENDS: Record<UserNetwork['backend'], string> = {
  passt: 'passt, in a unit of its own: QEMU keeps no IP socket',
  slirp: 'slirp, inside QEMU (a risk: for a host without passt)',
};

const PROTOCOLS: Record<Forward['protocol'], string> = { tcp: 'TCP', udp: 'UDP' };

/** What a guest's network becomes when a mode is chosen; a MAC address typed earlier is kept. */
const MAKE: { [M in Mode]: (prev: Network | undefined, ctx: StepContext) => Extract<Network, { mode: M }> } = {
  none: () => ({ mode: 'none' }),
  // passt unless the host the interview runs on is known to lack it.
  user: (prev, ctx) => ({ mode: 'user', backend: ctx.host && !ctx.host.passt ? 'slirp' : 'passt', ...macOf(prev) }),
  tap: (prev, ctx) => ({ mode: 'tap', vhost: ctx.host?.vhostNet ?? true, ...macOf(prev) }),
};

const macOf = (n: Network | undefined) => (n && n.mode !== 'none' && n.mac !== undefined ? { mac: n.mac } : {});
const modeOf = (d: Draft, gi: number): string => String(d.guests[gi]?.network?.mode ?? 'none');
const forwardsOf = (d: Draft, gi: number): Partial<Forward>[] => {
  const n = d.guests[gi]?.network;
  return n?.mode === 'user' && Array.isArray(n.forwards) ? n.forwards : [];
};

/** How many fields each forward has: the remove key counts by it. */
const PER_FORWARD = 4;

function forwardFields(ctx: StepContext, i: number): Field[] {
  const n = i + 1;
  return [
    {
      label: `Forward ${n} protocol`,
      kind: 'select',
      path: g(ctx, 'network', 'forwards', i, 'protocol'),
      fallback: () => 'tcp',
      options: optionsOf(PROTOCOLS),
    },
    {
      label: `Forward ${n} host address`,
      kind: 'text',
      path: g(ctx, 'network', 'forwards', i, 'listen'),
      hint: 'one address of this host, never loopback (the network’s unit denies it); 0.0.0.0 or :: for all',
    },
    { label: `Forward ${n} host port`, kind: 'number', path: g(ctx, 'network', 'forwards', i, 'port') },
    {
      label: `Forward ${n} guest port`,
      kind: 'number',
      path: g(ctx, 'network', 'forwards', i, 'guestPort'),
      hint: 'empty: the same as the host port',
    },
  ];
}

/** The fields before the first forward's: where the remove key starts counting forwards. */
const BEFORE_FORWARDS = 2;

export const network: Step = {
  id: 'network',
  title: 'Network',
  perGuest: true,
  why: [
    'Network traffic is untrusted in both directions. With no network QEMU runs in an empty network',
    'namespace. User-mode networking is served by passt, a process of its own in a unit of its own, so a guest',
    'that exploits it is not in QEMU and QEMU keeps no IP socket (slirp, the NAT inside QEMU, is for a host',
    'without passt). A tap is created beforehand, owned by the guest’s user, so QEMU needs no privilege.',
  ],
  notes: (ctx) => {
    const mode = modeOf(ctx.draft, ctx.guest);
    const n = ctx.draft.guests[ctx.guest]?.network;
    const out: string[] = [];
    if (ctx.host && !ctx.host.vhostNet && mode === 'tap')
      out.push('This host has no /dev/vhost-net: turn vhost off if the bundle is for this host.');
    if (ctx.host && !ctx.host.passt && n?.mode === 'user' && n.backend !== 'slirp')
      out.push(
        'passt is not installed here: install it (Debian package passt) on the host the bundle is for, or choose slirp and give its reason on the Isolation step.',
      );
    if (n?.mode === 'user')
      out.push(
        'The guest reaches what this host reaches over IP, but never the host’s loopback or link-local addresses.',
      );
    return out;
  },
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
    if (mode === 'user') {
      out.push({
        label: 'User-mode network',
        kind: 'select',
        path: g(ctx, 'network', 'backend'),
        fallback: () => 'passt',
        options: optionsOf(BACKENDS),
      });
      forwardsOf(ctx.draft, ctx.guest).forEach((_, i) => out.push(...forwardFields(ctx, i)));
    }
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
  addLabel: 'forward a port (user-mode network)',
  add: (ctx) => {
    const n = ctx.draft.guests[ctx.guest]?.network;
    if (n?.mode !== 'user') return ctx.draft;
    return setGuestKey(ctx.draft, ctx.guest, 'network', {
      ...n,
      forwards: [...forwardsOf(ctx.draft, ctx.guest), { protocol: 'tcp' }] as Forward[],
    });
  },
  afterAdd: (ctx) => ({ field: BEFORE_FORWARDS + (forwardsOf(ctx.draft, ctx.guest).length - 1) * PER_FORWARD }),
  remove: (ctx, field) => {
    const n = ctx.draft.guests[ctx.guest]?.network;
    const list = forwardsOf(ctx.draft, ctx.guest);
    const i = Math.floor((field - BEFORE_FORWARDS) / PER_FORWARD);
    if (n?.mode !== 'user' || field < BEFORE_FORWARDS || i >= list.length)
      return 'Tab to a forwarded port’s field to remove that forward.';
    const f = list[i]!;
    return {
      what: `forward ${i + 1} (${String(f.protocol ?? 'tcp')} ${String(f.listen ?? '?')}:${String(f.port ?? '?')}) of guest "${String(ctx.draft.guests[ctx.guest]?.name ?? '')}"`,
      draft: setGuestKey(ctx.draft, ctx.guest, 'network', {
        ...n,
        forwards: list.filter((_, k) => k !== i) as Forward[],
      }),
    };
  },
};
