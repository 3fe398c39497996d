// The interview as a reducer: raw input becomes keys, every key a named command (keys.ts), every command a new
// state. No terminal is needed to drive it, which is how most of it is tested. Steps are known only through
// their interface and optional hooks (steps/fields.ts), never by id or position.
import { STEPS } from '../../steps/index.js';
import { issuesByPath, riskKey, syncRisks, type Checker, type Draft } from '../../steps/draft.js';
import { applyValue, editText, type Field, type Step, type StepContext, typed, valueOf } from '../../steps/fields.js';
import type { HostFacts } from '../probe.js';
import { commandOf, decode, type Command, type Key } from './keys.js';
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
  /** lines: the last line the map or risks can scroll to; page: how many the screen shows. */
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
  | { type: 'reviewLines'; lines: number; page: number }
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

/** Problems that belong to the current step: on its fields, under its scope, or at the paths it owns. */
export function stepIssues(s: State): { path: string; message: string }[] {
  const step = stepOf(s);
  const ctx = context(s);
  const all = issuesByPath(s.draft, s.check);
  const prefixes = [...fieldsOf(s).map((f) => pathKey(f.path)), ...(step.scope?.(ctx) ?? []).map(pathKey)];
  const exact = new Set(step.owns?.(ctx) ?? []);
  return [...all.entries()]
    .filter(([p]) => exact.has(p) || prefixes.some((x) => p === x || p.startsWith(`${x}.`)))
    .map(([path, message]) => ({ path, message }));
}

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
  const commands: Command[] = ['next', 'fieldNext', 'fieldPrev', 'help', 'quit'];
  if (s.step > 0) commands.push('back');
  const labels: Partial<Record<Command, string>> = {};
  if (screen === 'review') {
    labels.next = 'do it';
    const focus = REVIEW_FIELDS[s.field];
    if (focus === 'view') {
      commands.push('left', 'right', 'guestPrev', 'guestNext');
      labels.left = labels.right = 'files/risks/map';
      labels.guestPrev = labels.guestNext = 'scroll';
      labels.fieldNext = labels.fieldPrev = s.review.tab === 'files' ? 'file' : 'line';
    } else if (focus === 'action') commands.push('left', 'right', 'toggle');
    else {
      commands.push('left', 'right', 'home', 'end', 'killLine', 'killWord');
      labels.left = labels.right = 'cursor';
      labels.home = labels.end = labels.killLine = labels.killWord = 'edit';
    }
    return { commands, labels };
  }
  if (step.perGuest && s.draft.guests.length > 1) commands.push('guestPrev', 'guestNext');
  if (step.add) {
    commands.push('add', 'remove');
    labels.add = step.addLabel ?? 'add';
  }
  const f = focusedField(s);
  if (f && !f.inactive?.(s.draft)) {
    if (f.kind === 'select' || f.kind === 'toggle') commands.push('left', 'right', 'toggle');
    else {
      commands.push('left', 'right', 'home', 'end', 'killLine', 'killWord');
      labels.left = labels.right = 'cursor';
      labels.home = labels.end = labels.killLine = labels.killWord = 'edit';
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

const moveTo = (s: State, field: number): State => ({ ...s, field, cursor: undefined });

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
    if (t === 'y' || t === 'n') return setDraft(s, applyValue(s.draft, f, t === 'y'));
    return { ...s, notice: `${f.label} is yes or no: Space, ←/→, y or n change it.` };
  }
  const opts = f.options ?? [];
  const at = opts.findIndex((o) => o.value === String(valueOf(s.draft, f) ?? ''));
  for (let k = 1; k <= opts.length; k++) {
    const o = opts[(at + k) % opts.length]!;
    if (o.label.toLowerCase().startsWith(t) || o.value.toLowerCase().startsWith(t))
      return setDraft(s, applyValue(s.draft, f, o.value));
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
    : { ...setDraft(moved, applyValue(s.draft, f, typed(f, line.value))), cursor: line.cursor };
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
  switch (cmd) {
    case 'fieldNext':
      if (focus !== 'view') return moveTo(s, s.field + 1);
      if (r.tab === 'files') return { ...s, review: { ...r, file: r.file + 1, scroll: 0 } };
      return { ...s, review: { ...r, scroll: Math.min(lastLine, r.scroll + 1) } };
    case 'fieldPrev':
      if (focus === 'view' && r.tab === 'files' && r.file > 0)
        return { ...s, review: { ...r, file: r.file - 1, scroll: 0 } };
      if (focus === 'view' && r.tab !== 'files' && r.scroll > 0)
        return { ...s, review: { ...r, scroll: r.scroll - 1 } };
      return moveTo(s, Math.max(0, s.field - 1));
    case 'guestNext':
      return focus === 'view' ? { ...s, review: { ...r, scroll: Math.min(lastLine, r.scroll + page) } } : s;
    case 'guestPrev':
      return focus === 'view' ? { ...s, review: { ...r, scroll: Math.max(0, r.scroll - page) } } : s;
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
      if (text) return { ...s, notice: 'Tab to the output directory to type; ←/→ change the other rows.' };
      return s;
  }
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
      if (!s.check) return s;
      if (stepIssues(s).length > 0) return { ...s, error: 'Fix the marked fields first.' };
      return { ...s, step: s.step + 1, field: 0, cursor: undefined, error: undefined };
    case 'back':
      return s.step === 0 ? s : { ...s, step: s.step - 1, field: 0, cursor: undefined, error: undefined };
    case 'fieldNext':
      return moveTo(s, fields.length ? (s.field + 1) % fields.length : 0);
    case 'fieldPrev':
      return moveTo(s, fields.length ? (s.field - 1 + fields.length) % fields.length : 0);
    case 'guestNext':
    case 'guestPrev':
      if (!step.perGuest) return s;
      return clampField({
        ...s,
        cursor: undefined,
        guest: (s.guest + (cmd === 'guestNext' ? 1 : -1) + s.draft.guests.length) % s.draft.guests.length,
      });
    case 'add': {
      if (!step.add) return { ...s, notice: 'Nothing to add on this step.' };
      const next = setDraft(s, step.add(context(s)));
      const to = step.afterAdd?.(context(next)) ?? {};
      const placed = { ...next, guest: to.guest ?? next.guest };
      return clampField({ ...placed, field: to.field ?? 0, cursor: undefined });
    }
    case 'remove':
      return step.remove
        ? { ...setDraft(s, step.remove(context(s), s.field)), cursor: undefined }
        : { ...s, notice: 'Nothing to remove on this step.' };
    case 'left':
    case 'right':
    case 'toggle':
      if (!f) return s;
      if (inactive) return { ...s, notice: `${f.label} does not apply: ${inactive}.` };
      if (f.kind !== 'select' && f.kind !== 'toggle') return s;
      return setDraft(s, applyValue(s.draft, f, cycle(f, valueOf(s.draft, f), cmd === 'left' ? -1 : 1)));
    default:
      if (key.name === 'text' && f) {
        if (inactive) return { ...s, notice: `${f.label} does not apply: ${inactive}.` };
        return typeOnChoice(s, f, key.text!);
      }
      if (key.name === 'text') return { ...s, notice: 'This step has no field to type into: Enter goes on.' };
      return s;
  }
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
  if (cmd === 'quit') return { ...s, quitting: true };
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
    case 'host':
      return { ...s, host: a.facts };
    case 'exposure':
      return { ...s, exposure: { ...s.exposure, [a.key]: a.score } };
    case 'format':
      return { ...s, formats: { ...s.formats, [a.path]: a.format } };
    case 'reviewLines':
      return a.lines === s.review.lines && a.page === s.review.page
        ? s
        : {
            ...s,
            review: {
              ...s.review,
              lines: a.lines,
              page: a.page,
              scroll: Math.min(s.review.scroll, Math.max(0, a.lines - 1)),
            },
          };
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
