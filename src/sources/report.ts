// The import report: per guest, what a libvirt domain or Proxmox configuration carried into the answers, what
// was changed to the secure default, which risk waits for a person's reason, what state the operator must copy by
// hand, and what was refused. Its JSON
// shape (`--json`) is stable and documented in docs/import.md; the text rendering is for people.

import { shellWord, visible } from '../escape.js';
import { plural } from '../words.js';

/** One decision about one element, attribute or key of the source. */
export interface ReportItem {
  /** Where in the source: an XPath-like element path for libvirt (`devices/disk[2]/source@protocol`), a key for
   * Proxmox (`scsi0`, `[PENDING]`). */
  source: string;
  /** What happened and why, in one sentence. */
  message: string;
  /** For an option QEMU removed (src/releases.ts): which, the QEMU release that removed it, and what replaced it. */
  removed?: { option: string; removedIn: string; instead: string };
}

/** A risk a guest takes, and the field of the answers where a person writes why it is acceptable. */
export interface ReasonItem extends ReportItem {
  /** `acceptedRisks.N.reason`. */
  answer: string;
}

/** State the guest had at its source that only the operator can bring over: where it is, and where it goes. */
export interface CopyItem extends ReportItem {
  /** The file, directory or volume at the source (a path, or Proxmox's storage:volume when it was not resolved). */
  from: string;
  /** Where the bundle's guest keeps it: put it there before the guest's first start. */
  to: string;
}

export type GuestOutcome = 'imported' | 'defaulted' | 'needs-reason' | 'refused';

export interface GuestReport {
  /** The file (or `virsh dumpxml NAME`) the guest came from. */
  file: string;
  /** The guest's name in the source, if it had one. */
  sourceName: string | null;
  /** The guest's name in the answers; null when refused. */
  name: string | null;
  /** imported: everything carried; defaulted: imported with items left at the secure default or state to copy; needs-reason:
   * imported, but a risk it takes is accepted only once a person writes why (see `needsReason`); refused. */
  outcome: GuestOutcome;
  carried: ReportItem[];
  defaulted: ReportItem[];
  /** Risks the guest takes, each with the acceptedRisks entry of the answers whose reason a person must write. */
  needsReason: ReasonItem[];
  refused: ReportItem[];
  /** State to copy by hand (a TPM's): never dropped without a word. */
  copy: CopyItem[];
}

export interface ImportReport {
  format: 'qemu-harden-import-report';
  version: 3;
  source: 'libvirt' | 'proxmox';
  /** The answers file written, or null when nothing was written (a refusal, or no --out). */
  out: string | null;
  written: boolean;
  /** The worst outcome of all guests; the exit status is 0 for imported, 1 for defaulted or needs-reason, 2 for
   * refused. */
  outcome: GuestOutcome;
  guests: GuestReport[];
  /** Problems of the whole set rather than of one guest (e.g. two guests writing the same disk). */
  problems: string[];
}

/** Collects the decisions about one guest while its source is read. */
export class GuestLog {
  readonly carried: ReportItem[] = [];
  readonly defaulted: ReportItem[] = [];
  readonly needsReason: ReasonItem[] = [];
  readonly refused: ReportItem[] = [];
  /** Copies to make, with their destination by the guest's final name (a name taken twice is renamed later). */
  readonly copies: { source: string; message: string; from: string; to: (guest: string) => string }[] = [];
  carry(source: string, message: string): void {
    this.carried.push({ source, message });
  }
  secureDefault(source: string, message: string): void {
    this.defaulted.push({ source, message });
  }
  refuse(source: string, message: string, removed?: ReportItem['removed']): void {
    this.refused.push({ source, message, ...(removed ? { removed } : {}) });
  }
  /** An option QEMU removed, carried as what replaced it. */
  translate(source: string, message: string, removed: NonNullable<ReportItem['removed']>): void {
    this.carried.push({ source, message, removed });
  }
  awaitReason(source: string, message: string, answer: string): void {
    this.needsReason.push({ source, message, answer });
  }
  /** State the operator must bring over: `to` gives its destination from the guest's name in the answers. */
  copy(source: string, message: string, from: string, to: (guest: string) => string): void {
    this.copies.push({ source, message, from, to });
  }
  outcome(): GuestOutcome {
    if (this.refused.length) return 'refused';
    if (this.needsReason.length) return 'needs-reason';
    return this.defaulted.length || this.copies.length ? 'defaulted' : 'imported';
  }
}

