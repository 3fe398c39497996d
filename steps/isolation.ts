import { RISKS, type RiskId } from '../src/rules.js';
import { draftRisks, type Draft } from '../src/ui/draft.js';
import { g, type Field, type Step } from '../src/ui/fields.js';

const SANDBOX: [string, string][] = [
  ['obsolete', 'obsolete system calls'],
  ['elevatePrivileges', 'setuid/setgid calls'],
  ['spawn', 'fork and exec'],
  ['resourceControl', 'scheduling and affinity'],
];

export const isolation: Step = {
  id: 'isolation',
  title: 'Isolation',
  perGuest: true,
  why: [
    'A guest that escapes into QEMU gets what QEMU has. seccomp (-sandbox) removes the system calls QEMU',
    'does not need, and AppArmor confines which files it can open. Anything weaker than the default is',
    'allowed only with a reason, and every reason is printed in the bundle’s README.',
  ],
  scope: (ctx) => [g(ctx, 'isolation'), ['acceptedRisks']],
  notes: (ctx) => {
    const r = draftRisks(ctx.draft, ctx.check);
    if (!r) return ['Fix the problems on earlier steps to see the risks these answers take.'];
    return r.length ? [`Risks taken: ${r.map((x) => `${x.risk}${x.guest ? `(${x.guest})` : ''}`).join(', ')}`] : ['No risks taken: every choice is the secure default.'];
  },
  fields: (ctx) => {
    const out: Field[] = [
      { label: 'seccomp -sandbox', kind: 'toggle', path: g(ctx, 'isolation', 'sandbox', 'enabled'), value: (d) => getSandbox(d, ctx.guest).enabled !== false },
    ];
    for (const [key, label] of SANDBOX)
      out.push({
        label: `deny ${label}`,
        kind: 'toggle',
        path: g(ctx, 'isolation', 'sandbox', key),
        value: (d) => (getSandbox(d, ctx.guest)[key] ?? 'deny') === 'deny',
        set: (d, v) => setSandbox(d, ctx.guest, key, v ? 'deny' : 'allow'),
      });
    out.push({ label: 'AppArmor profile', kind: 'toggle', path: g(ctx, 'isolation', 'apparmor'), value: (d) => getIsolation(d, ctx.guest).apparmor !== false });
    const name = ctx.draft.guests[ctx.guest]?.name;
    ctx.draft.acceptedRisks.forEach((r, i) => {
      if (r.guest !== undefined && r.guest !== name) return;
      out.push({ label: `Reason: ${r.risk}`, kind: 'text', path: ['acceptedRisks', i, 'reason'], hint: RISKS[r.risk as RiskId]?.title });
    });
    return out.map((f) => (f.set || f.kind !== 'toggle' ? f : { ...f, set: (d: Draft, v: unknown) => setIsolation(d, ctx.guest, f.path.slice(3), v) }));
  },
};

function getIsolation(d: Draft, gi: number): Record<string, unknown> {
  return (d.guests[gi]!.isolation ?? {}) as Record<string, unknown>;
}

function getSandbox(d: Draft, gi: number): Record<string, unknown> {
  return (getIsolation(d, gi).sandbox ?? {}) as Record<string, unknown>;
}

function setIsolation(d: Draft, gi: number, path: (string | number)[], v: unknown): Draft {
  const copy = structuredClone(d);
  const iso = { ...getIsolation(copy, gi) } as Record<string, unknown>;
  if (path[0] === 'sandbox') iso.sandbox = { ...getSandbox(copy, gi), [String(path[1])]: v };
  else iso[String(path[0])] = v;
  copy.guests[gi]!.isolation = iso;
  return copy;
}

function setSandbox(d: Draft, gi: number, key: string, v: string): Draft {
  return setIsolation(d, gi, ['sandbox', key], v);
}
