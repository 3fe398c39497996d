// The interview as a reducer: raw input becomes keys, every key a named command (keys.ts), every command a new
// state. No terminal is needed to drive it, which is how most of it is tested. Steps are known only through
// their interface and optional hooks (steps/fields.ts), never by id or position.
import { STEPS } from '../../steps/index.js';
import { issuesByPath, riskKey, syncRisks, type Checker, type Draft } from '../../steps/draft.js';
import { CONFINEMENTS, DEFAULT_CONFINEMENT } from '../confinement.js';
import {
  applyValue,
  display,
  editText,
  type Field,
  type Step,
  type StepContext,
  typed,
  valueOf,
} from '../../steps/fields.js';
import type { HostFacts } from '../probe.js';
import { commandOf, decode, keyLabel, type Command, type Key } from './keys.js';
import { edit, insert, pasted } from './textedit.js';

export type ReviewTab = 'files' | 'risks' | 'map';

export interface State {
  step: number;
  guest: number;
  field: number;
  /** The cursor in the focused text field; undefined: at the end of its text. */
  cursor?: number;
  draft: Draft;
  /** The answers schema; until it has loaded nothing is checked, so nothing advances. */
  check?: Checker;
  host?: HostFacts;
  help: boolean;
  quitting: boolean;
  /** Text of a bracketed paste while it arrives; undefined outside one. */
  pasting?: string;
  /** Every reason typed for a risk in this interview, by risk and guest: a risk taken again gets it back. */
  reasons: Record<string, string>;
  /**
   * Fields the operator has changed or left, by dotted path. A field that shows nothing and has not been
   * touched keeps its problem to itself until the operator types in it, leaves it or presses Enter: an empty
   * field is a question, not an error.
   */
  touched: Record<string, true>;
  /** A removal waiting for y or n: the question and the draft without what it removes. */
  confirm?: { question: string; draft: Draft };
  /**
   * lines: the last line the shown view (map, risks, or the file's preview) can scroll to; page: how many the
   * screen shows; files: how many files; marks: the line of each guest's part of the map.
   */
  review: {
    action: 'bundle' | 'answers';
    outDir: string;
    file: number;
    scroll: number;
    tab: ReviewTab;
    confirmReplace: boolean;
    force: boolean;
    lines: number;
    page: number;
    files: number;
    marks: number[];
  };
  formats: Record<string, string>;
  /** systemd-analyze's exposure score, by guest name and unit text digest. */
  exposure: Record<string, number | 'unavailable'>;
  pending?: 'write';
  outcome?: { kind: 'bundle' | 'answers'; path: string };
  /** What stops the interview from going on; cleared by the next change. */
  error?: string;
  /** A one-key remark (a key that does nothing here, and why); cleared by the next key. */
  notice?: string;
  exit?: number;
}

export type Action =
  | { type: 'input'; raw: string }
  | { type: 'key'; key: Key }
  | { type: 'ready'; check: Checker }
  | { type: 'host'; facts: HostFacts }
  | { type: 'exposure'; key: string; score: number | 'unavailable' }
  | { type: 'format'; path: string; format: string }
  | { type: 'reviewLines'; lines: number; page: number; files: number; marks: number[] }
  | { type: 'written'; kind: 'bundle' | 'answers'; path: string }
  | { type: 'writeFailed'; message: string }
  | { type: 'replaceNeeded' };

export const DEFAULT_OUT = './qemu-harden-bundle';

export function initialState(draft: Draft, outDir = DEFAULT_OUT, check?: Checker): State {
  return {
    step: 0,
    guest: 0,
    field: 0,
    check,
    draft: syncRisks(draft, check),
    help: false,
    quitting: false,
    reasons: {},
    touched: {},
    review: {
      action: 'bundle',
      outDir,
      file: 0,
      scroll: 0,
      tab: 'files',
      confirmReplace: false,
      force: false,
      lines: 0,
      page: 8,
      files: 0,
      marks: [],
    },
    exposure: {},
    formats: {},
  };
}

export const stepOf = (s: State): Step => STEPS[s.step]!;
export const screenOf = (s: State) => stepOf(s).screen ?? 'form';

export function context(s: State): StepContext {
  return { draft: s.draft, guest: s.guest, host: s.host, formats: s.formats, check: s.check };
}

