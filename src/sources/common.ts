// What the libvirt and Proxmox importers share: the record every import source fills, what the caller knows of
// the host (handed in: a source reads no host file and runs no program), reading a bounded file, turning a
// foreign name into a guest name, and checking one imported guest against the answers schema so that a value the
// schema rejects is reported against the element or key it came from.
import { readFileSync, statSync } from 'node:fs';
import { InputError } from '../errors.js';
import { answersSchema, formatIssues } from '../answers.js';
import { plainError } from '../messages.js';
import { isReasonPlaceholder, reasonPlaceholder } from '../model.js';
import { GUEST_NAME } from '../names.js';
import { isFlag, redact, splitArgv, splitOpts } from '../qemuargs.js';
import { describeRemoval, removedOption, type RemovedQemuOption } from '../releases.js';
import { RISKS, type RiskId } from '../rules.js';
import { GuestLog, type GuestReport, type ImportReport, type ReportItem, worstOutcome } from './report.js';

/**
 * What the host the guests come from says about them, gathered by the caller (`import` asks this machine): a
 * source itself reads no host file and runs no program.
 */
export interface ImportHost {
  /** The QEMU binary the bundle runs, and whether it knows a CPU model (its `-cpu help`); undefined when that
   * binary is not on this host. */
  qemuBinary: string;
  knowsCpuModel(model: string): boolean | undefined;
  /** The IOMMU group of a PCI device of this host, or undefined when the device is not here. */
  iommuGroup(address: string): number | undefined;
  /** What of the host's own storage the block device at this path holds, in words; empty when none or when
   * the path is not a block device here. */
  storageOn(path: string): string[];
}

/** One input document: a file, or `virsh dumpxml NAME`. */
export interface SourceInput {
  file: string;
  read: () => string;
}

/** The result of an import: the answers document (null when refused) and the report. */
export interface ImportResult {
  document: unknown;
  report: ImportReport;
}

/**
 * An answer source `import` knows: its kind, what its inputs are, the host file that completes them, the
 * running guests it can read through a program the caller runs, and the import itself.
 */
export interface ImportSource {
  kind: ImportReport['source'];
  /** The inputs on the command line, and what one of them is: "DOMAIN.xml...", "a domain XML file". */
  inputs: string;
  input: string;
  /** The file the host keeps beside its guests (qemu.conf, storage.cfg): the option naming it and where the
   * host keeps it, read when it exists and no other is named. */
  config: { flag: string; path: string; what: string };
  /** Running guests, listed and dumped by a program of the host that the caller runs. */
  running?: {
    flag: string;
    what: string;
    tool: string;
    debianPackage: string;
    list: string[];
    dump: (name: string) => string[];
  };
  /** The guests of the inputs as one answers document; `config` is the text of the config file when read. */
  import(inputs: SourceInput[], config: { file: string; text: string } | undefined, host: ImportHost): ImportResult;
}

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

/** A valid guest name derived from a foreign one: lower-case, other characters to "-", at most 24 characters. */
export function toGuestName(raw: string, fallback: string): string {
  let n = raw
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+$/, '');
  n = n.slice(0, 24).replace(/-+$/, '');
  return GUEST_NAME.test(n) ? n : fallback;
}

/** Answers paths inside one guest (`disks.0`) to the source element or key they came from. */
export type Provenance = [prefix: string, source: string][];

/** A risk an imported guest takes: where in the source it comes from, and what a person must judge. */
export interface PendingRisk {
  risk: RiskId;
  source: string;
  /** What the operator is asked to write about, in the request that stands in for the reason. */
  about: string;
}

/** One guest as a source reads it: the answers it becomes, where each came from, the report, its risks. */
export interface GuestDraft {
  file: string;
  guest: Record<string, unknown>;
  prov: Provenance;
  log: GuestLog;
  risks: PendingRisk[];
  host: ImportHost;
}

export function newDraft(file: string, host: ImportHost): GuestDraft {
  return { file, guest: {}, prov: [], log: new GuestLog(), risks: [], host };
}

