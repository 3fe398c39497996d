// The walk of an install, in order and without climbing back, for `apply` and `rollback` alike (they differ only
// in where the bundle comes from and which admission it passes): open the root → read the bundle and the record →
// admit the bundle → plan → show the plan and ask → begin the journal → retire removed guests → back up and
// replace files → activate → commit the record → check the operator's secrets → start guests (start.ts), or say
// what is left to start and the one command that does it. What it did is also kept as an InstallReport, which
// --json prints (docs/install.md has its shape).
//
// Every condition the host can cause ends with a documented exit status and a message that says what was done and
// the way out, never as an internal error: a refusal before anything changed (1), a damaged install record (2,
// from record.ts), and a symlink swapped in or an I/O error once the install has begun (1: the journal stays, and
// the next apply or rollback completes the install).
import type { StepResult } from '../activation.js';
import { visible } from '../escape.js';
import { InputError } from '../errors.js';
import type { Io } from '../io.js';
import type { Answers } from '../model.js';
import {
  activate,
  checkSecrets,
  droppedNote,
  removedGuests,
  removedNote,
  retire,
  type RemovedGuest,
} from './activate.js';
import { admit, describeRefusals, type AdmissionCheck } from './admit.js';
import type { Bundle } from './bundle.js';
import { describePlan, planInstall, PlanRefused, refusalOf, type GuestPlan, type Plan } from './plan.js';
import { begin, commit, recover, wayOn, type InstallRecord, type Journal } from './record.js';
import { startInstalled, type StartReport } from './start.js';
import { backupDirFor, transact, type Progress } from './transaction.js';
import { OutsideTree, Tree } from './tree.js';
import { targetProblems } from '../target.js';
import { plural } from '../words.js';

export interface InstallOptions {
  dryRun: boolean;
  yes: boolean;
  start: boolean;
  /** qemu-harden's `start` command as the operator runs it here as root, for the hint when --start is not given. */
  again: string;
}

export type Outcome = 'ok' | 'findings' | 'usage' | 'cancelled';

/** What an apply or rollback did, for --json: a stable shape, fields only ever added (docs/install.md). */
export interface InstallReport {
  action: Journal['action'];
  root: string;
  dryRun: boolean;
  /** The bundle installed (its directory, or the record's copy for rollback), once it was read. */
  bundle: { from: string; manifest: string } | null;
  /** What an interrupted install left, when one did. */
  recovered: string | null;
  plan: {
    files: { path: string; change: 'new' | 'changed' | 'unchanged' | 'removed'; diff: string | null }[];
    leftAlone: { path: string; why: string }[];
    guests: GuestPlan[];
  } | null;
  result: 'dry-run' | 'nothing-to-change' | 'installed' | 'unfinished' | 'refused' | 'cancelled';
  /** Why it was refused or is unfinished, or what failed after it was recorded. */
  problem: string | null;
  /** Where replaced and removed files were backed up, when any were. */
  backups: string | null;
  steps: StepResult[];
  removedGuests: RemovedGuest[];
  /** The guests brought to (or measured against) their installed unit and profile; null when the install did not
   * get that far (a dry run, a refusal, an unfinished install). */
  start: StartReport | null;
  ok: boolean;
}

export interface Installed {
  outcome: Outcome;
  report: InstallReport;
}

/** What an install starts from: the bundle to put in place, the admission it passes, the record as it was read. */
export interface Loaded {
  bundle: Bundle;
  admission: readonly AdmissionCheck[];
  record: InstallRecord;
  /** Said to the operator before the plan (rollback says which bundle it restores). */
  note?: string;
}

/** Refused before anything changed; the message names what and why. */
export class Refused extends Error {}

interface State {
  /** The journal is on disk: host files may have changed from here on. */
  journaled: boolean;
  committed: boolean;
  backupDir?: string;
  progress: Progress;
  report: InstallReport;
}

const isIoError = (e: unknown): e is NodeJS.ErrnoException =>
  e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && 'syscall' in e;

/** An I/O error in the operator's words: the file it happened at, the system call and the error. */
const ioMessage = (e: NodeJS.ErrnoException, at: string | undefined) =>
  `${at ? `${visible(at)}: ` : ''}${e.syscall} failed: ${e.code}`;