export function fieldsOf(s: State): Field[] {
  return stepOf(s).fields(context(s));
}

const pathKey = (p: (string | number)[]) => p.join('.');
const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}.`);

/**
 * Problems that belong to the current step, for the guest shown: on its fields, under its scope, or at the paths
 * it owns; each with the label the screen shows it under.
 */
export function stepIssues(s: State): { path: string; message: string; label: string }[] {
  const step = stepOf(s);
  const ctx = context(s);
  const all = issuesByPath(s.draft, s.check);
  if (all.size === 0) return [];
  const fields = fieldsOf(s).map((f) => ({ path: pathKey(f.path), label: f.label }));
  const scope = (step.scope?.(ctx) ?? []).map((x) => ({ path: pathKey(x.path), label: x.label }));
  const owns = step.owns?.(ctx) ?? [];
  const out: { path: string; message: string; label: string }[] = [];
  for (const [path, message] of all) {
    const label =
      fields.find((f) => under(path, f.path))?.label ??
      owns.find((o) => o.path === path)?.label ??
      scope.find((x) => under(path, x.path))?.label;
    if (label !== undefined) out.push({ path, message, label });
  }
  return out;
}

/**
 * The step's problems as the screen shows them: all but those of a field that shows nothing and that the
 * operator has not touched yet (a new disk's path, the reason a choice just asked for).
 */
export function shownIssues(s: State): { path: string; message: string; label: string }[] {
  const issues = stepIssues(s);
  if (issues.length === 0) return issues;
  const waiting = fieldsOf(s).filter((f) => !s.touched[pathKey(f.path)] && display(s.draft, f) === '');
  return issues.filter((i) => !waiting.some((f) => under(i.path, pathKey(f.path))));
}

/** The state with these fields marked as touched. */
function touch(s: State, fields: (Field | undefined)[]): State {
  const keys = fields.filter((f): f is Field => !!f).map((f) => pathKey(f.path));
  if (keys.every((k) => s.touched[k])) return s;
  const touched = { ...s.touched };
  for (const k of keys) touched[k] = true;
  return { ...s, touched };
}

/** Focus leaves the field it is on: from now on its problems are shown. */
const leave = (s: State) => (screenOf(s) === 'form' ? touch(s, [fieldsOf(s)[s.field]]) : s);

/** Review's own field layout: the action, the output directory, then what is shown (files, risks, map). */
export const REVIEW_FIELDS = ['action', 'out', 'view'] as const;

function focusedField(s: State): Field | undefined {
  return screenOf(s) === 'form' ? fieldsOf(s)[s.field] : undefined;
}

export function inTextField(s: State): boolean {
  if (screenOf(s) === 'review') return REVIEW_FIELDS[s.field] === 'out' && !s.review.confirmReplace;
  const f = focusedField(s);
  return !!f && (f.kind === 'text' || f.kind === 'number') && !f.inactive?.(s.draft);
}

/** The commands the current screen handles: what the footer lists. */
export function commandsOf(s: State): { commands: Command[]; labels: Partial<Record<Command, string>> } {
  const step = stepOf(s);
  const screen = screenOf(s);
  if (screen === 'done') return { commands: ['next', 'help', 'quit'], labels: { next: 'exit' } };
  const commands: Command[] = ['next', 'fieldNext', 'down', 'up', 'help', 'quit'];
  if (s.step > 0) commands.push('back');
  const labels: Partial<Record<Command, string>> = {};
  const editing: Command[] = ['left', 'right', 'home', 'end', 'delete', 'killLine', 'killWord'];
  const editLabels = (): void => {
    labels.left = labels.right = 'cursor';
    labels.home = labels.end = labels.delete = labels.killLine = labels.killWord = 'edit';
  };
  if (screen === 'review') {
    labels.next = 'do it';
    const focus = REVIEW_FIELDS[s.field];
    if (focus === 'view') {
      const tab = s.review.tab;
      commands.push('left', 'right', 'guestPrev', 'guestNext');
      labels.fieldNext = 'row';
      labels.down = labels.up = tab === 'files' ? 'file' : 'line';
      labels.left = labels.right = 'files/risks/map';
      labels.guestPrev = labels.guestNext = tab === 'map' ? 'guest' : 'page';
    } else if (focus === 'action') commands.push('left', 'right', 'toggle');
    else {
      commands.push(...editing);
      editLabels();
    }
    return { commands, labels };
  }
  if (step.perGuest && s.draft.guests.length > 1) commands.push('guestPrev', 'guestNext');
  if (step.add) {
    commands.push('add');
    labels.add = step.addLabel ?? 'add';
  }
  if (step.remove) commands.push('remove');
  const f = focusedField(s);
  if (f && !f.inactive?.(s.draft)) {
    if (f.kind === 'select' || f.kind === 'toggle') commands.push('left', 'right', 'toggle');
    else {
      commands.push(...editing);
      editLabels();
    }
  }
  return { commands, labels };
}

function clampField(s: State): State {
  const n = screenOf(s) === 'review' ? REVIEW_FIELDS.length : fieldsOf(s).length;
  return { ...s, field: Math.max(0, Math.min(s.field, n - 1)) };
}

/** Every change of the draft: risks synced (typed reasons remembered), the last complaint cleared. */
function setDraft(s: State, draft: Draft): State {
  const reasons = { ...s.reasons };
  for (const r of [...s.draft.acceptedRisks, ...draft.acceptedRisks])
    if (typeof r.reason === 'string' && r.reason !== '') reasons[riskKey(r)] = r.reason;
  const next = syncRisks(draft, s.check, reasons);
  for (const r of next.acceptedRisks) if (r.reason !== '') reasons[riskKey(r)] = r.reason;
  return clampField({
    ...s,
    draft: next,
    reasons,
    error: undefined,
    guest: Math.min(s.guest, draft.guests.length - 1),
  });
}

/** A choice that adds or removes fields before itself (a preset's use case asks for a reason) keeps the focus. */
function keepFocus(s: State, f: Field): State {
  const at = fieldsOf(s).findIndex((x) => x.path.join('.') === f.path.join('.'));
  return at >= 0 && at !== s.field ? { ...s, field: at } : s;
}

const moveTo = (s: State, field: number): State => ({ ...leave(s), field, cursor: undefined });

function cycle(f: Field, current: unknown, dir: 1 | -1): unknown {
  if (f.kind === 'toggle') return !current;
  const opts = f.options ?? [];
  const i = opts.findIndex((o) => o.value === String(current ?? ''));
  return opts[(i + dir + opts.length) % opts.length]?.value;
}

/** Letters typed on a choice: jump to the next option that starts with them; y/n set a yes/no field. */
function typeOnChoice(s: State, f: Field, text: string): State {
  const t = text.toLowerCase();
  if (f.kind === 'toggle') {
    if (t === 'y' || t === 'n') return setDraft(touch(s, [f]), applyValue(s.draft, f, t === 'y'));
    return { ...s, notice: `${f.label} is yes or no: Space, ←/→, y or n change it.` };
  }
  const opts = f.options ?? [];
  const at = opts.findIndex((o) => o.value === String(valueOf(s.draft, f) ?? ''));
  for (let k = 1; k <= opts.length; k++) {
    const o = opts[(at + k) % opts.length]!;
    if (o.label.toLowerCase().startsWith(t) || o.value.toLowerCase().startsWith(t))
      return setDraft(touch(s, [f]), applyValue(s.draft, f, o.value));
  }
  return { ...s, notice: `No choice of ${f.label} starts with "${text}": ←/→ or Space go through them.` };
}

/** Text editing in the focused text or number field of a form. */
function editField(
  s: State,
  f: Field,
  change: (line: { value: string; cursor: number }) => { value: string; cursor: number } | undefined,
): State | undefined {
  const value = editText(s.draft, f);
  const line = change({ value, cursor: s.cursor ?? value.length });
  if (!line) return undefined;
  const moved = { ...s, cursor: line.cursor };
  return line.value === value
    ? moved
    : { ...setDraft(touch(moved, [f]), applyValue(s.draft, f, typed(f, line.value))), cursor: line.cursor };
}

/** The line the map's guest part starts at: the first after `scroll` (dir 1) or the last before it (dir -1). */
function guestMark(marks: number[], scroll: number, dir: 1 | -1): number | undefined {
  return dir === 1 ? marks.find((m) => m > scroll) : [...marks].reverse().find((m) => m < scroll);
}

function onReviewKey(s: State, cmd: Command | undefined, key: Key): State {
  const r = s.review;
  const focus = REVIEW_FIELDS[s.field];
  const text = key.name === 'text' ? key.text! : '';
  if (r.confirmReplace) {
    if (text === 'y' || text === 'Y')
      return { ...s, review: { ...r, confirmReplace: false, force: true }, pending: 'write' };
    if (cmd === 'back' || text === 'n' || text === 'N') return { ...s, review: { ...r, confirmReplace: false } };
    return s;
  }
  if (cmd === 'back') return { ...s, step: s.step - 1, field: 0, cursor: undefined, error: undefined };
  if (cmd === 'next') return { ...s, pending: 'write', error: undefined };
  if (focus === 'out') {
    const line = cmd
      ? edit({ value: r.outDir, cursor: s.cursor ?? r.outDir.length }, cmd)
      : text
        ? insert({ value: r.outDir, cursor: s.cursor ?? r.outDir.length }, text)
        : undefined;
    if (line) return { ...s, cursor: line.cursor, review: { ...r, outDir: line.value, force: false } };
  }
  const page = Math.max(1, r.page);
  const lastLine = Math.max(0, r.lines - 1);
  const scrollTo = (line: number): State => ({
    ...s,
    review: { ...r, scroll: Math.max(0, Math.min(lastLine, line)) },
  });
  const toFile = (file: number): State => ({ ...s, review: { ...r, file, scroll: 0 } });
  switch (cmd) {
    // Tab always goes on to the next row, whatever the view shows, so the map never holds the focus.
    case 'fieldNext':
      return moveTo(s, (s.field + 1) % REVIEW_FIELDS.length);
    case 'down':
      if (focus !== 'view') return moveTo(s, s.field + 1);
      if (r.tab === 'files') return toFile(Math.min(r.file + 1, Math.max(0, r.files - 1)));
      return scrollTo(r.scroll + 1);
    case 'up':
      if (focus === 'view' && r.tab === 'files' && r.file > 0) return toFile(r.file - 1);
      if (focus === 'view' && r.tab !== 'files' && r.scroll > 0) return scrollTo(r.scroll - 1);
      return moveTo(s, Math.max(0, s.field - 1));
    case 'guestNext':
    case 'guestPrev': {
      if (focus !== 'view') return s;
      const dir = cmd === 'guestNext' ? 1 : -1;
      if (r.tab !== 'map') return scrollTo(r.scroll + dir * page);
      const mark = guestMark(r.marks, Math.min(r.scroll, lastLine), dir);
      return mark === undefined ? s : scrollTo(mark);
    }
    case 'left':
    case 'right':
    case 'toggle':
      if (focus === 'action') return { ...s, review: { ...r, action: r.action === 'bundle' ? 'answers' : 'bundle' } };
      if (focus === 'view') {
        const tabs: ReviewTab[] = ['files', 'risks', 'map'];
        const i = tabs.indexOf(r.tab) + (cmd === 'left' ? -1 : 1);
        return { ...s, review: { ...r, tab: tabs[(i + tabs.length) % tabs.length]!, scroll: 0 } };
      }
      return s;
    default:
      if (text && focus === 'view' && r.tab === 'map') return jumpToGuest(s, text);
      if (text) return { ...s, notice: 'Tab to the output directory to type; ←/→ change the other rows.' };
      return s;
  }
}

/** Letters typed on the map: its part for the next guest whose name starts with them. */
function jumpToGuest(s: State, text: string): State {
  const r = s.review;
  const names = s.draft.guests.map((g) => String(g.name ?? ''));
  const at = r.marks.filter((m) => m <= r.scroll).length - 1;
  for (let k = 1; k <= names.length; k++) {
    const i = (at + k + names.length) % names.length;
    if (names[i]!.startsWith(text.toLowerCase()) && r.marks[i] !== undefined)
      return { ...s, review: { ...r, scroll: Math.min(r.marks[i]!, Math.max(0, r.lines - 1)) } };
  }
  return { ...s, notice: `No guest's name starts with "${text}".` };
}

