// A step is a list of fields; each field edits one place in the draft. The view and the reducer only know this.
import type { HostFacts } from '../probe.js';
import { getIn, setIn, type Checker, type Draft } from './draft.js';

export type FieldKind = 'text' | 'number' | 'select' | 'toggle';

export interface Field {
  label: string;
  kind: FieldKind;
  /** Where the value lives in the draft; validation messages are matched by this path. */
  path: (string | number)[];
  options?: { value: string; label: string }[];
  hint?: string;
  /** Called instead of a plain set, for fields whose change reshapes the draft. */
  set?: (d: Draft, value: unknown) => Draft;
  /** Read instead of the path, for fields computed from the draft (a device picked or not). */
  value?: (d: Draft) => unknown;
}

export interface StepContext {
  draft: Draft;
  guest: number;
  host: HostFacts | undefined;
  /** qemu-img's reading of disk images that exist here, by path. */
  formats?: Record<string, string>;
  /** The answers schema, once loaded. */
  check?: Checker;
}

export interface Step {
  id: string;
  title: string;
  perGuest: boolean;
  /** Which untrusted entity the step is about and what the bundle does about it. */
  why: string[];
  fields(ctx: StepContext): Field[];
  /** Answers paths whose problems belong to this step besides its fields' own. */
  scope?(ctx: StepContext): (string | number)[][];
  /** Extra lines shown above the fields (facts, warnings). */
  notes?(ctx: StepContext): string[];
  /** Ctrl+N / Ctrl+D on this step. */
  add?(ctx: StepContext): Draft;
  /** The field to focus after an add, given the context after it. */
  addedField?(ctx: StepContext): number;
  remove?(ctx: StepContext, field: number): Draft;
  addLabel?: string;
}

export function valueOf(d: Draft, f: Field): unknown {
  return f.value ? f.value(d) : getIn(d, f.path);
}

export function display(d: Draft, f: Field): string {
  const v = valueOf(d, f);
  if (f.kind === 'toggle') return v ? 'yes' : 'no';
  if (f.kind === 'select') return f.options?.find((o) => o.value === String(v))?.label ?? String(v ?? '');
  return v === undefined || v === null ? '' : String(v);
}

export function applyValue(d: Draft, f: Field, value: unknown): Draft {
  return f.set ? f.set(d, value) : setIn(d, f.path, value);
}

/** Text typed into a number field stays text until it parses, so the schema can say what is wrong. */
export function typed(f: Field, text: string): unknown {
  if (f.kind === 'number' && /^-?\d+$/.test(text)) return Number(text);
  if (text === '') return undefined;
  return text;
}

export const g = (ctx: StepContext, ...rest: (string | number)[]) => ['guests', ctx.guest, ...rest];

/** A copy of the draft with one key of guest gi replaced; undefined removes the key. */
export function setGuestKey(d: Draft, gi: number, key: string, value: unknown): Draft {
  const copy = structuredClone(d);
  if (value === undefined) delete copy.guests[gi]![key];
  else copy.guests[gi]![key] = value;
  return copy;
}
