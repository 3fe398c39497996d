// The draft the interview edits: an answers document as `generate` reads it, checked by the same schema. The
// schema arrives as a Checker once the interview's engine has loaded (after the first frame); without one,
// nothing is reported and nothing is synced. Only types come from the model, so the first frame stays light.
import type { AnswersInput } from '../src/model.js';
import { RISKS, type RiskId } from '../src/rules.js';

export type GuestDraft = AnswersInput['guests'][number];
export type RiskDraft = { risk: string; guest?: string; reason: string };
/** The answers input, with guests and risks always present. Fields being typed may hold text the schema rejects. */
export type Draft = Omit<AnswersInput, 'guests' | 'acceptedRisks'> & {
  guests: GuestDraft[];
  acceptedRisks: RiskDraft[];
};

export interface Checker {
  /** Every problem the answers schema finds, by dotted path. */
  issues(doc: unknown): { path: string; message: string }[];
  /** The risks the draft takes once its fields parse; undefined while they do not. */
  risks(d: Draft): { risk: RiskId; guest?: string }[] | undefined;
}

/** A disk as the interview adds one: a path to fill in, and a format chosen, never probed. */
export function newDisk(): NonNullable<GuestDraft['disks']>[number] {
  return { path: '', format: 'qcow2', readOnly: false };
}

/**
 * A new guest's size follows the host: at most a quarter of its memory and half of its CPUs. It starts with a
 * disk to fill in, since nearly every guest boots from one (a kernel of its own is the exception).
 */
export function newGuest(n: number, host?: { cpus: number; memoryMiB: number }): GuestDraft {
  const vcpus = host ? Math.max(1, Math.min(2, Math.floor(host.cpus / 2))) : 1;
  const memoryMiB =
    host && host.memoryMiB > 0 ? Math.max(256, Math.min(2048, Math.floor(host.memoryMiB / 4 / 256) * 256)) : 1024;
  return {
    name: `guest${n}`,
    vcpus,
    memoryMiB,
    machine: 'q35',
    firmware: { type: 'bios' },
    disks: [newDisk()],
    network: { mode: 'none' },
    display: { mode: 'none' },
  };
}

export function initialDraft(): Draft {
  return { schemaVersion: 1, useCase: 'virtualization', guests: [newGuest(1)], acceptedRisks: [] };
}

export function fromAnswers(doc: unknown): Draft {
  const d = structuredClone(doc) as Draft;
  if (!Array.isArray(d.guests) || d.guests.length === 0) d.guests = [newGuest(1)];
  if (!Array.isArray(d.acceptedRisks)) d.acceptedRisks = [];
  return d;
}

export function getIn(doc: unknown, path: (string | number)[]): unknown {
  let cur = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

/** A copy of doc with path set to value (undefined deletes), creating objects on the way. */
export function setIn<T>(doc: T, path: (string | number)[], value: unknown): T {
  const root = structuredClone(doc) as Record<string | number, unknown>;
  let cur = root;
  for (const k of path.slice(0, -1)) {
    if (cur[k] === null || typeof cur[k] !== 'object') cur[k] = {};
    cur = cur[k] as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
  return root as T;
}

/** The risks the draft takes, once its fields parse; undefined while they do not. */
export function draftRisks(
  d: Draft,
  check: Checker | undefined,
): { risk: RiskId; guest?: string; title: string }[] | undefined {
  return check?.risks(d)?.map((x) => ({ ...x, title: RISKS[x.risk].title }));
}

export const riskKey = (r: { risk: string; guest?: string }) => `${r.risk}@${r.guest ?? ''}`;

/**
 * Keep exactly one acceptance per risk taken: ones no longer taken are dropped, new ones start with the reason
 * typed for that risk earlier in this interview (`typed`), so turning an option off and on again keeps it.
 */
export function syncRisks(d: Draft, check: Checker | undefined, typed: Record<string, string> = {}): Draft {
  const risks = draftRisks(d, check);
  if (!risks) return d;
  const have = new Map(d.acceptedRisks.map((r) => [riskKey(r), r]));
  const next = risks.map(
    (r) =>
      have.get(riskKey(r)) ?? { risk: r.risk, ...(r.guest ? { guest: r.guest } : {}), reason: typed[riskKey(r)] ?? '' },
  );
  return { ...d, acceptedRisks: next };
}

const issueCache = new WeakMap<Draft, Map<string, string>>();

/** The schema's problems by path. A draft is never changed in place, so its problems are computed once. */
export function issuesByPath(d: Draft, check: Checker | undefined): Map<string, string> {
  if (!check) return new Map();
  const hit = issueCache.get(d);
  if (hit) return hit;
  const m = new Map<string, string>();
  for (const i of check.issues(d)) if (!m.has(i.path)) m.set(i.path, i.message);
  issueCache.set(d, m);
  return m;
}
