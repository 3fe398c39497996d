// `qemu-harden verify`: the manifest, the answers and their rules, then every file read by the program that will
// read it on the host. Each step is a check from src/checks/ (or a confinement backend's own check); a check whose
// program is missing is reported as skipped, never as passed. The schema, YAML and the generators are imported
// once the manifest has been checked, for the answers check alone.
//
// With --signers the signatures come first (docs/signing.md): the bundle is read once into memory, its signatures
// judged over the manifest as read, and a refusal is an exit 2 before any other check. The checks then run on a
// private copy of exactly those bytes, never on the directory again, so what verify reports on is what was signed.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inDir, writeDirAtomic } from './atomic.js';
import { MANIFEST } from './bundle-layout.js';
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
import { readBundleDir } from './install/bundle.js';
import { checkSigned, describeSigner, readSignersFile, requiredSigners } from './sshsig.js';
import { listed, plural } from './words.js';

export { exposureOf, exposureTarget } from './checks/exposure.js';

export interface Report {
  bundle: string;
  checks: CheckResult[];
  findings: Finding[];
  /** What the answers accept that weakens the bundle as a whole, said before anything else (no finding). */
  warnings: string[];
  exposure: Exposure[];
}

export async function verifyBundle(dir: string, signing?: { signersFile?: string; require?: string }): Promise<Report> {
  if (!existsSync(dir)) throw new InputError(`verify: ${dir} does not exist`);
  if (!signing) return runChecks(dir, { bundle: dir, checks: [], findings: [], warnings: [], exposure: [] });
  const required = requiredSigners(signing.require);
  const trust = readSignersFile(signing.signersFile!);
  const b = readBundleDir(dir);
  const { signers, problems } = await checkSigned(b, [trust], required);
  if (problems.length)
    throw new InputError(
      `verify refused: ${visible(dir)} does not pass the signature check against ${visible(trust.shown)}; no other check ran:\n` +
        problems.map((p) => `  ${visible(p.path)}: ${visible(p.problem)}`).join('\n'),
    );
  const report: Report = {
    bundle: dir,
    checks: [
      {
        check: 'signatures',
        status: 'passed',
        detail: `signed by ${signers[0]!.map(describeSigner).join(', ')}`,
      },
    ],
    findings: [],
    warnings: [],
    exposure: [],
  };
  const scratch = mkdtempSync(join(tmpdir(), 'qemu-harden-verify-'));
  try {
    const files = [...b.files, ...b.signatures, [MANIFEST, b.manifest] as const].map(([path, content]) => ({
      path,
      mode: 0o644,
      content,
    }));
    writeDirAtomic(inDir(scratch), 'bundle', files, 0o700);
    const copy = join(scratch, 'bundle');
    const checked = await runChecks(copy, report);
    // What the checks say of the copy they read, said of the bundle the operator named.
    for (const f of checked.findings) f.message = f.message.replaceAll(copy, dir);
    for (const c of checked.checks) if (c.detail) c.detail = c.detail.replaceAll(copy, dir);
    return checked;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function runChecks(dir: string, report: Report): Promise<Report> {
  const add = (ran: { result: CheckResult; findings: Finding[] }) => {
    report.checks.push(ran.result);
    report.findings.push(...ran.findings);
  };

  add(await runCheck(manifest, dir));
  const [{ validate }, { plan }, { parseJsonAnswers }] = await Promise.all([
    import('./answers.js'),
    import('./plan.js'),
    import('./sources/json.js'),
  ]);
  const loaded = await runCheck(answers, {
    dir,
    read: (text: string, source: string) => validate(parseJsonAnswers(text, source)),
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
  // Each chosen confinement backend reads its own files; with none chosen, that is said as loudly as can be.
  const mac = CONFINEMENT.filter((b) => b.chosen(bundle.answers));
  if (mac.length === 0)
    report.warnings.push(
      `NO MANDATORY ACCESS CONTROL: host.confinement is none (the accepted risk confinement-none). The bundle holds no ${listed(
        CONFINEMENT.map((b) => b.name),
        'or',
      )} files, and nothing but each guest’s own user, its unit sandbox and file permissions keeps a QEMU a guest takes over from the host’s files and other guests’ images.`,
    );
  const rest: Check<BundleUnderCheck>[] = [...mac.map((b) => b.check), qemuCaps, usersAndDirs, hostDisks];
  for (const check of rest) add(await runCheck(check, bundle));
  return report;
}

export function formatReport(r: Report): string {
  // Details and findings quote the bundle's files, its path and this host's os-release: text from outside.
  const out: string[] = [`Bundle ${visible(r.bundle)}`, ...r.warnings.map((w) => `  WARNING  ${w}`)];
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
