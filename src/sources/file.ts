// An answers source: a JSON or YAML file, such as a bundle's answers.json. Returns the untyped document; the one
// schema (src/answers.ts) validates it.
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { InputError } from '../errors.js';
import { parseJsonAnswers } from './json.js';

export const MAX_ANSWERS_BYTES = 1024 * 1024;

export function parseAnswersText(text: string, source: string): unknown {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[') || source.endsWith('.json'))
    return parseJsonAnswers(text, source);
  try {
    return parseYaml(text, { maxAliasCount: 100, uniqueKeys: true });
  } catch (e) {
    throw new InputError(`${source}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
}

export function readAnswersFile(file: string): unknown {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new InputError(`--answers: ${file} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(
      `--answers: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  if (size > MAX_ANSWERS_BYTES)
    throw new InputError(`--answers: ${file} is ${size} bytes; an answers file is at most ${MAX_ANSWERS_BYTES} bytes`);
  const doc = parseAnswersText(readFileSync(file, 'utf8'), file);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc))
    throw new InputError(`${file}: must hold one object (the answers document)`);
  return doc;
}
