// The interview as a reducer: every key becomes a named command (one keymap), every command a new state.
// No terminal is needed to drive it, which is how most of it is tested.
import { STEPS } from '../../steps/index.js';
import type { HostFacts } from '../probe.js';
import { issuesByPath, syncRisks, type Checker, type Draft } from './draft.js';
import { applyValue, display, type Field, type StepContext, typed, valueOf } from './fields.js';

export interface KeyInfo {
  upArrow?: boolean;
  downArrow?: boolean;
  leftArrow?: boolean;
  rightArrow?: boolean;
  pageUp?: boolean;
  pageDown?: boolean;
  return?: boolean;
  escape?: boolean;
  ctrl?: boolean;
  shift?: boolean;
  tab?: boolean;
  backspace?: boolean;
  delete?: boolean;
}

export type Command =
  | 'next' | 'back' | 'fieldNext' | 'fieldPrev' | 'left' | 'right' | 'toggle' | 'guestPrev' | 'guestNext'
  | 'add' | 'remove' | 'help' | 'quit' | 'backspace' | 'char' | 'none';

/** The one keymap. `?` and space are commands only outside text fields, where they are typed. */
export function resolveKey(input: string, key: KeyInfo, inText: boolean): Command {
  if (key.ctrl && input === 'c') return 'quit';
  if (key.ctrl && input === 'n') return 'add';
  if (key.ctrl && input === 'd') return 'remove';
  if (key.return) return 'next';
  if (key.escape || (key.tab && key.shift)) return 'back';
  if (key.tab || key.downArrow) return 'fieldNext';
  if (key.upArrow) return 'fieldPrev';
  if (key.pageUp) return 'guestPrev';
  if (key.pageDown) return 'guestNext';
  if (key.leftArrow) return 'left';
  if (key.rightArrow) return 'right';
  if (key.backspace || key.delete) return 'backspace';
  if (!inText && input === '?') return 'help';
  if (!inText && input === ' ') return 'toggle';
  if (!inText && input) return 'none';
  if (input && !key.ctrl && !/[\u0000-\u0007\u0009-\u001f]/.test(input)) return 'char';
  return 'none';
}

/** Typed text arrives in chunks that may hold several keys, backspaces among them. */
export function typeInto(value: string, input: string): string {
  let out = value;
  for (const ch of input) out = ch === '\u007f' || ch === '\b' ? out.slice(0, -1) : out + ch;
  return out;
}

export type ReviewTab = 'files' | 'risks' | 'map';

export interface State {
  step: number;
  guest: number;
  field: number;
  draft: Draft;
  /** The answers schema; until it has loaded nothing is checked, so nothing advances. */
  check?: Checker;
  host?: HostFacts;
  help: boolean;
  quitting: boolean;
  review: { action: 'bundle' | 'answers'; outDir: string; file: number; scroll: number; tab: ReviewTab; confirmReplace: boolean; force: boolean };
  formats: Record<string, string>;
  /** systemd-analyze's exposure score, by guest name and unit text digest. */
  exposure: Record<string, number | 'unavailable'>;
  pending?: 'write';
  outcome?: { kind: 'bundle' | 'answers'; path: string };
  error?: string;
  exit?: number;
}

export type Action =
  | { type: 'key'; input: string; key: KeyInfo }
  | { type: 'ready'; check: Checker }
  | { type: 'host'; facts: HostFacts }
  | { type: 'exposure'; key: string; score: number | 'unavailable' }
  | { type: 'format'; path: string; format: string }
  | { type: 'written'; kind: 'bundle' | 'answers'; path: string }
  | { type: 'writeFailed'; message: string }
  | { type: 'replaceNeeded' };

export const REVIEW = STEPS.findIndex((s) => s.id === 'review');
export const DONE = STEPS.findIndex((s) => s.id === 'done');

export function initialState(draft: Draft, outDir = './qemu-harden-bundle', check?: Checker): State {
  return {
    step: 0,
    guest: 0,
    field: 0,
    check,
    draft: syncRisks(draft, check),
    help: false,
    quitting: false,
    review: { action: 'bundle', outDir, file: 0, scroll: 0, tab: 'files', confirmReplace: false, force: false },
    exposure: {},
    formats: {},
  };
}