function onFormKey(s: State, cmd: Command | undefined, key: Key): State {
  const step = stepOf(s);
  const fields = fieldsOf(s);
  const f = fields[s.field];
  const inactive = f?.inactive?.(s.draft);
  const isText = !!f && (f.kind === 'text' || f.kind === 'number');
  if (f && !inactive && isText) {
    const edited =
      key.name === 'text' && !cmd
        ? editField(s, f, (l) => insert(l, key.text!))
        : cmd
          ? editField(s, f, (l) => edit(l, cmd))
          : undefined;
    if (edited) return edited;
  }
  switch (cmd) {
    case 'next':
      return onNext(s);
    case 'back':
      return s.step === 0 ? s : { ...leave(s), step: s.step - 1, field: 0, cursor: undefined, error: undefined };
    case 'fieldNext':
    case 'down':
      return moveTo(s, fields.length ? (s.field + 1) % fields.length : 0);
    case 'up':
      return moveTo(s, fields.length ? (s.field - 1 + fields.length) % fields.length : 0);
    case 'guestNext':
    case 'guestPrev':
      if (!step.perGuest) return s;
      return clampField({
        ...leave(s),
        cursor: undefined,
        guest: (s.guest + (cmd === 'guestNext' ? 1 : -1) + s.draft.guests.length) % s.draft.guests.length,
      });
    case 'add': {
      if (!step.add) return { ...s, notice: 'Nothing to add on this step.' };
      const next = setDraft(leave(s), step.add(context(s)));
      const to = step.afterAdd?.(context(next)) ?? {};
      const placed = { ...next, guest: to.guest ?? next.guest };
      return clampField({ ...placed, field: to.field ?? 0, cursor: undefined });
    }
    case 'remove': {
      if (!step.remove) return { ...s, notice: 'Nothing to remove on this step.' };
      const r = step.remove(context(s), s.field);
      if (typeof r === 'string') return { ...s, notice: r };
      return { ...s, confirm: { question: `Remove ${r.what}? (y/n)`, draft: r.draft } };
    }
    case 'delete':
      return {
        ...s,
        notice: `${keyLabel('delete')} erase in text fields${step.remove ? `; ${keyLabel('remove')} removes` : ''}.`,
      };
    case 'left':
    case 'right':
    case 'toggle':
      if (!f) return s;
      if (inactive) return { ...s, notice: `${f.label} does not apply: ${inactive}.` };
      if (f.kind !== 'select' && f.kind !== 'toggle') return s;
      return keepFocus(
        setDraft(touch(s, [f]), applyValue(s.draft, f, cycle(f, valueOf(s.draft, f), cmd === 'left' ? -1 : 1))),
        f,
      );
    default:
      if (key.name === 'text' && f) {
        if (inactive) return { ...s, notice: `${f.label} does not apply: ${inactive}.` };
        return typeOnChoice(s, f, key.text!);
      }
      if (key.name === 'text') return { ...s, notice: 'This step has no field to type into: Enter goes on.' };
      return s;
  }
}

