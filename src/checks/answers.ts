// The bundle's answers.json through the one schema and its rules, then every file regenerated from it and
// compared byte for byte with the bundle. The schema, YAML and the generators are loaded when this check runs, so
// a command that does not run it never loads them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ANSWERS } from '../bundle-layout.js';
import { InputError } from '../errors.js';
import type { BundleUnderCheck, Check, Outcome } from './check.js';

export const answers: Check<string, Outcome & { bundle?: BundleUnderCheck }> = {
  name: 'answers',
  async run(dir) {
    const [{ validate }, { plan }, { parseAnswersText }] = await Promise.all([import('../answers.js'), import('../plan.js'), import('../sources/file.js')]);
    let a;
    try {
      a = validate(parseAnswersText(readFileSync(join(dir, ANSWERS), 'utf8'), ANSWERS));
    } catch (e) {
      return { status: 'failed', findings: [{ message: e instanceof InputError ? e.message : `cannot read ${ANSWERS}: ${(e as Error).message}`, file: ANSWERS }] };
    }
    const expected = plan(a);
    const findings: Outcome['findings'] = [];
    for (const f of expected) {
      let actual: string | undefined;
      try {
        actual = readFileSync(join(dir, f.path), 'utf8');
      } catch {
        actual = undefined;
      }
      if (actual !== f.content) findings.push({ message: actual === undefined ? 'missing, though answers.json produces it' : 'differs from what answers.json produces', file: f.path });
    }
    return {
      status: findings.length ? 'failed' : 'passed',
      detail: `${expected.length} files regenerated from ${ANSWERS}`,
      findings,
      bundle: { dir, answers: a, expected },
    };
  },
};
