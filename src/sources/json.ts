// An answers document written as JSON, such as a bundle's answers.json, with the message every answers source gives
// for text it cannot read. A bundle's answers are always JSON, so `verify` and `apply` read them without loading a
// YAML parser; an answers file given to `generate` may be either (src/sources/file.ts).
import { InputError } from '../errors.js';

export function parseJsonAnswers(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new InputError(`${source}: not valid JSON: ${(e as Error).message.split('\n')[0]}`);
  }
}
