// One assessor table for every live QEMU, after systemd's analyze-security.c: `audit` runs it with QEMU's
// security documentation as every process's expectation, `status` with each installed guest's unit. Checks
// read nothing themselves (live.ts has read the host); a check that needs a program the host lacks is skipped
// and said so, never counted as passed.
import { CONFINEMENT } from '../confine/index.js';
import { which } from '../tools.js';
import { fileChecks } from './files.js';
import { helperChecks } from './helpers.js';
import { hostChecks } from './host.js';
import { listenerChecks } from './listeners.js';
import { networkChecks } from './network.js';
import { processChecks } from './process.js';
import type { AuditCheck, Expect, Finding, HostView, LiveProcess, Severity } from './types.js';

/** Every check, with those of each registered confinement backend, as the registry holds them now. */
export const auditChecks = (): AuditCheck[] => [
  ...processChecks,
  ...listenerChecks,
  ...networkChecks,
  ...fileChecks,
  ...hostChecks,
  ...helperChecks,
  ...CONFINEMENT.flatMap((b) => b.auditChecks),
];

const ORDER: Severity[] = ['high', 'medium', 'low', 'info'];

/**
 * The findings of the checks that judge `judges`, sorted by pid (host last), severity and check. A finding
 * whose check the process's expectation accepts (its installed unit asks for exactly that) is not one.
 */
export function assess(
  view: HostView,
  expect: Expect,
  judges: readonly AuditCheck['judges'][] = ['process', 'command line', 'host'],
  checks: readonly AuditCheck[] = auditChecks(),
): Finding[] {
  const byPid = new Map<number, LiveProcess>([...view.processes, ...view.helpers].map((p) => [p.pid, p]));
  const findings: Finding[] = [];
  for (const c of checks) {
    if (!judges.includes(c.judges)) continue;
    if (c.tool !== null && !which(c.tool)) {
      view.unseen.push({
        what: `the check ${c.name}`,
        reason: `${c.tool} not found (Debian package ${c.debianPackage})`,
      });
      continue;
    }
    for (const f of c.run(view, expect)) {
      const p = f.pid === null ? undefined : byPid.get(f.pid);
      if (p && expect(p).accepted.has(f.check)) continue;
      findings.push(f);
    }
  }
  return findings.sort(
    (a, b) =>
      (a.pid ?? Infinity) - (b.pid ?? Infinity) ||
      ORDER.indexOf(a.severity) - ORDER.indexOf(b.severity) ||
      (a.check < b.check ? -1 : a.check > b.check ? 1 : 0),
  );
}
