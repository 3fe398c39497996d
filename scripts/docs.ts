// `npm run docs`: docs/cli.md from the command records (src/commands.ts), laid out by prettier like every other
// file of the tree. test/cli.test.ts fails when the committed file differs from what this writes.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { reference } from '../src/command.js';
import { COMMANDS } from '../src/commands.js';

export const CLI_MD = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'cli.md');

export async function cliReference(): Promise<string> {
  const options = await prettier.resolveConfig(CLI_MD);
  return prettier.format(reference(COMMANDS), { ...options, filepath: CLI_MD });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(CLI_MD, await cliReference());
  console.log(`wrote ${CLI_MD}`);
}
