// The interview's view. It renders the state and turns keys into actions; everything it decides is in state.ts,
// everything it writes goes through the engine (engine.ts), loaded once the first frame is on the screen. Keys
// pressed before then are held and replayed in order.
import { Box, Text, useApp, useInput } from 'ink';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { useEffect, useMemo, useReducer, useRef, useState } from 'react';
import { STEPS } from '../../steps/index.js';
import * as G from '../guest.js';
import type { Answers } from '../model.js';
import type { BundleFile } from '../plan.js';
import type { HostFacts } from '../probe.js';
import { RISKS, requiredRisks } from '../rules.js';
import type { Draft } from './draft.js';
import { display } from './fields.js';
import { context, DONE, fieldsOf, initialState, reducer, REVIEW, REVIEW_FIELDS, stepIssues, type KeyInfo, type State } from './state.js';

type Engine = typeof import('./engine.js');

const color = (c: string) => (process.env.NO_COLOR ? undefined : c);

export interface AppProps {
  draft: Draft;
  outDir?: string;
  /** The host probe; the engine's probeHost unless a test gives its own. */
  probe?: () => Promise<HostFacts>;
  onExit: (code: number) => void;
}

function tryValidate(engine: Engine, d: Draft): { answers?: Answers; errors?: string[] } {
  try {
    return { answers: engine.validate(d) };
  } catch (e) {
    if (e instanceof engine.InputError) return { errors: e.message.split('\n') };
    throw e;
  }
}

function footer(s: State): string {
  if (s.quitting) return 'y quit without writing · n keep going';
  if (s.review.confirmReplace) return 'y replace it · n keep it';
  const step = STEPS[s.step]!;
  if (s.step === DONE) return 'Enter exit · ? why · ^C quit';
  const keys = ['Enter ' + (s.step === REVIEW ? 'do it' : 'next'), 'Esc/⇧Tab back', 'Tab/↑↓ field', '←→ change'];
  if (step.perGuest) keys.push('PgUp/PgDn guest');
  if (s.step === REVIEW) keys.push('PgUp/PgDn scroll');
  if (step.add) keys.push(`^N ${step.addLabel}`, '^D remove');
  keys.push('? why', '^C quit');
  return keys.join(' · ');
}

function Header({ s }: { s: State }) {
  const step = STEPS[s.step]!;
  const guest = step.perGuest ? ` · guest ${s.guest + 1}/${s.draft.guests.length} "${String(s.draft.guests[s.guest]?.name ?? '')}"` : '';
  return (
    <Text bold color={color('cyan')}>
      qemu-harden · {s.step + 1}/{STEPS.length} {step.title}
      {guest}
    </Text>
  );
}

function Why({ s }: { s: State }) {
  if (!s.help) return null;
  return (
    <Box borderStyle="round" paddingX={1}>
      <Text>{STEPS[s.step]!.why.join(' ')}</Text>
    </Box>
  );
}

function Form({ s }: { s: State }) {
  const step = STEPS[s.step]!;
  const fields = fieldsOf(s);
  const issues = stepIssues(s);
  const ctx = context(s);
  const notes = (step.notes?.(ctx) ?? []).slice(0, 9);
  const shown = new Set<string>();
  const start = Math.max(0, Math.min(s.field - 5, fields.length - 11));
  return (
    <Box flexDirection="column">
      {notes.map((n, i) => (
        <Text key={`n${i}`} color={color('yellow')}>
          {n}
        </Text>
      ))}
      {fields.slice(start, start + 11).map((f, k) => {
        const i = start + k;
        const key = f.path.join('.');
        const issue = issues.find((x) => x.path === key || x.path.startsWith(`${key}.`));
        if (issue) shown.add(issue.path);
        const focused = i === s.field;
        const value = display(s.draft, f);
        return (
          <Text key={key} wrap="truncate-end">
            <Text color={focused ? color('cyan') : undefined}>{focused ? '› ' : '  '}</Text>
            <Text>{f.label.padEnd(30)}</Text>
            <Text inverse={focused && (f.kind === 'text' || f.kind === 'number')}>{(value || (focused ? ' ' : '—')) + (f.kind === 'select' || f.kind === 'toggle' ? (focused ? ' ◂▸' : '') : '')}</Text>
            {issue ? <Text color={color('red')}> ✗ {issue.message}</Text> : focused && f.hint ? <Text dimColor> {f.hint}</Text> : null}
          </Text>
        );
      })}
      {fields.length === 0 && step.add ? <Text dimColor>Nothing yet: Ctrl+N to {step.addLabel}.</Text> : null}
      {issues
        .filter((x) => !shown.has(x.path))
        .slice(0, 3)
        .map((x) => (
          <Text key={x.path} color={color('red')} wrap="truncate-end">
            ✗ {x.path}: {x.message}
          </Text>
        ))}
    </Box>
  );
}

/** Each guest's unit, keyed by its own text: exposure is cached by that key, so a changed unit is measured anew. */
function guestUnits(engine: Engine, answers: Answers, files: BundleFile[]): { guest: string; key: string; content: string; file: string }[] {
  return answers.guests.map((g) => {
    const file = G.unitName(g);
    const content = files.find((f) => f.path === `root/etc/systemd/system/${file}`)!.content;
    return { guest: g.name, key: `${g.name}:${engine.sha256(content)}`, content, file };
  });
}

