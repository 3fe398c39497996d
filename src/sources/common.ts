// What the libvirt and Proxmox importers share: reading a bounded file, turning a foreign name into a guest
// name, and checking one imported guest against the answers schema so that a value the schema rejects is
// reported against the element or key it came from.
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { InputError } from '../errors.js';
import { answersSchema, formatIssues } from '../answers.js';
import { plainError } from '../messages.js';
import { cpuModelsSync } from '../qemucaps.js';
import { GuestLog, type GuestReport, type ImportReport, worstOutcome } from './report.js';

/** A guest definition is a few kilobytes; anything past this bound is not one. */
export const MAX_SOURCE_BYTES = 1024 * 1024;

export function readBounded(file: string, what: string, max = MAX_SOURCE_BYTES): string {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new InputError(`${file}: not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (size > max) throw new InputError(`${file}: ${size} bytes is too large for ${what} (at most ${max} bytes)`);
  const buf = readFileSync(file);
  if (buf.length > max) throw new InputError(`${file}: too large for ${what} (at most ${max} bytes)`);
  return checkText(buf.toString('utf8'), file);
}

export function checkText(text: string, where: string): string {
  if (text.includes('\u0000')) throw new InputError(`${where}: contains a NUL byte; not a text file`);
  if (text.includes('\ufffd')) throw new InputError(`${where}: is not valid UTF-8`);
  return text;
}

const NAME_RE = /^[a-z][a-z0-9-]{0,22}[a-z0-9]$|^[a-z]$/;

/** A valid guest name derived from a foreign one: lower-case, other characters to "-", at most 24 characters. */
export function toGuestName(raw: string, fallback: string): string {
  let n = raw
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+$/, '');
  n = n.slice(0, 24).replace(/-+$/, '');
  return NAME_RE.test(n) ? n : fallback;
}

/** Record the guest's name: kept when valid, otherwise mapped and reported. */
export function nameGuest(raw: string | undefined, fallback: string, source: string, log: GuestLog): string {
  if (raw === undefined || raw === '') {
    log.carry(source, `no name in the source; named "${fallback}"`);
    return fallback;
  }
  if (NAME_RE.test(raw)) {
    log.carry(source, `name "${raw}"`);
    return raw;
  }
  const n = toGuestName(raw, fallback);
  log.carry(
    source,
    `name ${JSON.stringify(raw.slice(0, 80))} is not a valid guest name (lower-case letters, digits and "-", 1-24 characters); mapped to "${n}"`,
  );
  return n;
}

/** A one-line description for the answers (and the unit's Description=): the first non-empty line, control
 * characters dropped, at most 200 characters. */
export function describeGuest(
  raw: string | undefined,
  source: string,
  g: Record<string, unknown>,
  prov: Provenance,
  log: GuestLog,
): void {
  const line = (raw ?? '')
    .split('\n')
    .map((l) => l.replace(/[\u0000-\u001f\u007f]/g, ' ').trim())
    .find((l) => l !== '');
  if (!line) return;
  g.description = line.length > 200 ? `${line.slice(0, 199)}…` : line;
  prov.push(['description', source]);
  log.carry(
    source,
    `description ${JSON.stringify(g.description)}${line.length > 200 ? ' (first 200 characters)' : ''}`,
  );
}

/** Answers paths inside one guest (`disks.0`) to the source element or key they came from. */
export type Provenance = [prefix: string, source: string][];

export interface ImportedGuest {
  guest: Record<string, unknown>;
  risks: { risk: string; reason: string }[];
}

/**
 * Check one guest alone against the schema: every value the source gave goes through it, and what it rejects
 * refuses the guest, named by the source element or key the value came from, or, for a value the source lacks
 * (`absent`: answers path → where the source would say it), by where it would be.
 */
export function checkGuest(
  imp: ImportedGuest,
  prov: Provenance,
  log: GuestLog,
  absent: Record<string, string> = {},
): void {
  const name = imp.guest.name as string;
  const doc = {
    schemaVersion: 1,
    useCase: 'virtualization',
    guests: [imp.guest],
    acceptedRisks: imp.risks.map((r) => ({ ...r, guest: name })),
  };
  const r = answersSchema.safeParse(doc, { error: plainError });
  if (r.success) return;
  const messages = formatIssues(r.error.issues);
  r.error.issues.forEach((issue, i) => {
    const path = issue.path.map(String);
    const inGuest = path[0] === 'guests' ? path.slice(2).join('.') : path.join('.');
    const best = prov
      .filter(([p]) => inGuest === p || inGuest.startsWith(p + '.'))
      .sort((a, b) => b[0].length - a[0].length)[0];
    const text = messages[i]!.replace(/^guests\.0\./, '');
    log.refuse(best ? best[1] : (absent[inGuest] ?? '(guest)'), `not a valid answer: ${text}`);
  });
}

/** The IOMMU group of a host PCI device, read from sysfs on this machine. */
export function iommuGroupOf(address: string, sysfs = '/sys/bus/pci/devices'): number | undefined {
  try {
    const link = realpathSync(`${sysfs}/${address}/iommu_group`);
    const m = /\/(\d+)$/.exec(link);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export const RISK_REASON = (file: string, what: string) =>
  `Imported from ${file}, which passes ${what} through to this guest. Review before applying.`;

export interface GuestResult {
  file: string;
  imported?: ImportedGuest;
  log: GuestLog;
  sourceName: string | null;
}

/**
 * The answers document of every imported guest, and the report. Names are made unique across the set; the whole
 * document then goes through the schema once more, for the rules that span guests (a disk written by two
 * guests, a port used twice). Any refusal means no document: an answers file without some of the guests it
 * was asked for would be half an import.
 */
function assemble(kind: ImportReport['source'], results: GuestResult[]): { document: unknown; report: ImportReport } {
  const used = new Set<string>();
  const guests: Record<string, unknown>[] = [];
  const acceptedRisks: Record<string, unknown>[] = [];
  const owner: string[] = [];
  for (const r of results) {
    if (!r.imported) continue;
    const g = r.imported.guest;
    let name = g.name as string;
    if (used.has(name)) {
      const base = name;
      for (let i = 2; used.has(name); i++) name = `${base.slice(0, 24 - String(i).length - 1).replace(/-+$/, '')}-${i}`;
      r.log.carry('name', `"${base}" is already the name of another imported guest; renamed to "${name}"`);
      g.name = name;
    }
    used.add(name);
    guests.push(g);
    owner.push(r.file);
    for (const risk of r.imported.risks) acceptedRisks.push({ ...risk, guest: name });
  }
  const reports: GuestReport[] = results.map((r) => {
    const name = r.imported ? (r.imported.guest.name as string) : null;
    return {
      file: r.file,
      sourceName: r.sourceName,
      name,
      outcome: r.log.outcome(),
      carried: r.log.carried,
      defaulted: r.log.defaulted,
      refused: r.log.refused,
      copy:
        name === null
          ? []
          : r.log.copies.map((c) => ({ source: c.source, message: c.message, from: c.from, to: c.to(name) })),
    };
  });
  const problems: string[] = [];
  let document: unknown = { schemaVersion: 1, useCase: 'virtualization', guests, acceptedRisks };
  if (guests.length === results.length && guests.length > 0) {
    const r = answersSchema.safeParse(document, { error: plainError });
    if (!r.success)
      formatIssues(r.error.issues).forEach((m, i) => {
        const p = r.error.issues[i]!.path;
        const gi = p[0] === 'guests' && typeof p[1] === 'number' ? p[1] : p[0] === 'acceptedRisks' ? -1 : -1;
        problems.push(gi >= 0 ? `${owner[gi]}: ${m}` : m);
      });
  }
  const outcome =
    problems.length || guests.length < results.length || results.length === 0
      ? 'refused'
      : worstOutcome(reports.map((g) => g.outcome));
  if (outcome === 'refused') document = null;
  return {
    document,
    report: {
      format: 'qemu-harden-import-report',
      version: 1,
      source: kind,
      out: null,
      written: false,
      outcome,
      guests: reports,
      problems,
    },
  };
}

/**
 * One guest from each input document, assembled. A document `importOne` refuses as a whole (an InputError) is
 * a refused guest; `where` turns the error's message, which starts with the file's name, into where in the file.
 */
export function importDocuments(
  kind: ImportReport['source'],
  inputs: { file: string; read: () => string }[],
  importOne: (text: string, file: string) => Omit<GuestResult, 'file'>,
  where: (message: string, file: string) => string,
): { document: unknown; report: ImportReport } {
  return assemble(
    kind,
    inputs.map(({ file, read }) => {
      try {
        return { file, ...importOne(read(), file) };
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        const log = new GuestLog();
        log.refuse('(document)', where(e.message, file));
        return { file, log, sourceName: null };
      }
    }),
  );
}

/**
 * A CPU model the QEMU of this host does not know would make the bundle's unit fail at start (and `verify`
 * says so): such a model is left at the bundle's default, and the report says why.
 */
export function knownCpuModel(
  model: string,
  log: GuestLog,
  source: string,
  binary = '/usr/bin/qemu-system-x86_64',
): boolean {
  const known = cpuModelsSync(binary);
  if (!known || known.includes(model)) return true;
  log.secureDefault(
    source,
    `CPU model "${model}" is not one ${binary} knows here (${binary.split('/').pop()} -cpu help); the bundle's default CPU model is used`,
  );
  return false;
}
