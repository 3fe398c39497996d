// A step is a list of fields; each field edits one place in the draft. The wizard's reducer and views know
// steps only through this interface and its optional hooks; steps know nothing of the wizard.
import type { HostFacts } from '../src/probe.js';
import { getIn, setIn, type Checker, type Draft, type GuestDraft } from './draft.js';

export type FieldKind = 'text' | 'number' | 'select' | 'toggle';
export type Path = (string | number)[];

export interface Field {
  label: string;
  kind: FieldKind;
  /** Where the value lives in the draft; validation messages are matched by this path. */
  path: Path;
  /**
   * The answers fields this field fills when its path is not one of them (a device picked from the host's list
   * fills the passthrough entry's address and IOMMU group): what the schema-coverage test counts as asked.
   */
  writes?: Path[];
  options?: { value: string; label: string }[];
  hint?: string;
  /** Called instead of a plain set, for fields whose change reshapes the draft. */
  set?: (d: Draft, value: unknown) => Draft;
  /** Read instead of the path, for fields computed from the draft (a device picked or not). */
  value?: (d: Draft) => unknown;
  /** What the answers get when the draft leaves the field empty (the schema's default): shown as the value. */
  fallback?: (d: Draft) => unknown;
  /** Why the field does not apply with the draft as it is; undefined when it does. */
  inactive?: (d: Draft) => string | undefined;
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
  /** What the step shows instead of a form: the review of the bundle, or the end of the interview. */
  screen?: 'review' | 'done';
  /**
   * Answers paths whose problems belong to this step besides its fields' own (they and everything below), each
   * with the words the screen uses for it: a message is never labelled with a path like `guests.1.disks`.
   */
  scope?(ctx: StepContext): { path: Path; label: string }[];
  /** Problems at exactly these dotted paths belong to this step too (not what lies below them), with their label. */
  owns?(ctx: StepContext): { path: string; label: string }[];
  /** Extra lines shown above the fields (facts, warnings). */
  notes?(ctx: StepContext): string[];
  /** A line under the footer while the step is shown. */
  tip?: string;
  /** The add key on this step: the draft with one more guest, disk or row. */
  add?(ctx: StepContext): Draft;
  /** Where focus goes after an add, given the context after it: a guest and a field. */
  afterAdd?(ctx: StepContext): { guest?: number; field?: number };
  /**
   * The remove key with `field` focused: what would go (the interview asks before it removes) and the draft
   * without it, or why nothing can be removed there.
   */
  remove?(ctx: StepContext, field: number): { what: string; draft: Draft } | string;
  addLabel?: string;
  /** Files on this host the wizard should ask qemu-img about while the step is shown. */
  images?(ctx: StepContext): string[];
}

export function valueOf(d: Draft, f: Field): unknown {
  const v = f.value ? f.value(d) : getIn(d, f.path);
  return v === undefined && f.fallback ? f.fallback(d) : v;
}

/** The value as the interview shows it: for every field, what the written answers will hold. */
export function display(d: Draft, f: Field): string {
  const v = valueOf(d, f);
  if (f.kind === 'toggle') return v ? 'yes' : 'no';
  if (f.kind === 'select') return f.options?.find((o) => o.value === String(v ?? ''))?.label ?? String(v ?? '');
  return v === undefined || v === null ? '' : String(v);
}

/** The text being edited in a text or number field: what the draft holds, without any fallback. */
export function editText(d: Draft, f: Field): string {
  const v = f.value ? f.value(d) : getIn(d, f.path);
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

export const g = (ctx: StepContext, ...rest: Path) => ['guests', ctx.guest, ...rest];

/**
 * A choice's options from a table keyed by the model's own values: typed as `Record<ModelEnum, string>`, a value
 * the model gains does not compile until the step says how it is offered.
 */
export function optionsOf<V extends string>(labels: Record<V, string>): { value: V; label: string }[] {
  return (Object.keys(labels) as V[]).map((value) => ({ value, label: labels[value] }));
}

/** A copy of the draft with one key of guest gi replaced; undefined removes the key. */
export function setGuestKey<K extends keyof GuestDraft>(
  d: Draft,
  gi: number,
  key: K,
  value: GuestDraft[K] | undefined,
): Draft {
  const copy = structuredClone(d);
  if (value === undefined) delete copy.guests[gi]![key];
  else copy.guests[gi]![key] = value;
  return copy;
}
