// The interview's heavy half, imported right after the first frame: the answers schema and its checks, the
// generators and the writer, the host probe and systemd-analyze's exposure, and every file the interview
// reads or writes. Nothing here is needed to draw the first screen, and everything the wizard writes still goes
// through validate(), plan() and writeBundle(), exactly as `generate` does.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getIn, type Checker, type Draft } from '../../steps/draft.js';
import { InputError, issuesFor, validate } from '../answers.js';
import { writeFileAtomicAt } from '../atomic.js';
import { isNonEmptyDir, writeBundle } from '../bundle.js';
import * as G from '../guest.js';
import { answersObject, type Answers } from '../model.js';
import { sha256 } from '../bundle-layout.js';
import { answersJson, plan as planBundle, type BundleFile } from '../plan.js';
import { probeHost, suggestFormat } from '../probe.js';
import { invocation, invocationAnywhere, sudoInvocation } from '../invocation.js';
import { guestReach, reachLines } from '../reach.js';
import { requiredRisks } from '../rules.js';
import { exposureOf, exposureTarget } from '../verify.js';

export { exposureTarget, guestReach, probeHost, reachLines, requiredRisks };

/** How to run qemu-harden again, the way this run was started (plain and under sudo). */
export const rerun = () => ({ me: invocation(), sudo: sudoInvocation() });

/** The bundle as `generate` plans it, its README's commands written the way this run was started. */
export const plan = (a: Answers) => planBundle(a, { runAs: invocationAnywhere() });

export const checker: Checker = {
  issues: issuesFor,
  risks: (d) => {
    // A field still being filled in (a new disk's empty path) must not hide the risks the other answers take: the
    // values the schema refuses are set aside, then the list entry holding one, until the rest parses.
    let doc: unknown = { ...d, acceptedRisks: [] };
    for (let round = 0; round < 8; round++) {
      const r = answersObject.safeParse(doc);
      if (r.success) return requiredRisks(r.data);
      doc = withoutRefused(
        doc,
        r.error.issues.map((i) => i.path as (string | number)[]),
      );
    }
    return undefined;
  },
};

/** A copy of doc without the values at these paths; where a value is already missing, without its list entry. */
function withoutRefused(doc: unknown, paths: (string | number)[][]): unknown {
  const copy = structuredClone(doc) as Record<string | number, unknown>;
  const gone = Symbol('gone');
  for (const path of paths) {
    let at = path.length;
    if (getIn(copy, path) === undefined) {
      while (at > 0 && typeof path[at - 1] !== 'number') at--;
      if (at === 0) continue;
    }
    const parent = getIn(copy, path.slice(0, at - 1)) as Record<string | number, unknown> | undefined;
    if (parent && typeof parent === 'object') {
      if (Array.isArray(parent)) parent[path[at - 1] as number] = gone;
      else delete parent[path[at - 1]!];
    }
  }
  const sweep = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.filter((x) => x !== gone).map(sweep)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, sweep(x)]))
        : v;
  return sweep(copy);
}

/** The answers, or the messages `generate` would print for them. */
export function tryValidate(d: Draft): { answers?: Answers; errors?: string[] } {
  try {
    return { answers: validate(d) };
  } catch (e) {
    if (e instanceof InputError) return { errors: e.message.split('\n') };
    throw e;
  }
}

export interface GuestUnit {
  guest: string;
  /** The guest's name and a digest of its unit's text: exposure is cached by it, so a changed unit is measured anew. */
  key: string;
  content: string;
  file: string;
}

export function guestUnits(answers: Answers, files: BundleFile[]): GuestUnit[] {
  return answers.guests.map((g) => {
    const file = G.unitName(g);
    const content = files.find((f) => f.path === `root/etc/systemd/system/${file}`)!.content;
    return { guest: g.name, key: `${g.name}:${sha256(content)}`, content, file };
  });
}

/** systemd-analyze's exposure of each unit, one at a time, each reported as it is known. */
export async function measureExposure(
  units: GuestUnit[],
  report: (key: string, score: number | 'unavailable') => void,
  cancelled: () => boolean,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qemu-harden-review-'));
  try {
    for (const u of units) {
      if (cancelled()) return;
      const file = join(dir, u.file);
      writeFileSync(file, u.content);
      const score = await exposureOf(file);
      if (!cancelled()) report(u.key, score ?? 'unavailable');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** qemu-img's reading of an image, for paths that exist here. */
export async function imageFormat(path: string): Promise<string | undefined> {
  if (!existsSync(path)) return undefined;
  return (await suggestFormat(path)) ?? '';
}

export type WriteResult =
  | { type: 'written'; kind: 'bundle' | 'answers'; path: string }
  | { type: 'replaceNeeded' }
  | { type: 'writeFailed'; message: string };

/** Write what the review shows: the bundle (asking before replacing a non-empty directory) or the answers alone. */
export function write(
  action: 'bundle' | 'answers',
  outDir: string,
  answers: Answers | undefined,
  files: BundleFile[],
  force: boolean,
): WriteResult {
  if (!answers) return { type: 'writeFailed', message: 'The answers are not valid yet.' };
  try {
    if (action === 'answers') {
      const path = resolve(`${outDir}.answers.json`);
      writeFileAtomicAt(path, answersJson(answers), 0o644);
      return { type: 'written', kind: 'answers', path };
    }
    const out = resolve(outDir);
    if (isNonEmptyDir(out) && !force) return { type: 'replaceNeeded' };
    writeBundle(out, files, true);
    return { type: 'written', kind: 'bundle', path: out };
  } catch (e) {
    return { type: 'writeFailed', message: e instanceof Error ? e.message : String(e) };
  }
}