const RANK: Record<GuestOutcome, number> = { imported: 0, defaulted: 1, 'needs-reason': 2, refused: 3 };
const EXIT: Record<GuestOutcome, 0 | 1 | 2> = { imported: 0, defaulted: 1, 'needs-reason': 1, refused: 2 };

export function worstOutcome(outcomes: GuestOutcome[]): GuestOutcome {
  return outcomes.reduce<GuestOutcome>((w, o) => (RANK[o] > RANK[w] ? o : w), 'imported');
}

export function exitStatus(o: GuestOutcome): 0 | 1 | 2 {
  return EXIT[o];
}

/** The report as text; its next command is written the way the operator runs qemu-harden (`me`). */
export function renderReport(r: ImportReport, me = 'qemu-harden'): string {
  const out: string[] = [];
  for (const g of r.guests) {
    const head = {
      refused: 'REFUSED',
      'needs-reason': 'imported; a risk waits for your reason',
      defaulted: g.defaulted.length ? 'imported, with secure defaults' : 'imported; state to copy by hand',
      imported: 'imported',
    }[g.outcome];
    const rename = g.name && g.sourceName !== null && g.sourceName !== g.name ? ` (was "${g.sourceName}")` : '';
    out.push(`${g.file}: ${g.name ?? g.sourceName ?? '(no name)'}${rename} — ${head}`);
    const section = (title: string, items: (ReportItem & { answer?: string })[]) => {
      if (!items.length) return;
      out.push(`  ${title}:`);
      for (const i of items) out.push(`    ${i.source}: ${i.message}${i.answer ? ` (${i.answer})` : ''}`);
    };
    section('refused', g.refused);
    section('needs your reason (the answers do not validate until you write it)', g.needsReason);
    if (g.copy.length) {
      out.push('  to copy by hand before the guest first starts:');
      for (const c of g.copy) out.push(`    ${c.source}: ${c.message}`, `      from ${c.from}`, `      to   ${c.to}`);
    }
    section('changed to the secure default', g.defaulted);
    section('carried', g.carried);
  }
  if (r.problems.length) {
    out.push('The guests cannot go into one answers file together:');
    for (const p of r.problems) out.push(`  ${p}`);
  }
  const count = (o: GuestOutcome) => r.guests.filter((g) => g.outcome === o).length;
  const waiting = count('needs-reason');
  out.push(
    '',
    `${plural(r.guests.length, 'guest')}: ${count('imported')} imported, ${count('defaulted')} imported with secure defaults, ${waiting ? `${waiting} waiting for a reason, ` : ''}${count('refused')} refused.`,
  );
  const reasons = r.guests.flatMap((g) => g.needsReason);
  const next = `Next: ${me} generate --answers ${shellWord(r.out ?? '')} --out qemu-harden-bundle`;
  if (r.written && reasons.length)
    out.push(
      `Wrote ${visible(r.out ?? '')}. Before generate accepts it, write in it, in your own words, why each risk is acceptable: replace the request in angle brackets at ${reasons.map((i) => i.answer).join(', ')}.`,
      next,
    );
  else if (r.written) out.push(`Wrote ${visible(r.out ?? '')}. ${next}`);
  else if (r.outcome === 'refused' && r.problems.length && r.guests.every((g) => g.outcome !== 'refused'))
    out.push(
      'Nothing was written: import the conflicting guests into separate answers files, or fix the conflict at the source.',
    );
  else if (r.outcome === 'refused')
    out.push(
      'Nothing was written: import the refused guests after fixing them at the source, or leave their files out.',
    );
  else if (r.out === null) out.push('Nothing was written (no --out given).');
  // Names, paths and messages come from the imported files: shown with their control characters made visible.
  return out.map(visible).join('\n') + '\n';
}
