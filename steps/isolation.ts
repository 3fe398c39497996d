import { DEFAULT_CONFINEMENT } from '../src/confinement.js';
import type { Guest } from '../src/model.js';
import { RISKS, type RiskId } from '../src/rules.js';
import { draftRisks, type Draft } from './draft.js';
import { g, type Field, type Step, type StepContext } from './fields.js';

/** seccomp's groups as the model names them: a group the model gains does not compile until it is offered. */
const SANDBOX: Record<Exclude<keyof Guest['isolation']['sandbox'], 'enabled'>, string> = {
  obsolete: 'obsolete system calls',
  elevatePrivileges: 'setuid/setgid calls',
  spawn: 'fork and exec',
  resourceControl: 'scheduling and affinity',
};

type SandboxKey = keyof typeof SANDBOX;
type Isolation = NonNullable<Draft['guests'][number]['isolation']>;
type Sandbox = NonNullable<Isolation['sandbox']>;

const isolationOf = (d: Draft, gi: number): Isolation => d.guests[gi]!.isolation ?? {};
const sandboxOf = (d: Draft, gi: number): Sandbox => isolationOf(d, gi).sandbox ?? {};
const sandboxOn = (d: Draft, gi: number) => sandboxOf(d, gi).enabled !== false;

function setIsolation(d: Draft, gi: number, change: (iso: Isolation) => Isolation): Draft {
  const copy = structuredClone(d);
  copy.guests[gi]!.isolation = change({ ...isolationOf(copy, gi) });
  return copy;
}

/** The risks whose reasons this guest's step asks for: its own and those of the whole answers. */
function risksShown(ctx: StepContext) {
  const name = ctx.draft.guests[ctx.guest]?.name;
  return ctx.draft.acceptedRisks.map((r, i) => ({ r, i })).filter(({ r }) => r.guest === undefined || r.guest === name);
}

export const isolation: Step = {
  id: 'isolation',
  title: 'Isolation',
  perGuest: true,
  why: [
    'A guest that escapes into QEMU gets what QEMU has. seccomp (-sandbox) removes the system calls QEMU',
    'does not need, and AppArmor confines which files it can open. Anything weaker than the default is',
    'allowed only with a reason, and every reason is printed in the bundle’s README.',
  ],
  scope: (ctx) => [
    { path: g(ctx, 'isolation'), label: 'Isolation' },
    ...risksShown(ctx).map(({ r, i }) => ({ path: ['acceptedRisks', i], label: `Reason: ${r.risk}` })),
  ],
  notes: (ctx) => {
    const r = draftRisks(ctx.draft, ctx.check);
    if (!r) return ['Fix the problems on earlier steps to see the risks these answers take.'];
    return r.length
      ? [`Risks taken: ${r.map((x) => `${x.risk}${x.guest ? `(${x.guest})` : ''}`).join(', ')}`]
      : ['No risks taken: every choice is the secure default.'];
  },
  fields: (ctx) => {
    const gi = ctx.guest;
    const out: Field[] = [
      {
        label: 'seccomp -sandbox',
        kind: 'toggle',
        path: g(ctx, 'isolation', 'sandbox', 'enabled'),
        value: (d) => sandboxOn(d, gi),
        set: (d, v) => setIsolation(d, gi, (iso) => ({ ...iso, sandbox: { ...iso.sandbox, enabled: v === true } })),
      },
    ];
    for (const [key, label] of Object.entries(SANDBOX) as [SandboxKey, string][])
      out.push({
        label: `deny ${label}`,
        kind: 'toggle',
        path: g(ctx, 'isolation', 'sandbox', key),
        value: (d) => (sandboxOf(d, gi)[key] ?? 'deny') === 'deny',
        inactive: (d) => (sandboxOn(d, gi) ? undefined : 'seccomp is off'),
        set: (d, v) =>
          setIsolation(d, gi, (iso) => ({ ...iso, sandbox: { ...iso.sandbox, [key]: v ? 'deny' : 'allow' } })),
      });
    out.push({
      label: 'AppArmor profile',
      kind: 'toggle',
      path: g(ctx, 'isolation', 'apparmor'),
      value: (d) => isolationOf(d, gi).apparmor !== false,
      inactive: (d) =>
        (d.host?.confinement ?? DEFAULT_CONFINEMENT) === 'apparmor'
          ? undefined
          : 'the host’s confinement is not AppArmor (Host step)',
      set: (d, v) => setIsolation(d, gi, (iso) => ({ ...iso, apparmor: v === true })),
    });
    for (const { r, i } of risksShown(ctx))
      out.push({
        label: `Reason: ${r.risk}`,
        kind: 'text',
        path: ['acceptedRisks', i, 'reason'],
        hint: RISKS[r.risk as RiskId]?.title,
      });
    return out;
  },
};
