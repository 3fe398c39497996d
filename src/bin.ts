import { createInterface } from 'node:readline/promises';
import { EXIT, internalErrorMessage, main } from './cli.js';

async function confirm(question: string, on: 'stdout' | 'stderr' = 'stdout'): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: on === 'stderr' ? process.stderr : process.stdout });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  isTTY: !!process.stdin.isTTY && !!process.stdout.isTTY,
  isRoot: process.getuid?.() === 0,
  confirm,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(internalErrorMessage(e, process.argv.slice(2)));
    process.exitCode = EXIT.internal;
  },
);
