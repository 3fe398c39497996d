import { g, setGuestKey, type Field, type Step } from './fields.js';

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
    const mode = String((ctx.draft.guests[ctx.guest]?.display as { mode?: string })?.mode ?? 'none');
    const out: Field[] = [
      {
        label: 'Display',
        kind: 'select',
        path: g(ctx, 'display', 'mode'),
        fallback: () => 'none',
        options: [
          { value: 'none', label: 'none' },
          { value: 'vnc-unix', label: 'VNC on a unix socket' },
          { value: 'vnc-tls', label: 'VNC over TCP with TLS' },
          { value: 'spice-tls', label: 'SPICE over TCP with TLS' },
        ],
        set: (d, v) => {
          const dir = `/etc/pki/qemu/${String(d.guests[ctx.guest]?.name ?? 'guest')}`;
          return setGuestKey(
            d,
            ctx.guest,
            'display',
            v === 'vnc-tls'
              ? { mode: v, listen: '127.0.0.1', port: 5900, tlsDir: dir }
              : v === 'spice-tls'
                ? { mode: v, listen: '127.0.0.1', port: 5930, tlsDir: dir, passwordFile: `${dir}/spice-password` }
                : { mode: v === 'vnc-unix' || v === 'spice-unix' ? v : 'none' },
          );
        },
      },
    ];
    if (mode === 'vnc-tls' || mode === 'spice-tls')
      out.push(
        { label: 'Listen address', kind: 'text', path: g(ctx, 'display', 'listen') },
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