function fileTree(files: BundleFile[], selected: number): string[] {
  const start = Math.max(0, Math.min(selected - 3, files.length - 7));
  return files.slice(start, start + 7).map((f, k) => `${start + k === selected ? '›' : ' '} ${f.path}`);
}

function Review({ s, engine, answers, errors, files }: { s: State; engine: Engine; answers?: Answers; errors?: string[]; files: BundleFile[] }) {
  const r = s.review;
  const focus = REVIEW_FIELDS[s.field];
  if (!answers)
    return (
      <Box flexDirection="column">
        <Text color={color('red')}>The answers are not valid yet; go back (Esc) and fix:</Text>
        {(errors ?? []).slice(0, 12).map((e) => (
          <Text key={e} color={color('red')} wrap="truncate-end">
            ✗ {e}
          </Text>
        ))}
      </Box>
    );
  const file = files[Math.min(r.file, files.length - 1)]!;
  const lines = file.content.split('\n');
  const risks = requiredRisks(answers);
  const units = guestUnits(engine, answers, files);
  const row = (label: string, value: string, i: number) => (
    <Text wrap="truncate-end">
      <Text color={focus === REVIEW_FIELDS[i] ? color('cyan') : undefined}>{focus === REVIEW_FIELDS[i] ? '› ' : '  '}</Text>
      {label.padEnd(12)}
      <Text inverse={focus === 'out' && i === 1}>{value}</Text>
    </Text>
  );
  return (
    <Box flexDirection="column">
      {row('Action', r.action === 'bundle' ? 'write the bundle ◂▸' : 'save answers only ◂▸', 0)}
      {row('Output', r.action === 'bundle' ? r.outDir : `${r.outDir}.answers.json`, 1)}
      {row('Show', (['files', 'risks', 'map'] as const).map((t) => (t === r.tab ? `[${t}]` : ` ${t} `)).join(' '), 2)}
      {r.confirmReplace ? <Text color={color('yellow')}>{resolve(r.outDir)} exists and is not empty. Replace it? (y/n)</Text> : null}
      {s.error ? <Text color={color('red')}>{s.error}</Text> : null}
      {r.tab === 'files' ? (
        <Box flexDirection="column">
          <Text dimColor wrap="truncate-end">
            {files.length} files · {file.why}
          </Text>
          {fileTree(files, r.file).map((l) => (
            <Text key={l} wrap="truncate-end" color={l.startsWith('›') ? color('cyan') : undefined}>
              {l}
            </Text>
          ))}
          {lines.slice(r.scroll, r.scroll + 6).map((l, i) => (
            <Text key={i} dimColor wrap="truncate-end">
              {'  │ '}
              {l}
            </Text>
          ))}
        </Box>
      ) : r.tab === 'risks' ? (
        <Box flexDirection="column">
          {risks.length === 0 ? <Text>No accepted risks: every choice is the secure default.</Text> : null}
          {risks.slice(0, 12).map((x) => (
            <Text key={`${x.risk}${x.guest}`} wrap="truncate-end" color={color('yellow')}>
              ! {RISKS[x.risk].title}
              {x.guest ? ` (${x.guest})` : ''}: {answers.acceptedRisks.find((a) => a.risk === x.risk && a.guest === x.guest)?.reason}
            </Text>
          ))}
        </Box>
      ) : (
        <Box flexDirection="column">
          {answers.guests.slice(0, 3).map((g) => {
            const e = s.exposure[units.find((u) => u.guest === g.name)!.key];
            const reach = [...G.filesOf(g).map((f) => `${f.path} (${f.access})`), ...G.devicesOf(answers, g).map((d) => `${d.path} (${d.access})`), G.runtimeDir(g)];
            return (
              <Box key={g.name} flexDirection="column">
                <Text wrap="truncate-end">
                  <Text bold>{g.name}</Text> as {G.userName(g)} · exposure{' '}
                  {e === undefined ? 'measuring…' : e === 'unavailable' ? 'n/a (systemd-analyze not installed)' : `${e} (target ≤ ${engine.exposureTarget(g)})`}
                </Text>
                <Text wrap="truncate-end" dimColor>
                  {'  reaches: '}
                  {reach.join(', ')}
                </Text>
              </Box>
            );
          })}
          {answers.guests.length > 3 ? <Text dimColor>… and {answers.guests.length - 3} more guests (see the bundle README)</Text> : null}
        </Box>
      )}
    </Box>
  );
}

function Done({ s }: { s: State }) {
  const o = s.outcome!;
  return (
    <Box flexDirection="column">
      <Text color={color('green')}>
        ✔ {o.kind === 'bundle' ? 'Bundle written to' : 'Answers saved to'} {o.path}
      </Text>
      <Text> </Text>
      {o.kind === 'bundle' ? (
        <>
          <Text>Next:</Text>
          <Text>  qemu-harden verify {o.path}</Text>
          <Text>  qemu-harden apply {o.path} --dry-run</Text>
          <Text>  sudo qemu-harden apply {o.path}</Text>
        </>
      ) : (
        <>
          <Text>Next:</Text>
          <Text>  qemu-harden generate --answers {o.path} --out ./qemu-harden-bundle</Text>
          <Text>  qemu-harden --answers {o.path}   (to edit it again)</Text>
        </>
      )}
    </Box>
  );
}

