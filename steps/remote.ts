import { g, setGuestKey, type Field, type Step, type StepContext } from './fields.js';
import { freePort, listenDefault, listenHint } from './listen.js';

const remoteFields = (ctx: StepContext, kind: 'migration' | 'nbd', port: number): Field[] => {
  const r = ctx.draft.guests[ctx.guest]![kind];
  const name = kind === 'nbd' ? 'NBD export' : 'Live migration';
  const out: Field[] = [
    {
      label: name,
      kind: 'toggle',
      path: g(ctx, kind, 'enabled'),
      fallback: () => false,
      set: (d, v) =>
        setGuestKey(
          d,
          ctx.guest,
          kind,
          v
            ? {
                enabled: true,
                tls: true,
                listen: listenDefault(d, ctx.guest),
                port: freePort(d, ctx.guest, port),
                tlsDir: `/etc/pki/qemu/${String(d.guests[ctx.guest]?.name ?? 'guest')}`,
              }
            : undefined,
        ),
    },
  ];
  if (r?.enabled)
    out.push(
      { label: `${name} TLS`, kind: 'toggle', path: g(ctx, kind, 'tls'), fallback: () => true },
      {
        label: `${name} listen`,
        kind: 'text',
        path: g(ctx, kind, 'listen'),
        fallback: () => '127.0.0.1',
        hint: listenHint(ctx),
      },
      { label: `${name} port`, kind: 'number', path: g(ctx, kind, 'port') },
      ...(r.tls !== false ? [{ label: `${name} TLS dir`, kind: 'text' as const, path: g(ctx, kind, 'tlsDir') }] : []),
    );
  return out;
};

export const remote: Step = {
  id: 'remote',
  title: 'Remote protocols',
  perGuest: true,
  why: [
    'Live migration and NBD move guest memory and disks over the network, and QEMU parses whatever arrives.',
    'Both are off unless you need them, and TLS with client certificates is the default when they are on;',
    'plain text is a risk you will be asked to accept.',
  ],
  fields: (ctx) => [...remoteFields(ctx, 'migration', 49152), ...remoteFields(ctx, 'nbd', 10809)],
};