/**
 * Enter on a form: on to the next step once this one has no problem, for any guest. A guest with a problem
 * here is shown, its first marked field focused; every problem of the step is shown from then on.
 */
function onNext(s: State): State {
  if (!s.check) return s;
  const markAll = (x: State) => touch(x, fieldsOf(x));
  const here = stepIssues(s);
  if (here.length > 0) {
    // Focus stays on a marked field, or goes to the first one.
    const marked = fieldsOf(s).map((f) => here.some((i) => under(i.path, pathKey(f.path))));
    const field = marked[s.field] || !marked.includes(true) ? s.field : marked.indexOf(true);
    return {
      ...markAll(s),
      field,
      cursor: field === s.field ? s.cursor : undefined,
      error: 'Fix the marked fields first.',
    };
  }
  if (stepOf(s).perGuest)
    for (let k = 1; k < s.draft.guests.length; k++) {
      const guest = (s.guest + k) % s.draft.guests.length;
      const there = markAll({ ...leave(s), guest, cursor: undefined });
      const issues = stepIssues(there);
      if (issues.length === 0) continue;
      const field = fieldsOf(there).findIndex((f) => issues.some((i) => under(i.path, pathKey(f.path))));
      const name = String(s.draft.guests[guest]!.name ?? '');
      return { ...there, field: Math.max(0, field), error: `Guest ${guest + 1} "${name}" needs an answer here too.` };
    }
  return { ...leave(s), step: s.step + 1, field: 0, cursor: undefined, error: undefined };
}

