// A check is data plus one function: its name, the programs it runs and the Debian package that brings them, and
// `run`. `verify` runs the bundle checks through runCheck; the checks of a live host have the same shape
// (src/audit/types.ts) and one runner of their own for `audit` and `status` (src/audit/assess.ts). A check
// whose program is missing is reported as skipped, never as passed.
import type { BundleFile } from '../bundle-layout.js';
import type { Answers } from '../model.js';
import { which } from '../tools.js';

export interface Finding {
  check: string;
  file?: string;
  message: string;
}

export interface CheckResult {
  check: string;
  status: 'passed' | 'failed' | 'skipped';
  detail?: string;
}

/** What one run of a check found. A failed check usually has findings; a passed one never does. */
export interface Outcome {
  status: 'passed' | 'failed';
  detail?: string;
  findings: { message: string; file?: string }[];
}

export interface Check<Subject, Result extends Outcome = Outcome> {
  name: string;
  /** The programs it runs, looked up on PATH and in the sbin directories. */
  tool?: string | readonly string[];
  /** The Debian package that brings `tool`. */
  debianPackage?: string;
  /** Why this check cannot run on this subject here (a program it needs is not on this host), if so: skipped. */
  unavailable?(subject: Subject): string | undefined;
  /** Why there is nothing to check on this subject, if so: the check then passes with this as its detail. */
  nothingToCheck?(subject: Subject): string | undefined;
  /** Runs with every program of `tool` found, by name. */
  run(subject: Subject, tools: Readonly<Record<string, string>>): Promise<Result>;
}

/** A bundle whose answers validated: what the bundle checks run on. */
export interface BundleUnderCheck {
  /** The bundle directory. */
  dir: string;
  answers: Answers;
  /** The files the answers produce, as `plan()` makes them. */
  expected: BundleFile[];
}

interface Ran<Result extends Outcome> {
  result: CheckResult;
  findings: Finding[];
  /** Absent when the check was skipped or had nothing to check. */
  outcome?: Result;
}

export async function runCheck<Subject, Result extends Outcome>(
  check: Check<Subject, Result>,
  subject: Subject,
): Promise<Ran<Result>> {
  const unavailable = check.unavailable?.(subject);
  if (unavailable !== undefined)
    return { result: { check: check.name, status: 'skipped', detail: unavailable }, findings: [] };
  const nothing = check.nothingToCheck?.(subject);
  if (nothing !== undefined) return { result: { check: check.name, status: 'passed', detail: nothing }, findings: [] };
  const names = check.tool === undefined ? [] : typeof check.tool === 'string' ? [check.tool] : [...check.tool];
  const tools: Record<string, string> = {};
  for (const n of names) {
    const path = which(n);
    if (path) tools[n] = path;
  }
  if (names.some((n) => !(n in tools)))
    return {
      result: {
        check: check.name,
        status: 'skipped',
        detail: `${names.join(' or ')} not found (Debian package ${check.debianPackage})`,
      },
      findings: [],
    };
  const outcome = await check.run(subject, tools);
  return {
    result: { check: check.name, status: outcome.status, ...(outcome.detail ? { detail: outcome.detail } : {}) },
    findings: outcome.findings.map((f) => ({
      check: check.name,
      message: f.message,
      ...(f.file ? { file: f.file } : {}),
    })),
    outcome,
  };
}