export async function runInstall(
  action: Journal['action'],
  rootArg: string,
  o: InstallOptions,
  io: Io,
  load: (tree: Tree) => Promise<Loaded>,
): Promise<Installed> {
  const tree = Tree.open(rootArg);
  const report: InstallReport = {
    action,
    root: tree.root,
    dryRun: o.dryRun,
    bundle: null,
    recovered: null,
    plan: null,
    result: 'refused',
    problem: null,
    backups: null,
    steps: [],
    removedGuests: [],
    start: null,
    ok: false,
  };
  const state: State = {
    journaled: false,
    committed: false,
    progress: { backedUp: [], installed: [], removed: [] },
    report,
  };
  const done = (outcome: Outcome): Installed => ({ outcome, report: { ...report, ok: outcome === 'ok' } });
  try {
    if (tree.root === '/' && !io.isRoot && !o.dryRun)
      throw new InputError(`${action} to / must run as root (or use --root PATH, or --dry-run)`);
    return done(await walk(action, tree, o, io, load, state));
  } catch (e) {
    if (e instanceof InputError) throw e;
    const why =
      e instanceof Refused || e instanceof PlanRefused
        ? e.message
        : e instanceof OutsideTree
          ? refusalOf(state.progress.at ?? visible(e.path), e, tree.root)
          : isIoError(e)
            ? ioMessage(e, state.progress.at)
            : undefined;
    if (why === undefined) throw e;
    io.err(stoppedMessage(action, isIoError(e) ? 'stopped' : 'refused', why, state, tree));
    report.problem = why;
    if (state.journaled && !state.committed) report.result = 'unfinished';
    return done('findings');
  } finally {
    tree.close();
  }
}

function stoppedMessage(
  action: Journal['action'],
  how: 'refused' | 'stopped',
  why: string,
  s: State,
  tree: Tree,
): string {
  if (!s.journaled) {
    const [first, ...rest] = why.split('\n');
    return `qemu-harden: ${action} ${how}: ${first!.replace(/:$/, '')}; nothing was changed${rest.length ? `:\n${rest.join('\n')}` : '.'}\n`;
  }
  if (s.committed)
    return `qemu-harden: the ${action} is complete and recorded, but then: ${why}\nqemu-harden: run ${action} again to repeat the checks after it.\n`;
  const p = s.progress;
  return (
    `qemu-harden: ${action} stopped midway: ${why}\n` +
    `qemu-harden: done so far: ${p.backedUp.length} files backed up${s.backupDir ? ` (under ${visible(tree.shown(s.backupDir))})` : ''}, ${p.installed.length} installed, ${p.removed.length} removed.\n` +
    `qemu-harden: the journal records this unfinished ${action}, and no guest was started or restarted. Fix the cause, then run ${wayOn(action)}.\n`
  );
}

