// The review: what will be written (files), the risks taken with their reasons, and the least-privilege map
// of every guest, scrolled; nothing is written until Enter.
import { Box, Text, useStdout } from 'ink';
import { resolve } from 'node:path';
import { useEffect, useMemo, type Dispatch } from 'react';
import type { Engine, usePlan } from '../hooks.js';
import { REVIEW_FIELDS, type Action, type State } from '../state.js';
import { color, wrap } from './text.js';

const EXPOSURE =
  'Exposure is systemd-analyze security’s score of each unit: 0 means every sandboxing setting it knows is used, 10 none of them; lower is better.';

/** The lines of the risks or the map, and for the map the line each guest's part starts at. */
function viewLines(
  s: State,
  engine: Engine,
  plan: ReturnType<typeof usePlan>,
  width: number,
): { lines: string[]; marks: number[] } {
  const answers = plan.answers!;
  if (s.review.tab === 'risks') {
    const risks = engine.requiredRisks(answers);
    if (risks.length === 0) return { lines: ['No accepted risks: every choice is the secure default.'], marks: [] };
    const lines = risks.flatMap((x) =>
      wrap(
        `! ${x.risk}${x.guest ? ` (${x.guest})` : ''}: ${answers.acceptedRisks.find((a) => a.risk === x.risk && a.guest === x.guest)?.reason ?? ''}`,
        width,
      ),
    );
    return { lines, marks: [] };
  }
  const units = engine.guestUnits(answers, plan.files);
  const out = wrap(EXPOSURE, width);
  const marks: number[] = [];
  for (const g of answers.guests) {
    const e = s.exposure[units.find((u) => u.guest === g.name)!.key];
    const score =
      e === undefined
        ? 'measuring…'
        : e === 'unavailable'
          ? 'n/a (systemd-analyze not installed)'
          : `${e} (target ≤ ${engine.exposureTarget(g)})`;
    const [head, ...rest] = engine.reachLines(engine.guestReach(answers, g));
    out.push('');
    marks.push(out.length);
    out.push(
      `${g.name} as ${engine.guestReach(answers, g).user} · exposure ${score}`,
      ...wrap(head!.replace(/^\S+ — /, '  '), width, '      '),
    );
    for (const l of rest) out.push(...wrap(l, width, '            '));
  }
  return { lines: out, marks };
}

const NO_LINES: { lines: string[]; marks: number[] } = { lines: [], marks: [] };

/** The guest whose part of the map the window starts in. */
function guestAt(s: State, marks: number[], start: number): string {
  const i = Math.max(0, marks.filter((m) => m <= start).length - 1);
  return `guest ${i + 1}/${marks.length} "${String(s.draft.guests[i]?.name ?? '')}"`;
}