function onKey(s0: State, key: Key): State {
  const s = s0.notice ? { ...s0, notice: undefined } : s0;
  if (s.pasting !== undefined) {
    if (key.name === 'pasteEnd') return onPaste({ ...s, pasting: undefined }, s.pasting);
    return {
      ...s,
      pasting:
        s.pasting + (key.name === 'text' ? key.text! : key.name === 'return' ? '\n' : key.name === 'tab' ? ' ' : ''),
    };
  }
  if (key.name === 'pasteStart') return { ...s, pasting: '' };
  const cmd = commandOf(key, inTextField(s));
  if (s.quitting) {
    if (key.text === 'y' || key.text === 'Y') return { ...s, exit: 130 };
    if (key.text === 'n' || key.text === 'N' || cmd === 'back') return { ...s, quitting: false };
    return s;
  }
  if (cmd === 'quit') return { ...s, quitting: true, confirm: undefined };
  if (s.confirm) {
    if (key.text === 'y' || key.text === 'Y')
      return { ...setDraft({ ...s, confirm: undefined }, s.confirm.draft), cursor: undefined };
    if (key.text === 'n' || key.text === 'N' || cmd === 'back') return { ...s, confirm: undefined };
    return s;
  }
  if (cmd === 'help') return { ...s, help: !s.help };
  const screen = screenOf(s);
  if (screen === 'done') return cmd === 'next' ? { ...s, exit: 0 } : s;
  if (screen === 'review') return clampField(onReviewKey(s, cmd, key));
  return onFormKey(s, cmd, key);
}