export function context(s: State): StepContext {
  return { draft: s.draft, guest: s.guest, host: s.host, formats: s.formats, check: s.check };
}

export function fieldsOf(s: State): Field[] {
  return STEPS[s.step]!.fields(context(s));
}

const pathKey = (p: (string | number)[]) => p.join('.');

/** Problems that belong to the current step: on its fields, or under its scope. */
export function stepIssues(s: State): { path: string; message: string }[] {
  const step = STEPS[s.step]!;
  const all = issuesByPath(s.draft, s.check);
  const prefixes = [...fieldsOf(s).map((f) => pathKey(f.path)), ...(step.scope?.(context(s)) ?? []).map(pathKey)];
  const guestPrefix = step.perGuest ? `guests.${s.guest}` : undefined;
  return [...all.entries()]
    .filter(([p]) => prefixes.some((x) => p === x || p.startsWith(`${x}.`)) || (guestPrefix !== undefined && p === guestPrefix && step.id === 'guests'))
    .map(([path, message]) => ({ path, message }));
}

/** Review's own field layout: the action, the output directory, then the file list. */
export const REVIEW_FIELDS = ['action', 'out', 'files'] as const;

export function inTextField(s: State): boolean {
  if (s.step === REVIEW) return REVIEW_FIELDS[s.field] === 'out';
  const f = fieldsOf(s)[s.field];
  return !!f && (f.kind === 'text' || f.kind === 'number');
}

function clampField(s: State): State {
  const n = s.step === REVIEW ? REVIEW_FIELDS.length : fieldsOf(s).length;
  return { ...s, field: Math.max(0, Math.min(s.field, n - 1)) };
}

function setDraft(s: State, draft: Draft): State {
  return clampField({ ...s, draft: syncRisks(draft, s.check), guest: Math.min(s.guest, draft.guests.length - 1) });
}

function cycle(f: Field, current: unknown, dir: 1 | -1): unknown {
  if (f.kind === 'toggle') return !current;
  const opts = f.options ?? [];
  const i = opts.findIndex((o) => o.value === String(current));
  return opts[(i + dir + opts.length) % opts.length]?.value;
}

function onReviewKey(s: State, cmd: Command, input: string): State {
  const r = s.review;
  const focus = REVIEW_FIELDS[s.field];
  if (r.confirmReplace) {
    if (input === 'y' || input === 'Y') return { ...s, review: { ...r, confirmReplace: false, force: true }, pending: 'write' };
    if (cmd === 'back' || input === 'n' || input === 'N') return { ...s, review: { ...r, confirmReplace: false } };
    return s;
  }
  switch (cmd) {
    case 'next':
      return { ...s, pending: 'write', error: undefined };
    case 'fieldNext':
      if (focus === 'files') return { ...s, review: { ...r, file: r.file + 1, scroll: 0 } };
      if (focus === 'out') return { ...s, field: s.field + 1, review: { ...r, force: false } };
      return { ...s, field: s.field + 1 };
    case 'fieldPrev':
      if (focus === 'files' && r.file > 0) return { ...s, review: { ...r, file: r.file - 1, scroll: 0 } };
      return { ...s, field: Math.max(0, s.field - 1) };
    case 'guestNext':
      return { ...s, review: { ...r, scroll: r.scroll + 8 } };
    case 'guestPrev':
      return { ...s, review: { ...r, scroll: Math.max(0, r.scroll - 8) } };
    case 'left':
    case 'right':
    case 'toggle':
      if (focus === 'action') return { ...s, review: { ...r, action: r.action === 'bundle' ? 'answers' : 'bundle' } };
      if (focus === 'files') {
        const tabs: ReviewTab[] = ['files', 'risks', 'map'];
        const i = tabs.indexOf(r.tab) + (cmd === 'left' ? -1 : 1);
        return { ...s, review: { ...r, tab: tabs[(i + tabs.length) % tabs.length]!, scroll: 0 } };
      }
      return s;
    case 'char':
      if (focus === 'out') return { ...s, review: { ...r, outDir: typeInto(r.outDir, input), force: false } };
      return s;
    case 'backspace':
      if (focus === 'out') return { ...s, review: { ...r, outDir: r.outDir.slice(0, -1), force: false } };
      return s;
    default:
      return s;
  }
}

