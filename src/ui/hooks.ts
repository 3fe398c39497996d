// The interview's effects, one hook each: raw keyboard input, loading the engine after the first frame, the
// host probe, qemu-img's reading of images, planning the bundle, measuring exposure, writing. The App composes
// them; the views only render.
import { useStdin, useStdout } from 'ink';
import { useEffect, useMemo, useRef, useState, type Dispatch } from 'react';
import type { HostFacts } from '../probe.js';
import { screenOf, stepOf, context, type Action, type State } from './state.js';

export type Engine = typeof import('./engine.js');

/**
 * Ink's raw input events, in order. Keys that arrive before the engine has loaded are held and replayed. The
 * terminal is asked for bracketed paste, so that a paste is told apart from typed keys.
 */
export function useRawInput(dispatch: Dispatch<Action>, engine: Engine | undefined): void {
  const { setRawMode, internal_eventEmitter: events } = useStdin();
  const { stdout } = useStdout();
  const held = useRef<string[]>([]);
  const ready = useRef(false);
  useEffect(() => {
    setRawMode(true);
    if (stdout.isTTY) stdout.write('\u001b[?2004h');
    const onInput = (raw: string) => {
      if (ready.current) dispatch({ type: 'input', raw });
      else held.current.push(raw);
    };
    events.on('input', onInput);
    return () => {
      events.removeListener('input', onInput);
      if (stdout.isTTY) stdout.write('\u001b[?2004l');
      setRawMode(false);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- once per interview: raw mode and the listener live as long as the App
  }, []);
  useEffect(() => {
    if (!engine) return;
    for (const raw of held.current.splice(0)) dispatch({ type: 'input', raw });
    ready.current = true;
    // eslint-disable-next-line react-hooks/exhaustive-deps -- dispatch is the reducer's, stable for the App's life
  }, [engine]);
}

/** Once the first frame is drawn: load the engine, then probe the host, once per interview. */
export function useEngine(dispatch: Dispatch<Action>, probe?: () => Promise<HostFacts>): Engine | undefined {
  const [engine, setEngine] = useState<Engine>();
  useEffect(() => {
    let live = true;
    const t = setTimeout(() => {
      void import('./engine.js').then((e) => {
        if (!live) return;
        dispatch({ type: 'ready', check: e.checker });
        setEngine(e);
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
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the engine is loaded and the host probed once per interview
  }, []);
  return engine;
}

/** qemu-img's reading of the images the current step names, each asked once. */
export function useImageFormats(engine: Engine | undefined, s: State, dispatch: Dispatch<Action>): void {
  const paths = stepOf(s).images?.(context(s)) ?? [];
  const key = paths.join('\n');
  useEffect(() => {
    if (!engine) return;
    for (const path of paths) {
      if (s.formats[path] !== undefined) continue;
      void engine
        .imageFormat(path)
        .then((format) => format !== undefined && dispatch({ type: 'format', path, format }));
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps -- keyed by the paths' text: a new array with the same paths asks nothing again
  }, [engine, key]);
}

/** On the review screen: the validated answers and the planned files, recomputed only when the draft changes. */
export function usePlan(engine: Engine | undefined, s: State) {
  const onReview = screenOf(s) !== 'form';
  const validated = useMemo(() => (engine && onReview ? engine.tryValidate(s.draft) : {}), [engine, onReview, s.draft]);
  const files = useMemo(
    () => (engine && validated.answers ? engine.plan(validated.answers) : []),
    [engine, validated.answers],
  );
  return useMemo(() => ({ ...validated, files }), [validated, files]);
}

/** systemd-analyze's exposure of each guest's unit while the review is shown; a unit is measured once. */
export function useExposure(
  engine: Engine | undefined,
  s: State,
  plan: ReturnType<typeof usePlan>,
  dispatch: Dispatch<Action>,
): void {
  useEffect(() => {
    if (!engine || screenOf(s) !== 'review' || !plan.answers) return;
    let cancelled = false;
    const units = engine.guestUnits(plan.answers, plan.files).filter((u) => s.exposure[u.key] === undefined);
    void engine.measureExposure(
      units,
      (key, score) => dispatch({ type: 'exposure', key, score }),
      () => cancelled,
    );
    return () => {
      cancelled = true;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- measured when the step or the plan changes, not on every key of the draft
  }, [engine, s.step, plan.files]);
}

/** Writes when the reducer asks for it. */
export function useWrite(
  engine: Engine | undefined,
  s: State,
  plan: ReturnType<typeof usePlan>,
  dispatch: Dispatch<Action>,
): void {
  useEffect(() => {
    if (s.pending !== 'write') return;
    if (!engine) return dispatch({ type: 'writeFailed', message: 'The answers are not valid yet.' });
    dispatch(engine.write(s.review.action, s.review.outDir, plan.answers, plan.files, s.review.force));
    // eslint-disable-next-line react-hooks/exhaustive-deps -- writes once, when the reducer asks for it
  }, [s.pending]);
}
