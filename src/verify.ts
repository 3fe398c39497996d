// `qemu-harden verify`: the manifest, the answers and their rules, then every file read by the program that will
// read it on the host. Each step is a check from src/checks/ (or a confinement backend's own check); a check whose
// program is missing is reported as skipped, never as passed. The schema, YAML and the generators are imported
// once the manifest has been checked, for the answers check alone.
import { existsSync } from 'node:fs';
import { answers } from './checks/answers.js';
import { runCheck, type BundleUnderCheck, type Check, type CheckResult, type Finding } from './checks/check.js';
import { exposure, type Exposure } from './checks/exposure.js';
import { hostDisks } from './checks/host-disks.js';
import { manifest } from './checks/manifest.js';
import { units } from './checks/units.js';
import { qemuCaps } from './checks/qemu-caps.js';
import { target } from './checks/target.js';
import { usersAndDirs } from './checks/users-dirs.js';
import { CONFINEMENT } from './confine/index.js';
import { InputError } from './errors.js';
import { visible } from './escape.js';
import { plural } from './words.js';

export { exposureOf, exposureTarget } from './checks/exposure.js';

export interface Report {
  bundle: string;
  checks: CheckResult[];
  findings: Finding[];
  exposure: Exposure[];
}

export async function verifyBundle(dir: string): Promise<Report> {
  if (!existsSync(dir)) throw new InputError(`verify: ${dir} does not exist`);
  const report: Report = { bundle: dir, checks: [], findings: [], exposure: [] };
  const add = (ran: { result: CheckResult; findings: Finding[] }) => {
    report.checks.push(ran.result);
    report.findings.push(...ran.findings);
  };

  add(await runCheck(manifest, dir));
  const [{ validate }, { plan }, { parseAnswersText }] = await Promise.all([
    import('./answers.js'),
    import('./plan.js'),
    import('./sources/file.js'),
  ]);
  const loaded = await runCheck(answers, {
    dir,
    read: (text: string, source: string) => validate(parseAnswersText(text, source)),
    plan,
  });
  add(loaded);
  const bundle = loaded.outcome?.bundle;
  if (!bundle) return report;

  add(await runCheck(target, bundle));
  add(await runCheck(units, bundle));
  const scored = await runCheck(exposure, bundle);
  add(scored);
  report.exposure.push(...(scored.outcome?.exposure ?? []));
  const rest: Check<BundleUnderCheck>[] = [...CONFINEMENT.map((b) => b.check), qemuCaps, usersAndDirs, hostDisks];
  for (const check of rest) add(await runCheck(check, bundle));
  return report;
}

export function formatReport(r: Report): string {
  // Details and findings quote the bundle's files, its path and this host's os-release: text from outside.
  const out: string[] = [`Bundle ${visible(r.bundle)}`];
  for (const c of r.checks)
    out.push(
      `  ${c.status === 'passed' ? 'ok  ' : c.status === 'skipped' ? 'skip' : 'FAIL'}  ${c.check}${c.detail ? ` — ${visible(c.detail)}` : ''}`,
    );
  if (r.findings.length) {
    out.push('', `${plural(r.findings.length, 'finding')}:`);
    for (const f of r.findings) out.push(visible(`  ${f.check}: ${f.file ? `${f.file}: ` : ''}${f.message}`));
  } else out.push('', 'No findings.');
  return out.join('\n') + '\n';
}
