// The interview: mounted only on a terminal (cli.ts decides before anything of React or Ink is loaded).
import { render } from 'ink';
import { App } from './ui/App.js';
import { fromAnswers, initialDraft } from '../steps/draft.js';

export async function runWizard(opts: { answersFile?: string }): Promise<number> {
  const draft = opts.answersFile
    ? fromAnswers((await import('./sources/file.js')).readAnswersFile(opts.answersFile))
    : initialDraft();
  let code = 130;
  const app = render(<App draft={draft} onExit={(c) => (code = c)} />, { exitOnCtrlC: false });
  await app.waitUntilExit();
  return code;
}
