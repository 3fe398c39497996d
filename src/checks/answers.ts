// The bundle's answers.json through the one schema and its rules, then every file regenerated from it and
// compared byte for byte with the bundle. The caller hands in the schema and the plan (verify imports them only
// when it runs this check), so the checks import neither.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ANSWERS, README, readmeRunAs, type BundleFile } from '../bundle-layout.js';
import { InputError } from '../errors.js';
import type { Answers } from '../model.js';
import type { BundleUnderCheck, Check, Outcome } from './check.js';
import { plural } from '../words.js';

export interface AnswersUnderCheck {
  dir: string;
  /** Parse and validate an answers document: throws InputError naming the field. */
  read(text: string, source: string): Answers;
  plan(a: Answers, o: { runAs?: string }): BundleFile[];
}

const readText = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

export const answers: Check<AnswersUnderCheck, Outcome & { bundle?: BundleUnderCheck }> = {
  name: 'answers',
  async run({ dir, read, plan }) {
    let a;
    try {
      a = read(readFileSync(join(dir, ANSWERS), 'utf8'), ANSWERS);
    } catch (e) {
      return {
        status: 'failed',
        findings: [
          {
            message: e instanceof InputError ? e.message : `cannot read ${ANSWERS}: ${(e as Error).message}`,
            file: ANSWERS,
          },
        ],
      };
    }
    // The README writes qemu-harden the way it ran where the bundle was written; that one form is taken from the
    // README itself, and everything else must be what the answers produce.
    const readme = readText(join(dir, README));
    const expected = plan(a, { runAs: readme === undefined ? undefined : readmeRunAs(readme) });
    const findings: Outcome['findings'] = [];
    for (const f of expected) {
      const actual = readText(join(dir, f.path));
      if (actual !== f.content)
        findings.push({
          message:
            actual === undefined
              ? 'missing, though answers.json produces it'
              : 'differs from what answers.json produces',
          file: f.path,
        });
    }
    return {
      status: findings.length ? 'failed' : 'passed',
      detail: `${plural(expected.length, 'file')} regenerated from ${ANSWERS}`,
      findings,
      bundle: { dir, answers: a, expected },
    };
  },
};
