// The interview: a reducer (state.ts) driven by raw keys, effects as hooks (hooks.ts), I/O in the engine
// (engine.ts, loaded once the first frame is on the screen), and one view per screen (views/).
import { Box, useApp } from 'ink';
import { useEffect, useReducer } from 'react';
import type { Draft } from '../../steps/draft.js';
import type { HostFacts } from '../probe.js';
import { useEngine, useExposure, useImageFormats, usePlan, useRawInput, useWrite } from './hooks.js';
import { initialState, reducer, screenOf } from './state.js';
import { Footer, Header, Why } from './views/Chrome.js';
import { Done } from './views/Done.js';
import { Form } from './views/Form.js';
import { Review } from './views/Review.js';

export interface AppProps {
  draft: Draft;
  outDir?: string;
  /** The host probe; the engine's probeHost unless a test gives its own. */
  probe?: () => Promise<HostFacts>;
  onExit: (code: number) => void;
}

export function App({ draft, outDir, probe, onExit }: AppProps) {
  const [s, dispatch] = useReducer(reducer, undefined, () => initialState(draft, outDir));
  const engine = useEngine(dispatch, probe);
  useRawInput(dispatch, engine);
  useImageFormats(engine, s, dispatch);
  const plan = usePlan(engine, s);
  useExposure(engine, s, plan, dispatch);
  useWrite(engine, s, plan, dispatch);
  const { exit } = useApp();
  useEffect(() => {
    if (s.exit === undefined) return;
    onExit(s.exit);
    exit();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the App ends once, when the reducer sets its exit code
  }, [s.exit]);

  const screen = screenOf(s);
  const body =
    screen === 'review' ? (
      engine && <Review s={s} engine={engine} plan={plan} dispatch={dispatch} />
    ) : screen === 'done' && s.outcome && engine ? (
      <Done s={s} engine={engine} />
    ) : (
      <Form s={s} />
    );
  return (
    <Box flexDirection="column">
      <Header s={s} />
      {body}
      <Why s={s} />
      <Footer s={s} />
    </Box>
  );
}