/** Record the guest's name: kept when valid, otherwise mapped and reported. */
export function nameGuest(d: GuestDraft, raw: string | undefined, fallback: string, source: string): void {
  d.prov.push(['name', source]);
  if (raw === undefined || raw === '') {
    d.log.carry(source, `no name in the source; named "${fallback}"`);
    d.guest.name = fallback;
    return;
  }
  if (GUEST_NAME.test(raw)) {
    d.log.carry(source, `name "${raw}"`);
    d.guest.name = raw;
    return;
  }
  const n = toGuestName(raw, fallback);
  d.log.carry(
    source,
    `name ${JSON.stringify(raw.slice(0, 80))} is not a valid guest name (lower-case letters, digits and "-", 1-24 characters); mapped to "${n}"`,
  );
  d.guest.name = n;
}

/** A one-line description for the answers (and the unit's Description=): the first non-empty line, control
 * characters dropped, at most 200 characters. */
export function describeGuest(d: GuestDraft, raw: string | undefined, source: string): void {
  const line = (raw ?? '')
    .split('\n')
    .map((l) => l.replace(/[\u0000-\u001f\u007f]/g, ' ').trim())
    .find((l) => l !== '');
  if (!line) return;
  d.guest.description = line.length > 200 ? `${line.slice(0, 199)}…` : line;
  d.prov.push(['description', source]);
  d.log.carry(
    source,
    `description ${JSON.stringify(d.guest.description)}${line.length > 200 ? ' (first 200 characters)' : ''}`,
  );
}

/**
 * A block device that holds the host's own storage (a mounted file system, swap, a volume built on it) is
 * refused, naming what holds it; true when the disk may be carried.
 */
export function hostStorageFree(d: GuestDraft, path: string, source: string): boolean {
  const held = d.host.storageOn(path);
  if (held.length === 0) return true;
  d.log.refuse(source, `${path} holds this host's own storage, which no guest may write or read: ${held.join('; ')}`);
  return false;
}

/**
 * A CPU model the QEMU of this host does not know would make the bundle's unit fail at start (and `verify`
 * says so): such a model is left at the bundle's default, and the report says why.
 */
export function knownCpuModel(d: GuestDraft, model: string, source: string): boolean {
  if (d.host.knowsCpuModel(model) !== false) return true;
  const bin = d.host.qemuBinary;
  d.log.secureDefault(
    source,
    `CPU model "${model}" is not one ${bin} knows here (${bin.split('/').pop()} -cpu help); the bundle's default CPU model is used`,
  );
  return false;
}

/** The IOMMU group of a PCI device to pass through, or a refusal when this host does not have the device. */
export function iommuGroupOf(d: GuestDraft, address: string, source: string): number | undefined {
  const group = d.host.iommuGroup(address);
  if (group === undefined)
    d.log.refuse(
      source,
      `PCI device ${address} is not on this machine, so its IOMMU group (which decides what else goes to the guest) is unknown; import on the guest's host`,
    );
  return group;
}

/** One option a source passes straight to QEMU (Proxmox's `args:`, libvirt's <qemu:commandline>). */
export interface PassedOption {
  /** Where in the source its first word is. */
  source: string;
  /** As written: "-runas nobody". */
  shown: string;
  /** The option QEMU removed that it is or uses (src/releases.ts), if any. */
  removed: RemovedQemuOption | undefined;
  /** Why it cannot be carried; undefined when it is translated. */
  refusal: string | undefined;
}

/**
 * The options of words a source passes straight to QEMU, and what import makes of each. Such options go around
 * every check and confinement the bundle builds, so each is refused, except an option QEMU removed whose
 * replacement the answers or the bundle already say: -no-hpet and -no-acpi become hpet: false and acpi: false,
 * -runas and -chroot are what the guest's unit does anyway. `at(i)` says where the i-th word came from.
 */