/** A paste is text for the focused text field, however it ends; anywhere else it is not typed. */
function onPaste(s: State, text: string): State {
  const clean = pasted(text);
  if (!inTextField(s)) return clean ? { ...s, notice: 'Pasted text goes into text fields; this one is a choice.' } : s;
  return onKey(s, { name: 'text', text: clean });
}

export function reducer(s: State, a: Action): State {
  switch (a.type) {
    case 'input':
      return decode(a.raw).reduce(onKey, s);
    case 'key':
      return onKey(s, a.key);
    case 'ready':
      return { ...s, check: a.check, draft: syncRisks(s.draft, a.check, s.reasons) };
    case 'host': {
      // The bundle is for this host's release unless the answers name another: the probe's answer goes into the
      // draft, where the Host step shows it and the operator can change it. So is the mandatory access control
      // this host enforces, where it is one the answers can name and not the default (which they leave out).
      const target = s.draft.host?.target ?? a.facts.target;
      const enforced = (a.facts.confinement ?? []).filter((c) => c.enforced).map((c) => c.id);
      const found = CONFINEMENTS.find((c) => enforced.length === 1 && c === enforced[0] && c !== DEFAULT_CONFINEMENT);
      const confinement = s.draft.host?.confinement ?? found;
      const host = { ...s.draft.host, target, ...(confinement ? { confinement } : {}) };
      const same = target === s.draft.host?.target && confinement === s.draft.host?.confinement;
      return { ...s, host: a.facts, draft: same ? s.draft : { ...s.draft, host } };
    }
    case 'exposure':
      return { ...s, exposure: { ...s.exposure, [a.key]: a.score } };
    case 'format':
      return { ...s, formats: { ...s.formats, [a.path]: a.format } };
    case 'reviewLines': {
      const r = s.review;
      if (a.lines === r.lines && a.page === r.page && a.files === r.files && a.marks.join() === r.marks.join())
        return s;
      return {
        ...s,
        review: {
          ...r,
          lines: a.lines,
          page: a.page,
          files: a.files,
          marks: a.marks,
          scroll: Math.min(r.scroll, Math.max(0, a.lines - 1)),
        },
      };
    }
    case 'written':
      return {
        ...s,
        pending: undefined,
        outcome: { kind: a.kind, path: a.path },
        step: STEPS.findIndex((x) => x.screen === 'done'),
        field: 0,
      };
    case 'writeFailed':
      return { ...s, pending: undefined, error: a.message };
    case 'replaceNeeded':
      return { ...s, pending: undefined, review: { ...s.review, confirmReplace: true } };
  }
}
