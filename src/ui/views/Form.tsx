// A step's fields: label, the value as it will be written, the cursor in a text field, and every problem the
// schema finds on the step, in full (wrapped, never cut).
import { Box, Text, useStdout } from 'ink';
import { display, editText, type Field } from '../../../steps/fields.js';
import type { Draft } from '../../../steps/draft.js';
import { keyLabel } from '../keys.js';
import { context, fieldsOf, shownIssues, stepOf, type State } from '../state.js';
import { color, wrap } from './text.js';

function Value({ d, f, focused, cursor }: { d: Draft; f: Field; focused: boolean; cursor?: number }) {
  const inactive = f.inactive?.(d);
  if (inactive) return <Text dimColor>does not apply ({inactive})</Text>;
  const shown = display(d, f);
  if (f.kind === 'select' || f.kind === 'toggle') return <Text>{shown + (focused ? ' ◂▸' : '')}</Text>;
  const own = editText(d, f);
  if (!focused) return own === '' && shown !== '' ? <Text>{shown}</Text> : <Text>{shown || '—'}</Text>;
  if (own === '' && shown !== '')
    return (
      <Text>
        <Text inverse>{shown[0]}</Text>
        <Text dimColor>{shown.slice(1)}</Text>
      </Text>
    );
  const c = Math.max(0, Math.min(cursor ?? own.length, own.length));
  return (
    <Text>
      {own.slice(0, c)}
      <Text inverse>{own[c] ?? ' '}</Text>
      {own.slice(c + 1)}
    </Text>
  );
}

export function Form({ s }: { s: State }) {
  const { stdout } = useStdout();
  const width = stdout.columns || 80;
  const rows = stdout.rows || 24;
  const step = stepOf(s);
  const fields = fieldsOf(s);
  const issues = shownIssues(s);
  const focusKey = fields[s.field]?.path.join('.');
  // The focused field's problem first, then the others: each in full.
  const ordered = [...issues].sort(
    (x, y) =>
      Number(y.path === focusKey || y.path.startsWith(`${focusKey}.`)) -
      Number(x.path === focusKey || x.path.startsWith(`${focusKey}.`)),
  );
  const messages = ordered.map((x) => wrap(`✗ ${x.label}: ${x.message}`, width - 1));
  const notes = (step.notes?.(context(s)) ?? []).flatMap((n) => wrap(n, width - 1));
  const focused = fields[s.field];
  const hint =
    focused?.hint && !issues.some((x) => x.path === focusKey)
      ? wrap(`${focused.label}: ${focused.hint}`, width - 1)
      : [];
  // Everything must fit the terminal: the header, notes, the footer (two lines), the why panel when open.
  const question = s.quitting ? 1 : s.confirm ? wrap(s.confirm.question, width - 1).length : 0;
  const chrome = 1 + 3 + (s.help ? 6 : 0) + (s.error ? 1 : 0) + (s.notice ? 1 : 0) + (step.tip ? 1 : 0) + question;
  let budget = rows - 1 - chrome - notes.length - hint.length;
  const shownMessages: string[][] = [];
  for (const m of messages) {
    // The first (the focused field's, if it has one) is always shown whole; the others while there is room.
    if (shownMessages.length > 0 && budget - m.length < Math.min(fields.length, 4) + 1) break;
    shownMessages.push(m);
    budget -= m.length;
  }
  const hidden = messages.length - shownMessages.length;
  if (hidden) budget--;
  const window = Math.max(1, Math.min(fields.length, budget));
  const start = Math.max(0, Math.min(s.field - Math.floor(window / 2), fields.length - window));
  return (
    <Box flexDirection="column">
      {notes.map((n, i) => (
        <Text key={`n${i}`} color={color('yellow')}>
          {n}
        </Text>
      ))}
      {fields.slice(start, start + window).map((f, k) => {
        const i = start + k;
        const key = f.path.join('.');
        const bad = issues.some((x) => x.path === key || x.path.startsWith(`${key}.`));
        const isFocused = i === s.field;
        return (
          <Text key={key} wrap="truncate-end">
            <Text color={isFocused ? color('cyan') : undefined}>{isFocused ? '› ' : '  '}</Text>
            <Text>{f.label.padEnd(30)}</Text>
            <Value d={s.draft} f={f} focused={isFocused} cursor={s.cursor} />
            {bad ? <Text color={color('red')}> ✗</Text> : null}
          </Text>
        );
      })}
      {fields.length === 0 && step.add ? (
        <Text dimColor>
          Nothing yet: {keyLabel('add')} to {step.addLabel}.
        </Text>
      ) : null}
      {hint.map((h, i) => (
        <Text key={`h${i}`} dimColor>
          {h}
        </Text>
      ))}
      {shownMessages.flat().map((m, i) => (
        <Text key={`m${i}`} color={color('red')}>
          {m}
        </Text>
      ))}
      {hidden ? <Text color={color('red')}>… and {hidden} more: Tab to the marked fields to read them.</Text> : null}
      {s.error ? <Text color={color('red')}>{s.error}</Text> : null}
    </Box>
  );
}