export function passedThrough(words: string[], at: (i: number) => string): PassedOption[] {
  const out: PassedOption[] = [];
  let i = 0;
  for (const o of splitArgv(['', ...words])) {
    const source = at(i);
    i += o.name !== '' && o.value !== undefined ? 2 : 1;
    const shown = redact(o.name === '' ? (o.value ?? '') : `-${o.name}${o.value === undefined ? '' : ` ${o.value}`}`);
    const removed = o.name === '' ? undefined : removedOption(o.name, (implied) => splitOpts(o.value ?? '', implied));
    const when = removed && `${describeRemoval(removed)}; use ${removed.instead}`;
    let refusal: string | undefined;
    if (!removed || removed.uses)
      refusal = `passes options straight to QEMU, around every check and confinement this bundle builds${when ? ` (besides, ${when})` : ''}`;
    else if (removed.refused) refusal = `${removed.refused} (${when})`;
    else if (o.value === undefined && !isFlag(o.name)) refusal = 'has no argument: QEMU would not start with it';
    out.push({ source, shown, removed, refusal });
  }
  return out;
}

/** The report's record of a removed option. */
export const removedItem = (r: RemovedQemuOption): NonNullable<ReportItem['removed']> => ({
  option: r.option,
  removedIn: r.removedIn,
  instead: r.instead,
});

/** Carry a passed-through option QEMU removed as what replaced it, naming the translation and the release. */
export function translateRemoved(d: GuestDraft, o: PassedOption): void {
  const r = o.removed!;
  if (r.answer) {
    d.guest[r.answer] = false;
    d.prov.push([r.answer, o.source]);
    d.log.translate(
      o.source,
      `${o.shown} → ${r.answer}: false, which the bundle writes as ${r.instead} (${describeRemoval(r)})${r.answer === 'acpi' ? `; ${NO_ACPI_STOP}` : ''}`,
      removedItem(r),
    );
  } else {
    const instead = r.bundle.charAt(0).toLowerCase() + r.bundle.slice(1).replace(/\.$/, '');
    d.log.translate(o.source, `${o.shown} → not needed: ${instead} (${describeRemoval(r)})`, removedItem(r));
  }
}

/** What a guest without ACPI means for stopping its unit, in the report of every source that turns ACPI off. */
export const NO_ACPI_STOP =
  'the guest does not hear the power button its unit presses to stop it, so a stop waits TimeoutStopSec before QEMU quits';

/** A risk the guest takes: accepted only once a person writes why, so the answers carry a request instead. */
export function takesRisk(d: GuestDraft, risk: RiskId, source: string, about: string): void {
  if (!d.risks.some((r) => r.risk === risk)) d.risks.push({ risk, source, about });
  else d.risks.find((r) => r.risk === risk)!.about += `; ${about}`;
}

/** The answers document of one guest alone, with each risk's request standing in for its reason. */
function documentOf(guests: Record<string, unknown>[], risks: Record<string, unknown>[]) {
  return { schemaVersion: 1, useCase: 'virtualization', guests, acceptedRisks: risks };
}

const requestFor = (guest: string, r: PendingRisk) =>
  reasonPlaceholder(
    `write here, in your own words, why guest ${guest} may take the risk "${r.risk}" (${RISKS[r.risk].title}): ${r.about}`,
  );

/** Schema issues, less the one a request standing in for a reason always raises. */
function issuesOf(doc: ReturnType<typeof documentOf>) {
  const r = answersSchema.safeParse(doc, { error: plainError });
  if (r.success) return [];
  const waiting = (p: PropertyKey[]) =>
    p[0] === 'acceptedRisks' &&
    p[2] === 'reason' &&
    isReasonPlaceholder(String((doc.acceptedRisks[Number(p[1])] as { reason?: unknown })?.reason ?? ''));
  const issues = r.error.issues.filter((i) => !waiting(i.path));
  return issues.map((issue, i) => ({ issue, message: formatIssues(issues)[i]! }));
}

