// Each unit's exposure as `systemd-analyze security` scores it (0 is best, 10 worst), against its target: every
// guest unit, every helper unit (src/helpers/, its record's target), every tap helper and the serial-log rotation.
import { basename, join } from 'node:path';
import * as G from '../guest.js';
import { helpersOf } from '../helpers/index.js';
import { LOGROTATE_SERVICE } from '../names.js';
import type { Guest } from '../model.js';
import { run, which } from '../tools.js';
import type { BundleUnderCheck, Check, Outcome } from './check.js';
import { UNIT_DIR } from './units.js';

export interface Exposure {
  unit: string;
  score: number;
  target: number;
}

/** The exposure a tap helper unit may have: it runs as root with CAP_NET_ADMIN in the host's network. */
export const TAP_UNIT_TARGET = 2.0;

/** The exposure the serial-log rotation may have: root that can only become the guests' users. */
export const LOGROTATE_TARGET = 2.0;

/** The exposure a guest unit may have: stricter when QEMU speaks no network itself (none, or passt's socket). */
export function exposureTarget(g: Guest): number {
  return G.usesInet(g) || g.network.mode === 'tap' ? 1.5 : 1.0;
}

export async function exposureOf(unitFile: string): Promise<number | undefined> {
  return (await exposuresOf([unitFile])).get(basename(unitFile));
}

/**
 * Each unit file's exposure by unit name, from one run of `systemd-analyze security` for them all (it names each
 * unit in its verdict line). A unit it could not score, or every unit where systemd-analyze is not here, is absent.
 */
export async function exposuresOf(unitFiles: string[]): Promise<Map<string, number>> {
  const scores = new Map<string, number>();
  const tool = which('systemd-analyze');
  if (!tool || !unitFiles.length) return scores;
  const r = await run(tool, ['security', '--offline=true', '--no-pager', ...unitFiles], {
    timeoutMs: 20_000 + 5_000 * unitFiles.length,
  });
  for (const m of (r.stdout + r.stderr).matchAll(/Overall exposure level for (\S+): ([0-9.]+)/g))
    scores.set(m[1]!, Number(m[2]));
  return scores;
}

export const exposure: Check<BundleUnderCheck, Outcome & { exposure: Exposure[] }> = {
  name: 'exposure',
  tool: 'systemd-analyze',
  debianPackage: 'systemd',
  async run(b) {
    const scores: Exposure[] = [];
    const findings: Outcome['findings'] = [];
    const scored = b.answers.guests.flatMap((g) => [
      { unit: G.unitName(g), target: exposureTarget(g) },
      ...helpersOf(b.answers, g).map((h) => ({ unit: G.helperUnitName(g, h.kind), target: h.sandbox.exposureTarget })),
      ...(g.network.mode === 'tap' ? [{ unit: G.tapUnitName(g), target: TAP_UNIT_TARGET }] : []),
    ]);
    if (b.expected.some((f) => f.path === `${UNIT_DIR}/${LOGROTATE_SERVICE}`))
      scored.push({ unit: LOGROTATE_SERVICE, target: LOGROTATE_TARGET });
    const scoredBy = await exposuresOf(scored.map(({ unit }) => join(b.dir, UNIT_DIR, unit)));
    for (const { unit, target } of scored) {
      const file = `${UNIT_DIR}/${unit}`;
      const score = scoredBy.get(unit);
      if (score === undefined) {
        findings.push({ message: 'systemd-analyze security gave no exposure level', file });
        continue;
      }
      scores.push({ unit, score, target });
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
