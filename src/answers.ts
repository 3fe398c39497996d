// Answers from any source (src/sources/), edited by --set, validated by the one schema. Every failure is an
// InputError whose message names the field.
import type { z } from 'zod';
import { InputError } from './errors.js';
import { plainError } from './messages.js';
import { answersObject, type Answers } from './model.js';
import { checkAnswers } from './rules.js';
import { plural } from './words.js';

export { InputError };

/** The one schema every answers document passes: the fields, then the rules that span them. */
export const answersSchema = answersObject.superRefine(checkAnswers);

export function formatPath(path: PropertyKey[]): string {
  return path.length === 0 ? '(document)' : path.map(String).join('.');
}

/** Messages come in plain words from the one error map (messages.ts), so this only puts the field first. */
export function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
}

export function validate(doc: unknown): Answers {
  const r = answersSchema.safeParse(doc, { error: plainError });
  if (!r.success) throw new InputError(formatIssues(r.error.issues).join('\n'));
  return r.data;
}

/** Field-level check for one value, with the message `generate` would give (used by the wizard). */
export function issuesFor(doc: unknown): { path: string; message: string }[] {
  const r = answersSchema.safeParse(doc, { error: plainError });
  if (r.success) return [];
  return r.error.issues.map((i) => ({
    path: formatPath(i.path),
    message: formatIssues([i])[0]!.slice(formatPath(i.path).length + 2),
  }));
}

/** Apply `--set a.b.0.c=value`: the value is taken as JSON when it parses as JSON, otherwise as a string. */
export function applySet(doc: unknown, assignment: string): unknown {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new InputError(`--set ${assignment}: expected PATH=VALUE, e.g. guests.0.disks.0.path=/srv/a.img`);
  const path = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  if (path.some((k) => k === '' || k === '__proto__' || k === 'constructor' || k === 'prototype'))
    throw new InputError(`--set ${assignment}: "${path.join('.')}" is not a valid field path`);
  const root = structuredClone(doc) as Record<string, unknown>;
  let cur: unknown = root;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    const next = path[i + 1]!;
    const container = cur as Record<string, unknown> | unknown[];
    const idx = Array.isArray(container) ? listIndex(container, key, path, i, assignment) : key;
    let child = (container as Record<string | number, unknown>)[idx];
    if (child === undefined) {
      child = /^\d+$/.test(next) ? [] : {};
      (container as Record<string | number, unknown>)[idx] = child;
    }
    if (child === null || typeof child !== 'object')
      throw new InputError(
        `--set ${assignment}: ${path.slice(0, i + 1).join('.')} is ${JSON.stringify(child)}, not an object or list`,
      );
    cur = child;
  }
  const last = path[path.length - 1]!;
  if (Array.isArray(cur)) cur[listIndex(cur, last, path, path.length - 1, assignment)] = value;
  else (cur as Record<string, unknown>)[last] = value;
  return root;
}

function listIndex(list: unknown[], key: string, path: string[], i: number, assignment: string): number {
  if (!/^\d+$/.test(key))
    throw new InputError(`--set ${assignment}: ${path.slice(0, i).join('.')} is a list; "${key}" is not an index`);
  const n = Number(key);
  if (n > list.length)
    throw new InputError(
      `--set ${assignment}: ${path.slice(0, i).join('.')} has ${plural(list.length, 'entry', 'entries')}; index ${n} would leave a gap`,
    );
  return n;
}
