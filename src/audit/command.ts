// `qemu-harden audit`: read the live host, run every audit check, print the findings (text or the documented
// JSON shape). Read-only; --answers-out is written by answers-out.ts. Everything in the text output that came
// from the host (names, command lines, paths, labels, log lines) is shown through visible(), so no process can
// write escape sequences or lines of its own onto the operator's terminal; --json carries the exact strings.
import { visible } from '../escape.js';
import { assess } from './assess.js';
import { redact } from '../qemuargs.js';
import { HELPER_POLICY, POLICY } from './expect.js';
import { ownerText } from './owner.js';
import { acceleratorOf } from './process.js';
import type { NotCarried } from './reconstruct.js';
import type { Finding, HostView, Unseen } from './types.js';
import { shellWord } from '../escape.js';
import { plural } from '../words.js';

export const AUDIT_FORMAT = 'qemu-harden-audit/1';

export interface AuditReport {
  format: typeof AUDIT_FORMAT;
  root: boolean;
  processes: {
    pid: number;
    guest: string;
    /** The effective uid, and its name in /etc/passwd (null when it has none). */
    uid: number | null;
    user: string | null;
    /** Only the administrator could have started it as it runs (see owner.ts). */
    systemUser: boolean;
    accelerator: 'kvm' | 'tcg';
    argv: string[];
  }[];
  /** The guests' helpers running (a TPM emulator, swtpm), whoever started them. */
  helpers: {
    pid: number;
    /** The kind of helper (src/helpers/), and its program. */
    kind: string;
    program: string;
    uid: number | null;
    user: string | null;
    systemUser: boolean;
    argv: string[];
  }[];
  findings: Finding[];
  unseen: Unseen[];
  answersOut: { file: string; guests: number; notCarried: NotCarried[] } | null;
}

export function audit(view: HostView): AuditReport {
  return {
    format: AUDIT_FORMAT,
    root: view.root,
    processes: view.processes.map((p) => ({
      pid: p.pid,
      guest: p.guest,
      uid: p.owner.uids[1] ?? null,
      user: p.owner.user,
      systemUser: p.owner.system,
      accelerator: acceleratorOf(p).accel,
      argv: p.argv.map(redact),
    })),
    helpers: view.helpers.map((h) => ({
      pid: h.pid,
      kind: h.kind,
      program: h.guest,
      uid: h.owner.uids[1] ?? null,
      user: h.owner.user,
      systemUser: h.owner.system,
      argv: h.argv,
    })),
    // A QEMU is held to QEMU's security documentation, a helper to what every helper needs (expect.ts).
    findings: assess(view, (p) => ('kind' in p ? HELPER_POLICY : POLICY)),
    unseen: view.unseen,
    answersOut: null,
  };
}

/** Findings that make `audit` exit 1: everything but the informational ones. */
export const counts = (r: AuditReport) => r.findings.filter((f) => f.severity !== 'info').length;

/** A process as the text output names it: "web (pid 812)", or "pid 813" for one without -name. */
const who = (guest: string, pid: number) => (guest === `pid ${pid}` ? guest : `${visible(guest)} (pid ${pid})`);

/** The report as text; its next command is written the way the operator runs qemu-harden (`me`). */
export function formatAudit(r: AuditReport, me = 'qemu-harden'): string {
  const out: string[] = [];
  out.push(
    `qemu-harden audit: ${plural(r.processes.length, 'QEMU process', 'QEMU processes')}${r.root ? '' : ' visible to this user (not root: see "Not seen" below)'}`,
  );
  for (const p of r.processes) {
    out.push(
      `  pid ${p.pid}  ${p.guest === `pid ${p.pid}` ? '(no -name)' : visible(p.guest)}  ${visible(ownerText(p.uid, p.user))}${p.systemUser ? '' : ', not a system user'}  ${p.accelerator}`,
    );
  }
  if (r.helpers.length) {
    out.push(`and ${plural(r.helpers.length, 'helper process', 'helper processes')} of guests:`);
    for (const h of r.helpers)
      out.push(
        `  pid ${h.pid}  ${visible(h.program)}  ${visible(ownerText(h.uid, h.user))}${h.systemUser ? '' : ', not a system user'}`,
      );
  }
  out.push('');
  const groups = new Map<string, Finding[]>();
  for (const f of r.findings) {
    const key = f.guest === null || f.pid === null ? 'host' : who(f.guest, f.pid);
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  for (const [name, fs] of groups) {
    out.push(`${name}:`);
    for (const f of fs) {
      out.push(`  [${f.severity}] ${f.check}: ${visible(f.summary)}`);
      out.push(`    read:    ${visible(f.evidence)}`);
      out.push(`    why:     ${visible(f.why)}`);
      out.push(`    instead: ${visible(f.bundle)}${f.answer ? ` (answer: ${visible(f.answer)})` : ''}`);
    }
    out.push('');
  }
  if (r.unseen.length) {
    out.push('Not seen:');
    for (const u of r.unseen) out.push(`  ${visible(u.what)}: ${visible(u.reason)}`);
    out.push('');
  }
  if (r.answersOut) {
    out.push(`Wrote answers for ${plural(r.answersOut.guests, 'guest')} to ${visible(r.answersOut.file)}.`);
    if (r.answersOut.notCarried.length) {
      out.push('Not carried over (left at the secure default):');
      for (const n of r.answersOut.notCarried)
        out.push(`  ${visible(n.guest)}: ${visible(n.choice)}: ${visible(n.reason)}`);
    }
    out.push(`Next: ${me} generate --answers ${shellWord(r.answersOut.file)} --out qemu-harden-bundle`);
    out.push('');
  }
  const n = counts(r);
  out.push(n ? `${plural(n, 'finding')}.` : 'No findings.');
  return out.join('\n') + '\n';
}