async function walk(
  action: Journal['action'],
  tree: Tree,
  o: InstallOptions,
  io: Io,
  load: (tree: Tree) => Promise<Loaded>,
  state: State,
): Promise<Outcome> {
  const { bundle, admission, record, note } = await load(tree);
  const report = state.report;
  report.bundle = { from: bundle.from, manifest: bundle.manifestHash };
  const { refusals, answers } = await admit(bundle, admission);
  if (refusals.length) throw new Refused(describeRefusals(refusals));
  // Apply hands on the answers it validated; a recorded bundle's are validated here.
  const validated = answers ?? (await validateRecorded(bundle));
  // What the target really has at each disk path (a character device, or a device holding the host's own storage)
  // is judged here, on the target, before anything is planned: the bundle may have been made where none of it
  // exists.
  const held = typeof validated === 'string' ? [] : targetProblems(tree.root, validated);
  if (held.length)
    throw new Refused(`a disk path on ${visible(tree.root)} is not what the answers say:\n  ${held.join('\n  ')}`);
  const recovered = recover(tree, record, o.dryRun);
  report.recovered = recovered ?? null;
  if (note) io.out(note);
  const p = planInstall(action, bundle, tree, record, recovered);
  report.plan = planned(p);
  io.out(describePlan(p));
  if (o.dryRun) {
    io.out('Dry run: nothing was changed.\n');
    report.result = 'dry-run';
    return 'ok';
  }
  const step = (s: StepResult) => {
    report.steps.push(s);
    io.out(`  ${s.status === 'done' ? 'done' : s.status === 'skipped' ? 'skip' : 'FAIL'}  ${s.step}: ${s.detail}\n`);
  };
  // After the files: the guests brought to their installed unit and profile (--start), or what is left named
  // with the one command that does it.
  const guests = async () => {
    report.start = await startInstalled(tree, bundle, { act: o.start, again: o.again }, io);
    return report.start.ok;
  };
  if (p.idle) {
    report.result = 'nothing-to-change';
    // The secrets the operator provides are checked, never changed, on every run: keys often come after the users.
    const s = checkSecrets(tree, validated);
    step(s);
    return (await guests()) && s.status !== 'failed' ? 'ok' : 'findings';
  }
  if (!o.yes) {
    if (!io.isTTY || !io.confirm) {
      io.err(`qemu-harden: ${action} changes files; without a terminal pass --yes to confirm. Nothing was changed.\n`);
      return 'usage';
    }
    if (
      !(await io.confirm(
        `${action === 'apply' ? 'Apply' : 'Roll back with'} ${p.changes.length + p.removals.length === 1 ? 'this change' : `these ${p.changes.length + p.removals.length} changes`} to ${visible(p.root)}?`,
      ))
    ) {
      io.err('Nothing was changed.\n');
      report.result = 'cancelled';
      return 'cancelled';
    }
  }
  report.removedGuests = removedGuests(p, record);
  state.progress.at = tree.shown('var/lib/qemu-harden/.installed');
  begin(tree, record, bundle, action);
  state.journaled = true;
  const retired = await retire(p);
  state.backupDir = backupDirFor();
  transact(tree, p, state.backupDir, state.progress);
  const backedUp = state.progress.backedUp.length;
  if (backedUp) report.backups = tree.shown(state.backupDir);
  io.out(
    `Installed ${plural(p.changes.length, 'file')}, removed ${p.removals.length}.` +
      `${backedUp ? ` Replaced and removed files were backed up under ${visible(tree.shown(state.backupDir))}.` : ''}\n`,
  );
  for (const s of [...retired, ...(await activate(p))]) step(s);
  // A failed step leaves the journal: the next apply or rollback reports the install as unfinished and runs
  // every step again, where a completed record would find nothing to do.
  if (report.steps.some((s) => s.status === 'failed')) {
    report.result = 'unfinished';
    report.problem = 'a step failed';
    io.err(
      `qemu-harden: a step failed, so this ${action} is not recorded as complete; fix the cause, then run ${wayOn(action)}. No guest was started or restarted.\n`,
    );
    return 'findings';
  }
  state.progress.at = tree.shown('var/lib/qemu-harden/.installed');
  commit(tree);
  state.committed = true;
  report.result = 'installed';
  io.out(removedNote(report.removedGuests) + droppedNote(p));
  // The operator's keys are checked once the install is complete and recorded: a key with the wrong mode is a
  // finding to fix by hand, not an unfinished install.
  const checked = checkSecrets(tree, validated);
  step(checked);
  return (await guests()) && checked.status !== 'failed' ? 'ok' : 'findings';
}

/** The plan as --json carries it: exact strings, every file with what happens to it. */
function planned(p: Plan): InstallReport['plan'] {
  return {
    files: [
      ...p.changes.map((c) => ({ path: c.hostPath, change: c.kind, diff: c.diff ?? null })),
      ...p.unchanged.map((path) => ({ path, change: 'unchanged' as const, diff: null })),
      ...p.removals.map((path) => ({ path, change: 'removed' as const, diff: null })),
    ],
    leftAlone: p.leftAlone.map((l) => ({ path: l.hostPath, why: l.why })),
    guests: p.guests,
  };
}

/** A recorded bundle's answers through the schema, or why the secrets check cannot use them. */
async function validateRecorded(b: Bundle): Promise<Answers | string> {
  const { validate } = await import('../answers.js');
  try {
    return validate(b.answers);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    return `the answers.json of this bundle does not validate with this qemu-harden (${visible(e.message.split('\n')[0] ?? '')})`;
  }
}