/**
 * Check one guest alone against the schema: every value the source gave goes through it, and what it rejects
 * refuses the guest, named by the source element or key the value came from, or, for a value the source lacks
 * (`absent`: answers path → where the source would say it), by where it would be.
 */
export function checkGuest(d: GuestDraft, absent: Record<string, string> = {}): void {
  const name = d.guest.name as string;
  const doc = documentOf(
    [d.guest],
    d.risks.map((r) => ({ risk: r.risk, guest: name, reason: requestFor(name, r) })),
  );
  for (const { issue, message } of issuesOf(doc)) {
    const path = issue.path.map(String);
    const inGuest = path[0] === 'guests' ? path.slice(2).join('.') : path.join('.');
    const best = d.prov
      .filter(([p]) => inGuest === p || inGuest.startsWith(p + '.'))
      .sort((a, b) => b[0].length - a[0].length)[0];
    d.log.refuse(
      best ? best[1] : (absent[inGuest] ?? '(guest)'),
      `not a valid answer: ${message.replace(/^guests\.0\./, '')}`,
    );
  }
}

/** A source's guest once read: the draft, or only its log when the source refused it. */
export interface GuestResult {
  file: string;
  draft?: GuestDraft;
  log: GuestLog;
  sourceName: string | null;
}

/** The end of reading one guest: a draft that passed the schema, or the refusals that keep it out. */
export function finish(
  d: GuestDraft,
  sourceName: string | null,
  absent: Record<string, string>,
): Omit<GuestResult, 'file'> {
  if (d.log.refused.length === 0) checkGuest(d, absent);
  return d.log.refused.length ? { log: d.log, sourceName } : { draft: d, log: d.log, sourceName };
}

/**
 * The answers document of every imported guest, and the report. Names are made unique across the set; each risk a
 * guest takes becomes an acceptedRisks entry whose reason is a request only a person can replace; the whole
 * document then goes through the schema once more, for the rules that span guests (a disk written by two guests,
 * a port used twice). Any refusal means no document: an answers file without some of the guests it was asked for
 * would be half an import.
 */
function assemble(kind: ImportReport['source'], results: GuestResult[]): ImportResult {
  const used = new Set<string>();
  const guests: Record<string, unknown>[] = [];
  const acceptedRisks: Record<string, unknown>[] = [];
  const owner: string[] = [];
  for (const r of results) {
    if (!r.draft) continue;
    const g = r.draft.guest;
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
    for (const risk of r.draft.risks) {
      r.log.awaitReason(
        risk.source,
        `the risk "${risk.risk}" (${RISKS[risk.risk].title}) is accepted only with a reason a person writes: ${risk.about}`,
        `acceptedRisks.${acceptedRisks.length}.reason`,
      );
      acceptedRisks.push({ risk: risk.risk, guest: name, reason: requestFor(name, risk) });
    }
  }
  const reports: GuestReport[] = results.map((r) => {
    const name = r.draft ? (r.draft.guest.name as string) : null;
    return {
      file: r.file,
      sourceName: r.sourceName,
      name,
      outcome: r.log.outcome(),
      carried: r.log.carried,
      defaulted: r.log.defaulted,
      needsReason: r.log.needsReason,
      refused: r.log.refused,
      copy:
        name === null
          ? []
          : r.log.copies.map((c) => ({ source: c.source, message: c.message, from: c.from, to: c.to(name) })),
    };
  });
  const problems: string[] = [];
  let document: unknown = documentOf(guests, acceptedRisks);
  if (guests.length === results.length && guests.length > 0)
    for (const { issue, message } of issuesOf(document as ReturnType<typeof documentOf>)) {
      const p = issue.path;
      problems.push(p[0] === 'guests' && typeof p[1] === 'number' ? `${owner[p[1]]}: ${message}` : message);
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
      version: 3,
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
  inputs: SourceInput[],
  importOne: (text: string, file: string) => Omit<GuestResult, 'file'>,
  where: (message: string, file: string) => string,
): ImportResult {
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
