// `qemu-harden audit`: read the live host, run every audit check, print the findings (text or the documented
// JSON shape). Read-only; --answers-out is written by answers-out.ts.
import { redact } from './cmdline.js';
import { fileChecks } from './files.js';
import { hostChecks } from './host.js';
import { listenerChecks } from './listeners.js';
import { acceleratorOf, processChecks } from './process.js';
import { readHost } from './proc.js';
import type { NotCarried } from './reconstruct.js';
import type { AuditCheck, Finding, HostView, Severity, Unseen } from './types.js';
import { plural } from '../words.js';

export const AUDIT_CHECKS: AuditCheck[] = [...processChecks, ...listenerChecks, ...fileChecks, ...hostChecks];

export const AUDIT_FORMAT = 'qemu-harden-audit/1';

export interface AuditReport {
  format: typeof AUDIT_FORMAT;
  root: boolean;
  processes: { pid: number; guest: string; uid: number | null; accelerator: 'kvm' | 'tcg'; argv: string[] }[];
  findings: Finding[];
  unseen: Unseen[];
  answersOut: { file: string; guests: number; notCarried: NotCarried[] } | null;
}

const ORDER: Severity[] = ['high', 'medium', 'low', 'info'];

export function audit(view: HostView = readHost()): AuditReport {
  const findings = AUDIT_CHECKS.flatMap((c) => c.run(view));
  findings.sort(
    (a, b) =>
      (a.pid ?? Infinity) - (b.pid ?? Infinity) ||
      ORDER.indexOf(a.severity) - ORDER.indexOf(b.severity) ||
      (a.check < b.check ? -1 : a.check > b.check ? 1 : 0),
  );
  return {
    format: AUDIT_FORMAT,
    root: view.root,
    processes: view.processes.map((p) => ({
      pid: p.pid,
      guest: p.guest,
      uid: p.uids[1] ?? null,
      accelerator: acceleratorOf(p).accel,
      argv: p.argv.map(redact),
    })),
    findings,
    unseen: view.unseen,
    answersOut: null,
  };
}

/** Findings that make `audit` exit 1: everything but the informational ones. */
export const counts = (r: AuditReport) => r.findings.filter((f) => f.severity !== 'info').length;

/** The report as text; its next command is written the way the operator runs qemu-harden (`me`). */
export function formatAudit(r: AuditReport, me = 'qemu-harden'): string {
  const out: string[] = [];
  out.push(
    `qemu-harden audit: ${plural(r.processes.length, 'QEMU process', 'QEMU processes')}${r.root ? '' : ' visible to this user (not root: see "Not seen" below)'}`,
  );
  for (const p of r.processes) out.push(`  pid ${p.pid}  ${p.guest}  uid ${p.uid ?? '?'}  ${p.accelerator}`);
  out.push('');
  const groups = new Map<string, Finding[]>();
  for (const f of r.findings) {
    const key = f.guest === null ? 'host' : `${f.guest} (pid ${f.pid})`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  for (const [who, fs] of groups) {
    out.push(`${who}:`);
    for (const f of fs) {
      out.push(`  [${f.severity}] ${f.check}`);
      out.push(`    read:    ${f.evidence}`);
      out.push(`    why:     ${f.why}`);
      out.push(`    instead: ${f.bundle}${f.answer ? ` (answer: ${f.answer})` : ''}`);
    }
    out.push('');
  }
  if (r.unseen.length) {
    out.push('Not seen:');
    for (const u of r.unseen) out.push(`  ${u.what}: ${u.reason}`);
    out.push('');
  }
  if (r.answersOut) {
    out.push(`Wrote answers for ${plural(r.answersOut.guests, 'guest')} to ${r.answersOut.file}.`);
    if (r.answersOut.notCarried.length) {
      out.push('Not carried over (left at the secure default):');
      for (const n of r.answersOut.notCarried) out.push(`  ${n.guest}: ${n.choice}: ${n.reason}`);
    }
    out.push(`Next: ${me} generate --answers ${r.answersOut.file} --out qemu-harden-bundle`);
    out.push('');
  }
  const n = counts(r);
  out.push(n ? `${plural(n, 'finding')}.` : 'No findings.');
  return out.join('\n') + '\n';
}
