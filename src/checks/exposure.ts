// Each guest unit's exposure as `systemd-analyze security` scores it (0 is best, 10 worst), against the target
// for that guest.
import { join } from 'node:path';
import * as G from '../guest.js';
import type { Guest } from '../model.js';
import { run, which } from '../tools.js';
import type { BundleUnderCheck, Check, Outcome } from './check.js';
import { UNIT_DIR } from './units.js';

export interface Exposure {
  unit: string;
  score: number;
  target: number;
}

/** The exposure a guest unit may have: stricter without any network device. */
export function exposureTarget(g: Guest): number {
  return G.hasNetwork(g) ? 1.5 : 1.0;
}

export async function exposureOf(unitFile: string): Promise<number | undefined> {
  const tool = which('systemd-analyze');
  if (!tool) return undefined;
  const r = await run(tool, ['security', '--offline=true', '--no-pager', unitFile]);
  const m = /Overall exposure level for .*?: ([0-9.]+)/.exec(r.stdout + r.stderr);
  return m ? Number(m[1]) : undefined;
}

export const exposure: Check<BundleUnderCheck, Outcome & { exposure: Exposure[] }> = {
  name: 'exposure',
  tool: 'systemd-analyze',
  debianPackage: 'systemd',
  async run(b) {
    const scores: Exposure[] = [];
    const findings: Outcome['findings'] = [];
    for (const g of b.answers.guests) {
      const file = `${UNIT_DIR}/${G.unitName(g)}`;
      const score = await exposureOf(join(b.dir, file));
      const target = exposureTarget(g);
      if (score === undefined) {
        findings.push({ message: 'systemd-analyze security gave no exposure level', file });
        continue;
      }
      scores.push({ unit: G.unitName(g), score, target });
      if (score > target) findings.push({ message: `exposure ${score} is above the target ${target}`, file });
    }
    return {
      status: findings.length ? 'failed' : 'passed',
      detail: scores.map((e) => `${e.unit} ${e.score} (<= ${e.target})`).join(', '),
      findings,
      exposure: scores,
    };
  },
};
