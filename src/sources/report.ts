// The import report: per guest, what a libvirt domain or Proxmox configuration carried into the answers, what
// was changed to the secure default, and what was refused. Its JSON shape (`--json`) is stable and documented
// in README.md ("qemu-harden import"); the text rendering is for people.

/** One decision about one element, attribute or key of the source. */
export interface ReportItem {
  /** Where in the source: an XPath-like element path for libvirt (`devices/disk[2]/source@protocol`), a key for
   * Proxmox (`scsi0`, `[PENDING]`). */
  source: string;
  /** What happened and why, in one sentence. */
  message: string;
}

/** State the guest had at its source that only the operator can bring over: where it is, and where it goes. */
export interface CopyItem extends ReportItem {
  /** The file, directory or volume at the source (a path, or Proxmox's storage:volume when it was not resolved). */
  from: string;
  /** Where the bundle's guest keeps it: put it there before the guest's first start. */
  to: string;
}

export type GuestOutcome = 'imported' | 'defaulted' | 'refused';

export interface GuestReport {
  /** The file (or `virsh dumpxml NAME`) the guest came from. */
  file: string;
  /** The guest's name in the source, if it had one. */
  sourceName: string | null;
  /** The guest's name in the answers; null when refused. */
  name: string | null;
  /** imported: everything carried; defaulted: imported with items left at the secure default or state to copy;
   * refused. */
  outcome: GuestOutcome;
  carried: ReportItem[];
  defaulted: ReportItem[];
  refused: ReportItem[];
  /** State to copy by hand (a TPM's): never dropped without a word. */
  copy: CopyItem[];
}

export interface ImportReport {
  format: 'qemu-harden-import-report';
  version: 1;
  source: 'libvirt' | 'proxmox';
  /** The answers file written, or null when nothing was written (a refusal, or no --out). */
  out: string | null;
  written: boolean;
  /** The worst outcome of all guests; the exit status is 0, 1 or 2 for imported, defaulted, refused. */
  outcome: GuestOutcome;
  guests: GuestReport[];
  /** Problems of the whole set rather than of one guest (e.g. two guests writing the same disk). */
  problems: string[];
}

/** Collects the decisions about one guest while its source is read. */
export class GuestLog {
  readonly carried: ReportItem[] = [];
  readonly defaulted: ReportItem[] = [];
  readonly refused: ReportItem[] = [];
  /** Copies to make, with their destination by the guest's final name (a name taken twice is renamed later). */
  readonly copies: { source: string; message: string; from: string; to: (guest: string) => string }[] = [];
  carry(source: string, message: string): void {
    this.carried.push({ source, message });
  }
  secureDefault(source: string, message: string): void {
    this.defaulted.push({ source, message });
  }
  refuse(source: string, message: string): void {
    this.refused.push({ source, message });
  }
  /** State the operator must bring over: `to` gives its destination from the guest's name in the answers. */
  copy(source: string, message: string, from: string, to: (guest: string) => string): void {
    this.copies.push({ source, message, from, to });
  }
  outcome(): GuestOutcome {
    return this.refused.length ? 'refused' : this.defaulted.length || this.copies.length ? 'defaulted' : 'imported';
  }
}

const RANK: Record<GuestOutcome, number> = { imported: 0, defaulted: 1, refused: 2 };

export function worstOutcome(outcomes: GuestOutcome[]): GuestOutcome {
  return outcomes.reduce<GuestOutcome>((w, o) => (RANK[o] > RANK[w] ? o : w), 'imported');
}

export function exitStatus(o: GuestOutcome): 0 | 1 | 2 {
  return RANK[o] as 0 | 1 | 2;
}

export function renderReport(r: ImportReport): string {
  const out: string[] = [];
  for (const g of r.guests) {
    const head =
      g.outcome === 'refused' ? 'REFUSED' : g.outcome === 'defaulted' ? 'imported, with secure defaults' : 'imported';
    const rename = g.name && g.sourceName !== null && g.sourceName !== g.name ? ` (was "${g.sourceName}")` : '';
    out.push(`${g.file}: ${g.name ?? g.sourceName ?? '(no name)'}${rename} — ${head}`);
    const section = (title: string, items: ReportItem[]) => {
      if (!items.length) return;
      out.push(`  ${title}:`);
      for (const i of items) out.push(`    ${i.source}: ${i.message}`);
    };
    section('refused', g.refused);
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
  out.push(
    '',
    `${r.guests.length} guest${r.guests.length === 1 ? '' : 's'}: ${count('imported')} imported, ${count('defaulted')} imported with secure defaults, ${count('refused')} refused.`,
  );
  if (r.written) out.push(`Wrote ${r.out}. Next: qemu-harden generate --answers ${r.out} --out DIR`);
  else if (r.outcome === 'refused' && r.problems.length && r.guests.every((g) => g.outcome !== 'refused'))
    out.push(
      'Nothing was written: import the conflicting guests into separate answers files, or fix the conflict at the source.',
    );
  else if (r.outcome === 'refused')
    out.push(
      'Nothing was written: import the refused guests after fixing them at the source, or leave their files out.',
    );
  else if (r.out === null) out.push('Nothing was written (no --out given).');
  return out.join('\n') + '\n';
}