function onKey(s: State, input: string, key: KeyInfo): State {
  const cmd = resolveKey(input, key, inTextField(s));
  if (s.quitting) {
    if (input === 'y' || input === 'Y') return { ...s, exit: 130 };
    if (input === 'n' || input === 'N' || cmd === 'back') return { ...s, quitting: false };
    return s;
  }
  if (cmd === 'quit') return { ...s, quitting: true };
  if (cmd === 'help') return { ...s, help: !s.help };
  if (s.step === DONE) return cmd === 'next' ? { ...s, exit: 0 } : s;
  if (cmd === 'back') return s.step === 0 ? s : { ...s, step: s.step - 1, field: 0, error: undefined, review: { ...s.review, confirmReplace: false } };
  if (s.step === REVIEW) return clampField(onReviewKey(s, cmd, input));

  const step = STEPS[s.step]!;
  const fields = fieldsOf(s);
  const f = fields[s.field];
  switch (cmd) {
    case 'next':
      if (!s.check) return s;
      if (stepIssues(s).length > 0) return { ...s, error: 'Fix the marked fields first.' };
      return { ...s, step: s.step + 1, field: 0, error: undefined };
    case 'fieldNext':
      return { ...s, field: fields.length ? (s.field + 1) % fields.length : 0 };
    case 'fieldPrev':
      return { ...s, field: fields.length ? (s.field - 1 + fields.length) % fields.length : 0 };
    case 'guestNext':
    case 'guestPrev':
      if (!step.perGuest) return s;
      return clampField({ ...s, guest: (s.guest + (cmd === 'guestNext' ? 1 : -1) + s.draft.guests.length) % s.draft.guests.length });
    case 'add':
      if (!step.add) return s;
      {
        const next = setDraft(s, step.add(context(s)));
        const withGuest = step.id === 'guests' ? { ...next, guest: next.draft.guests.length - 1 } : next;
        return { ...withGuest, field: step.addedField?.(context(withGuest)) ?? 0 };
      }
    case 'remove':
      return step.remove ? setDraft(s, step.remove(context(s), s.field)) : s;
    case 'left':
    case 'right':
    case 'toggle':
      if (!f || (f.kind !== 'select' && f.kind !== 'toggle')) return s;
      return setDraft(s, applyValue(s.draft, f, cycle(f, valueOf(s.draft, f), cmd === 'left' ? -1 : 1)));
    case 'char':
      if (!f || (f.kind !== 'text' && f.kind !== 'number')) return s;
      return setDraft(s, applyValue(s.draft, f, typed(f, typeInto(display(s.draft, f), input))));
    case 'backspace':
      if (!f || (f.kind !== 'text' && f.kind !== 'number')) return s;
      return setDraft(s, applyValue(s.draft, f, typed(f, display(s.draft, f).slice(0, -1))));
    default:
      return s;
  }
}

export function reducer(s: State, a: Action): State {
  switch (a.type) {
    case 'key':
      return onKey(s, a.input, a.key);
    case 'ready':
      return { ...s, check: a.check, draft: syncRisks(s.draft, a.check) };
    case 'host':
      return { ...s, host: a.facts };
    case 'exposure':
      return { ...s, exposure: { ...s.exposure, [a.key]: a.score } };
    case 'format':
      return { ...s, formats: { ...s.formats, [a.path]: a.format } };
    case 'written':
      return { ...s, pending: undefined, outcome: { kind: a.kind, path: a.path }, step: DONE, field: 0 };
    case 'writeFailed':
      return { ...s, pending: undefined, error: a.message };
    case 'replaceNeeded':
      return { ...s, pending: undefined, review: { ...s.review, confirmReplace: true } };
  }
}