export function App({ draft, outDir, probe, onExit }: AppProps) {
  const [s, dispatch] = useReducer(reducer, undefined, () => initialState(draft, outDir));
  const [engine, setEngine] = useState<Engine>();
  const loaded = useRef<Engine>(undefined);
  const held = useRef<{ input: string; key: KeyInfo }[]>([]);
  const { exit } = useApp();

  useInput((input, key) => {
    if (loaded.current) dispatch({ type: 'key', input, key });
    else held.current.push({ input, key });
  });

  // Once the first frame is drawn: load the engine, replay the keys pressed meanwhile, then probe the host
  // (once per interview: the probe's answer re-renders the app, so nothing that changes between renders may
  // restart it).
  useEffect(() => {
    let live = true;
    const t = setTimeout(() => {
      import('./engine.js').then((e) => {
        if (!live) return;
        loaded.current = e;
        setEngine(e);
        dispatch({ type: 'ready', check: e.checker });
        for (const k of held.current.splice(0)) dispatch({ type: 'key', ...k });
        (probe ?? e.probeHost)().then(
          (facts) => live && dispatch({ type: 'host', facts }),
          () => undefined,
        );
      });
    }, 0);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, []);

  useEffect(() => {
    if (!engine || STEPS[s.step]!.id !== 'disks') return;
    const disks = (s.draft.guests[s.guest]?.disks ?? []) as { path?: unknown }[];
    for (const d of disks) {
      const path = typeof d.path === 'string' ? d.path : '';
      if (!path.startsWith('/') || s.formats[path] !== undefined || !existsSync(path)) continue;
      engine.suggestFormat(path).then((format) => dispatch({ type: 'format', path, format: format ?? '' }));
    }
  }, [engine, s.step, s.guest, s.draft]);

  const validated = useMemo(() => (engine && s.step >= REVIEW ? tryValidate(engine, s.draft) : {}), [engine, s.step, s.draft]);
  const files = useMemo(() => (engine && validated.answers ? engine.plan(validated.answers) : []), [engine, validated.answers]);

  useEffect(() => {
    if (!engine || s.step !== REVIEW || !validated.answers) return;
    const units = guestUnits(engine, validated.answers, files);
    let cancelled = false;
    const dir = mkdtempSync(join(tmpdir(), 'qemu-harden-review-'));
    (async () => {
      for (const u of units) {
        if (cancelled || s.exposure[u.key] !== undefined) continue;
        const file = join(dir, u.file);
        writeFileSync(file, u.content);
        const score = await engine.exposureOf(file);
        if (!cancelled) dispatch({ type: 'exposure', key: u.key, score: score ?? 'unavailable' });
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return () => {
      cancelled = true;
    };
  }, [s.step, files]);

  useEffect(() => {
    if (s.pending !== 'write') return;
    const answers = validated.answers;
    if (!engine || !answers) {
      dispatch({ type: 'writeFailed', message: 'The answers are not valid yet.' });
      return;
    }
    try {
      if (s.review.action === 'answers') {
        const path = resolve(`${s.review.outDir}.answers.json`);
        writeFileSync(path, engine.answersJson(answers));
        dispatch({ type: 'written', kind: 'answers', path });
        return;
      }
      const out = resolve(s.review.outDir);
      let nonEmpty = false;
      try {
        nonEmpty = readdirSync(out).length > 0;
      } catch {
        nonEmpty = false;
      }
      if (nonEmpty && !s.review.force) {
        dispatch({ type: 'replaceNeeded' });
        return;
      }
      engine.writeBundle(out, files, true);
      dispatch({ type: 'written', kind: 'bundle', path: out });
    } catch (e) {
      dispatch({ type: 'writeFailed', message: e instanceof Error ? e.message : String(e) });
    }
  }, [s.pending]);

  useEffect(() => {
    if (s.exit === undefined) return;
    onExit(s.exit);
    exit();
  }, [s.exit]);

  const step = STEPS[s.step]!;
  return (
    <Box flexDirection="column">
      <Header s={s} />
      {s.step === REVIEW && engine ? <Review s={s} engine={engine} answers={validated.answers} errors={validated.errors} files={files} /> : s.step === DONE && s.outcome ? <Done s={s} /> : <Form s={s} />}
      {s.step !== REVIEW && s.error ? <Text color={color('red')}>{s.error}</Text> : null}
      <Why s={s} />
      {s.quitting ? <Text color={color('yellow')}>Quit without writing anything? (y/n)</Text> : null}
      <Text dimColor wrap="wrap">
        {footer(s)}
      </Text>
      {step.id === 'host' && !s.help ? <Text dimColor>Press ? on any step for why it matters.</Text> : null}
    </Box>
  );
}
