import type { Guest } from '../src/model.js';
import type { Draft, GuestDraft } from './draft.js';
import { g, optionsOf, setGuestKey, type Field, type Step } from './fields.js';
import { freePort, listenDefault, listenHint } from './listen.js';

type Mode = Guest['display']['mode'];
type Display = NonNullable<GuestDraft['display']>;

const MODES: Record<Mode, string> = {
  none: 'none',
  'vnc-unix': 'VNC on a unix socket',
  'spice-unix': 'SPICE on a unix socket',
  'vnc-tls': 'VNC over TCP with TLS',
  'spice-tls': 'SPICE over TCP with TLS',
};

/**
 * What a guest's display becomes when a mode is chosen. TCP listeners start on an address the guest's unit
 * allows and on a port no other guest uses, so a default is never an error.
 */
const MAKE: { [M in Mode]: (d: Draft, gi: number) => Extract<Display, { mode: M }> } = {
  none: () => ({ mode: 'none' }),
  'vnc-unix': () => ({ mode: 'vnc-unix' }),
  'spice-unix': () => ({ mode: 'spice-unix' }),
  'vnc-tls': (d, gi) => ({ mode: 'vnc-tls', ...tcp(d, gi, 5900) }),
  'spice-tls': (d, gi) => {
    const t = tcp(d, gi, 5930);
    return { mode: 'spice-tls', ...t, passwordFile: `${t.tlsDir}/spice-password` };
  },
};

const tcp = (d: Draft, gi: number, port: number) => ({
  listen: listenDefault(d, gi),
  port: freePort(d, gi, port),
  tlsDir: `/etc/pki/qemu/${String(d.guests[gi]?.name ?? 'guest')}`,
});

export const display: Step = {
  id: 'display',
  title: 'Display and consoles',
  perGuest: true,
  why: [
    'VNC and SPICE are protocol parsers that face whoever connects. A unix socket keeps them on the host,',
    'reachable only by users you allow. Over TCP they need TLS: VNC checks client certificates, SPICE does not,',
    'so SPICE also needs a password file (systemd hands it to QEMU; it is never on a command line). QMP and the serial',
    'console are always unix sockets under /run/qemu-harden/<guest>, and the serial output is logged.',
  ],
  fields: (ctx) => {
    const mode = String(ctx.draft.guests[ctx.guest]?.display?.mode ?? 'none');
    const out: Field[] = [
      {
        label: 'Display',
        kind: 'select',
        path: g(ctx, 'display', 'mode'),
        fallback: () => 'none',
        options: optionsOf(MODES),
        set: (d, v) => {
          const m = (v as Mode) in MAKE ? (v as Mode) : 'none';
          return setGuestKey(d, ctx.guest, 'display', MAKE[m](d, ctx.guest));
        },
      },
    ];
    if (mode === 'vnc-tls' || mode === 'spice-tls')
      out.push(
        { label: 'Listen address', kind: 'text', path: g(ctx, 'display', 'listen'), hint: listenHint(ctx) },
        { label: 'Port', kind: 'number', path: g(ctx, 'display', 'port') },
        { label: 'TLS directory', kind: 'text', path: g(ctx, 'display', 'tlsDir') },
      );
    if (mode === 'spice-tls')
      out.push({ label: 'SPICE password file', kind: 'text', path: g(ctx, 'display', 'passwordFile') });
    out.push({
      label: 'Serial console',
      kind: 'toggle',
      path: g(ctx, 'serial', 'enabled'),
      fallback: () => true,
      set: (d, v) => setGuestKey(d, ctx.guest, 'serial', { enabled: v === true }),
    });
    return out;
  },
};