export function Review({
  s,
  engine,
  plan,
  dispatch,
}: {
  s: State;
  engine: Engine;
  plan: ReturnType<typeof usePlan>;
  dispatch: Dispatch<Action>;
}) {
  const { stdout } = useStdout();
  const width = (stdout.columns || 80) - 1;
  const page = Math.max(4, (stdout.rows || 24) - 11 - (s.help ? 6 : 0));
  const r = s.review;
  const focus = REVIEW_FIELDS[s.field];
  // Built once per plan, measured scores, tab and width: scrolling only moves the window over them.
  const { lines, marks } = useMemo(
    () => (plan.answers && r.tab !== 'files' ? viewLines(s, engine, plan, width) : NO_LINES),
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the lines depend on the plan, the scores, the tab and the width, not on focus or scroll
    [plan, s.exposure, r.tab, width],
  );
  const files = plan.files;
  const file = files[Math.min(r.file, files.length - 1)];
  const preview = Math.max(2, page - 8);
  // The reducer scrolls and jumps: it is told how far each view goes and where each guest's part of the map is.
  const shown = r.tab === 'files' ? (file?.content.split('\n').length ?? 0) : lines.length;
  const last = Math.max(0, shown - (r.tab === 'files' ? preview : page) + 1);
  useEffect(() => {
    dispatch({
      type: 'reviewLines',
      lines: last,
      page: r.tab === 'files' ? preview : page,
      files: files.length,
      marks,
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps -- dispatch is the reducer's, stable for the App's life
  }, [last, page, preview, r.tab, files.length, marks]);
  if (!plan.answers)
    return (
      <Box flexDirection="column">
        <Text color={color('red')}>The answers are not valid yet; go back (Esc) and fix:</Text>
        {(plan.errors ?? [])
          .slice(0, page)
          .flatMap((e) => wrap(`✗ ${e}`, width))
          .map((l, i) => (
            <Text key={i} color={color('red')}>
              {l}
            </Text>
          ))}
      </Box>
    );
  const out = r.action === 'bundle' ? r.outDir : `${r.outDir}.answers.json`;
  const c = Math.max(0, Math.min(s.cursor ?? r.outDir.length, r.outDir.length));
  const row = (label: string, i: number, value: React.ReactNode) => (
    <Text wrap="truncate-end">
      <Text color={focus === REVIEW_FIELDS[i] ? color('cyan') : undefined}>
        {focus === REVIEW_FIELDS[i] ? '› ' : '  '}
      </Text>
      {label.padEnd(12)}
      {value}
    </Text>
  );
  const start = Math.min(r.scroll, Math.max(0, lines.length - page));
  return (
    <Box flexDirection="column">
      {row('Action', 0, r.action === 'bundle' ? 'write the bundle ◂▸' : 'save answers only ◂▸')}
      {row(
        'Output',
        1,
        focus === 'out' ? (
          <Text>
            {r.outDir.slice(0, c)}
            <Text inverse>{r.outDir[c] ?? ' '}</Text>
            {r.outDir.slice(c + 1)}
            {out.slice(r.outDir.length)}
          </Text>
        ) : (
          out
        ),
      )}
      {row('Show', 2, (['files', 'risks', 'map'] as const).map((t) => (t === r.tab ? `[${t}]` : ` ${t} `)).join(' '))}
      {r.confirmReplace ? (
        <Text color={color('yellow')}>{resolve(r.outDir)} exists and is not empty. Replace it? (y/n)</Text>
      ) : null}
      {s.error ? <Text color={color('red')}>{s.error}</Text> : null}
      {r.tab === 'files' ? (
        <Box flexDirection="column">
          <Text dimColor wrap="truncate-end">
            {files.length} files · {file!.why}
          </Text>
          {files
            .slice(
              Math.max(0, Math.min(r.file - 3, files.length - 7)),
              Math.max(0, Math.min(r.file - 3, files.length - 7)) + 7,
            )
            .map((f) => (
              <Text key={f.path} wrap="truncate-end" color={f === file ? color('cyan') : undefined}>
                {f === file ? '›' : ' '} {f.path}
              </Text>
            ))}
          {file!.content
            .split('\n')
            .slice(r.scroll, r.scroll + preview)
            .map((l, i) => (
              <Text key={i} dimColor wrap="truncate-end">
                {'  │ '}
                {l}
              </Text>
            ))}
        </Box>
      ) : (
        <Box flexDirection="column">
          {lines.slice(start, start + page).map((l, i) => (
            <Text key={i} wrap="truncate-end" color={r.tab === 'risks' ? color('yellow') : undefined}>
              {l || ' '}
            </Text>
          ))}
          {lines.length > page ? (
            <Text dimColor wrap="truncate-end">
              lines {start + 1}-{Math.min(lines.length, start + page)} of {lines.length}
              {r.tab === 'map' ? ` · ${guestAt(s, marks, start)}; type a name to jump to it` : ''}
            </Text>
          ) : null}
        </Box>
      )}
    </Box>
  );
}
