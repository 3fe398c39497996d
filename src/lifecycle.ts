// Day two of a bundle: plan an install against what the record says is installed (new, changed and removed
// files; per guest new, changed — which of unit, profile, udev, users —, removed or unchanged), then install it
// under the journal: stop and disable removed guests, install and remove files, run apply's activation steps,
// move the record, and with --start start new guests and restart the changed ones. `apply` and `rollback` both
// run `runInstall`; they differ only in the bundle they hand it.
import { constants, copyFileSync, lstatSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import {
  activate,
  ApplyRefused,
  checkSecrets,
  describePlan,
  install,
  planApply,
  staysInside,
  type ApplyPlan,
} from './apply.js';
import type { StepResult } from './activation.js';
import type { Answers } from './model.js';
import { CONFINEMENT } from './confine/index.js';
import { InputError } from './errors.js';
import * as N from './names.js';
import { readText } from './procfs.js';
import type { Io } from './io.js';
import {
  begin,
  commit,
  guestPart,
  hostFiles,
  readBundle,
  readRecord,
  recover,
  type InstallRecord,
  type Journal,
  type RecordedBundle,
} from './record.js';
import { run, which } from './tools.js';
import { plural } from './words.js';

type Part = 'unit' | 'profile' | 'udev' | 'users';

interface GuestPlan {
  name: string;
  state: 'new' | 'changed' | 'removed' | 'unchanged';
  /** What of the guest changes (new and changed guests). */
  parts: Part[];
  /** Its systemd units, the guest's own first. */
  units: string[];
}

interface Removal {
  target: string;
  hostPath: string;
}

interface LifecyclePlan {
  action: Journal['action'];
  apply: ApplyPlan;
  bundle: RecordedBundle;
  record: InstallRecord;
  removals: Removal[];
  /** Recorded files no longer in the bundle that are not regular files on the host: left alone. */
  leftAlone: string[];
  guests: GuestPlan[];
  /** What an interrupted install left, when one did. */
  recovered?: string;
  /** Whether there is anything to do at all: files, or the record itself. */
  idle: boolean;
}

const SHARED: Record<string, Part> = {
  '/etc/sysusers.d/qemu-harden.conf': 'users',
  '/etc/tmpfiles.d/qemu-harden.conf': 'users',
  '/etc/udev/rules.d/65-qemu-harden.rules': 'udev',
};
const ABSTRACTION = '/etc/apparmor.d/abstractions/qemu-harden';

/** The lines of a shared file (users, directories, udev) that name the guest's user as a field. */
function guestLines(text: string | undefined, g: string): string {
  if (text === undefined) return '';
  const user = new RegExp(`(^|[\\s"=,])${N.userName(g).replace(/[.-]/g, '\\$&')}($|[\\s",])`);
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#') && user.test(l))
    .join('\n');
}

/** Plan an apply (or rollback) of `bundleDir` onto `root`, against the record kept there. */
function planInstall(action: Journal['action'], bundleDir: string, rootArg: string, dryRun: boolean): LifecyclePlan {
  const apply = planApply(bundleDir, rootArg);
  const bundle = readBundle(bundleDir);
  if (!bundle) throw new ApplyRefused(`${bundleDir}: not a complete bundle; nothing was changed`);
  const record = readRecord(apply.root);
  const recovered = recover(record, dryRun);
  const root = apply.root;
  const wanted = hostFiles(bundle);

  // What qemu-harden installed: the record's current bundle, and after an interruption also the one it was installing.
  const installed = new Map([...hostFiles(record.journal ? record.next : undefined), ...hostFiles(record.current)]);
  const removals: Removal[] = [];
  const leftAlone: string[] = [];
  for (const hostPath of [...installed.keys()].sort()) {
    if (wanted.has(hostPath)) continue;
    const target = join(root, hostPath);
    if (!staysInside(root, target))
      throw new ApplyRefused(`${hostPath}: the target leaves ${root} through a symlink; nothing was changed`);
    try {
      if (lstatSync(target).isFile()) removals.push({ target, hostPath });
      else leftAlone.push(hostPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  // A file changes for a guest when the bundle's copy differs from the host's or from the record's.
  const bundleText = (h: string) => readText(join(bundleDir, 'root', h));
  const olds = (h: string) => [
    readText(join(root, h)),
    ...[record.current, record.journal ? record.next : undefined]
      .filter((b) => b)
      .map((b) => readText(join(b!.dir, 'root', h))),
  ];
  const changedFile = (h: string) => {
    const now = bundleText(h);
    return olds(h).some((o) => o !== now);
  };
  const oldGuests = new Set([
    ...(record.current?.guests ?? []),
    ...(record.journal ? (record.next?.guests ?? []) : []),
  ]);
  const newGuests = bundle.guests;
  const allPaths = new Set([...wanted.keys(), ...installed.keys()]);
  const abstractionChanged = allPaths.has(ABSTRACTION) && changedFile(ABSTRACTION);

  const guests: GuestPlan[] = [];
  for (const g of newGuests) {
    const parts = new Set<Part>();
    let confined = false;
    for (const h of allPaths) {
      const part = guestPart(h, g);
      if (part === 'profile' && wanted.has(h)) confined = true;
      if (part && changedFile(h)) parts.add(part);
    }
    if (confined && abstractionChanged) parts.add('profile');
    for (const [h, part] of Object.entries(SHARED)) {
      const now = guestLines(bundleText(h), g);
      if (olds(h).some((o) => guestLines(o, g) !== now)) parts.add(part);
    }
    const units = [N.unitName(g), ...(wanted.has(`/etc/systemd/system/${N.tapUnitName(g)}`) ? [N.tapUnitName(g)] : [])];
    const state = !oldGuests.has(g) ? 'new' : parts.size ? 'changed' : 'unchanged';
    guests.push({ name: g, state, parts: [...parts].sort(), units });
  }
  for (const g of [...oldGuests].filter((n) => !newGuests.includes(n)).sort())
    guests.push({
      name: g,
      state: 'removed',
      parts: [],
      units: [N.unitName(g), ...(installed.has(`/etc/systemd/system/${N.tapUnitName(g)}`) ? [N.tapUnitName(g)] : [])],
    });

  const idle =
    apply.changes.length === 0 &&
    removals.length === 0 &&
    !record.journal &&
    record.current?.manifestHash === bundle.manifestHash;
  return { action, apply, bundle, record, removals, leftAlone, guests, recovered, idle };
}

/** Guests whose running QEMU keeps its old unit or profile until it restarts. */
const needsRestart = (g: GuestPlan) =>
  g.state === 'changed' && (g.parts.includes('unit') || g.parts.includes('profile'));

function describeInstall(p: LifecyclePlan): string {
  const out: string[] = [];
  if (p.recovered) out.push(`Interrupted install: ${p.recovered}.`);
  out.push(describePlan(p.apply).trimEnd());
  if (p.removals.length) {
    out.push(`Removed from the bundle (backed up, then deleted):`);
    for (const r of p.removals) out.push(`  removed   ${r.hostPath}`);
  }
  for (const h of p.leftAlone)
    out.push(`  ${h}: no longer in the bundle but not a regular file on the host: left alone`);
  out.push('Guests:');
  for (const g of p.guests)
    out.push(
      `  ${g.state.padEnd(9)} ${g.name}${g.parts.length && g.state === 'changed' ? ` (${g.parts.join(', ')})` : ''}`,
    );
  return out.join('\n') + '\n';
}

export interface InstallOptions {
  dryRun: boolean;
  yes: boolean;
  start: boolean;
}

export type Outcome = 'ok' | 'findings' | 'usage' | 'cancelled';

/** The backup directory of one install, named as the record format says. */
function backupDirFor(root: string): string {
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/[-:]/g, '');
  return join(root, 'var/backups/qemu-harden', stamp);
}

/** Back up, then delete, the recorded files the bundle no longer has. An earlier backup of the same second wins. */
function removeFiles(p: LifecyclePlan, backupDir: string): void {
  for (const r of p.removals) {
    const b = join(backupDir, relative(p.apply.root, r.target));
    mkdirSync(dirname(b), { recursive: true, mode: 0o700 });
    try {
      copyFileSync(r.target, b, constants.COPYFILE_EXCL);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    rmSync(r.target, { force: true });
  }
}

const systemdRuns = (root: string) => root === '/' && lstatOk('/run/systemd/system');
function lstatOk(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

async function systemctl(args: string[]): Promise<{ ok: boolean; text: string }> {
  const path = which('systemctl');
  if (!path) return { ok: false, text: 'systemctl is not installed (Debian package systemd)' };
  const r = await run(path, args, { timeoutMs: 120_000 });
  return { ok: r.exitCode === 0, text: (r.stderr || r.stdout).trim() };
}

/** Stop and disable the removed guests' units, and unload their profiles, before their files go. */
async function retire(p: LifecyclePlan): Promise<StepResult[]> {
  const removed = p.guests.filter((g) => g.state === 'removed');
  if (removed.length === 0) return [];
  const units = removed.flatMap((g) => g.units);
  const results: StepResult[] = [];
  const step = `stop and disable ${removed.map((g) => g.name).join(', ')}`;
  if (systemdRuns(p.apply.root)) {
    const r = await systemctl(['disable', '--now', ...units]);
    // A guest that ignored the power button was stopped by its timeout, which leaves its unit "failed": a guest
    // that is gone leaves no failed unit behind.
    if (r.ok) await systemctl(['reset-failed', ...units]);
    results.push({ step, status: r.ok ? 'done' : 'failed', detail: r.ok ? units.join(' ') : r.text });
  } else {
    const r = await systemctl([`--root=${p.apply.root}`, 'disable', ...units]);
    results.push({
      step,
      status: r.ok ? 'done' : 'failed',
      detail: r.ok ? `disabled in ${p.apply.root} (a tree: nothing to stop)` : r.text,
    });
  }
  if (p.apply.root === '/')
    for (const b of CONFINEMENT) {
      const files = p.removals.map((r) => r.hostPath).filter((h) => b.loads(h));
      if (files.length) results.push(await b.unload(files));
    }
  return results;
}

async function lastJournalLines(unit: string): Promise<string> {
  const journalctl = which('journalctl');
  if (!journalctl) return '      (journalctl is not installed)';
  // journald may not have written systemd's account of the failure yet when systemctl returns: wait up to 5 s
  // for the line that says how the unit ended; on a busy host journald can be seconds behind.
  let log = '';
  for (let i = 0; i < 20; i++) {
    log = (await run(journalctl, ['-u', unit, '-n', '15', '--no-pager', '-o', 'short-iso'])).stdout.trimEnd();
    if (/Failed with result|process exited|Failed to start/.test(log)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return log
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
}

/** Wait for a started unit to settle; a unit that is not active then is reported with its journal. */
async function settled(unit: string, started: { ok: boolean; text: string }): Promise<{ ok: boolean; detail: string }> {
  let state = '';
  if (started.ok)
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 250));
      state = (await systemctl(['is-active', unit])).text;
      if (state !== 'active' && state !== 'activating') break;
    }
  const restarts = (await systemctl(['show', '-p', 'NRestarts', '--value', unit])).text;
  if (started.ok && state === 'active' && restarts === '0') return { ok: true, detail: 'running' };
  const why = started.ok ? `${state || 'unknown'} after starting` : started.text.split('\n').at(-1);
  return { ok: false, detail: `${why}; its last journal lines:\n${await lastJournalLines(unit)}` };
}

/** With --start: enable and start new guests, restart changed ones. Without: say exactly what to run. */
async function startGuests(p: LifecyclePlan, start: boolean, io: Io): Promise<boolean> {
  const fresh = p.guests.filter((g) => g.state === 'new');
  const restart = p.guests.filter(needsRestart);
  if (!start) {
    if (restart.length)
      io.out(
        `Guests running their old unit or profile until restarted: ${restart.map((g) => g.name).join(', ')}\n  systemctl restart ${restart.map((g) => g.units[0]).join(' ')}\n`,
      );
    if (fresh.length)
      io.out(
        `New guests, not started: ${fresh.map((g) => g.name).join(', ')}\n  systemctl enable --now ${fresh.map((g) => g.units[0]).join(' ')}\n`,
      );
    if (restart.length || fresh.length) io.out('(or run apply again with --start)\n');
    return true;
  }
  if (fresh.length + restart.length === 0) return true;
  if (!systemdRuns(p.apply.root)) {
    io.out(`  skip  start guests: ${p.apply.root === '/' ? 'systemd is not running' : `${p.apply.root} is a tree`}\n`);
    return true;
  }
  // Each guest is started (in turn: systemctl waits for its start job), then all are watched as they settle.
  const started: { g: GuestPlan; what: string; r: { ok: boolean; text: string } }[] = [];
  for (const g of fresh)
    started.push({ g, what: 'enable and start', r: await systemctl(['enable', '--now', g.units[0]!]) });
  for (const g of restart) {
    const tap = g.units[1];
    const what = `restart (${g.parts.filter((x) => x === 'unit' || x === 'profile').join(', ')} changed)`;
    started.push({ g, what, r: await systemctl(['restart', ...(tap ? [tap] : []), g.units[0]!]) });
  }
  const outcomes = await Promise.all(started.map(({ g, r }) => settled(g.units[0]!, r)));
  for (const [i, { g, what }] of started.entries())
    io.out(`  ${outcomes[i]!.ok ? 'done' : 'FAIL'}  ${what} ${g.name}: ${outcomes[i]!.detail}\n`);
  return outcomes.every((o) => o.ok);
}

function removedNote(p: LifecyclePlan): string {
  const removed = p.guests.filter((g) => g.state === 'removed');
  if (removed.length === 0) return '';
  const old = p.record.current ? readText(join(p.record.current.dir, 'answers.json')) : undefined;
  const disks = new Map<string, string[]>();
  try {
    for (const g of (JSON.parse(old ?? '{}') as { guests?: { name: string; disks?: { path: string }[] }[] }).guests ??
      [])
      disks.set(
        g.name,
        (g.disks ?? []).map((d) => d.path),
      );
  } catch {
    /* an unreadable record only loses the list of disks in this message */
  }
  return removed
    .map((g) => {
      const d = disks.get(g.name) ?? [];
      return (
        `Guest ${g.name} was removed: its units are stopped and disabled and its files are gone (backed up). Kept: user ${N.userName(g.name)}, ` +
        `state /var/lib/qemu-harden/${g.name}, logs /var/log/qemu-harden/${g.name}${d.length ? `, disks ${d.join(' ')}` : ''}. To remove them too:\n` +
        `  userdel ${N.userName(g.name)}; groupdel ${N.userName(g.name)}; rm -r /var/lib/qemu-harden/${g.name} /var/log/qemu-harden/${g.name}${d.length ? ` ${d.join(' ')}` : ''}\n`
      );
    })
    .join('');
}

/** The whole of `apply` and `rollback` once the bundle is known. */
export async function runInstall(
  action: Journal['action'],
  bundleDir: string,
  rootArg: string,
  o: InstallOptions,
  io: Io,
): Promise<Outcome> {
  let p: LifecyclePlan;
  try {
    p = planInstall(action, bundleDir, rootArg, o.dryRun);
  } catch (e) {
    if (e instanceof ApplyRefused) {
      io.err(`qemu-harden: ${action} refused: ${e.message}\n`);
      return 'findings';
    }
    throw e;
  }
  if (p.apply.root === '/' && !io.isRoot && !o.dryRun)
    throw new InputError(`${action} to / must run as root (or use --root PATH, or --dry-run)`);
  io.out(describeInstall(p));
  if (o.dryRun) {
    io.out('Dry run: nothing was changed.\n');
    return 'ok';
  }
  // The secrets the operator provides are checked, never changed, on every run: keys often come after the users.
  const secrets = () =>
    checkSecrets(p.apply.root, JSON.parse(readFileSync(join(bundleDir, 'answers.json'), 'utf8')) as Answers);
  const report = (s: StepResult) =>
    io.out(`  ${s.status === 'done' ? 'done' : s.status === 'skipped' ? 'skip' : 'FAIL'}  ${s.step}: ${s.detail}\n`);
  if (p.idle) {
    const s = secrets();
    report(s);
    return (await startGuests(p, o.start, io)) && s.status !== 'failed' ? 'ok' : 'findings';
  }
  if (!o.yes) {
    if (!io.isTTY || !io.confirm) {
      io.err(`qemu-harden: ${action} changes files; without a terminal pass --yes to confirm. Nothing was changed.\n`);
      return 'usage';
    }
    if (
      !(await io.confirm(
        `${action === 'apply' ? 'Apply' : 'Roll back with'} ${p.apply.changes.length + p.removals.length === 1 ? 'this change' : `these ${p.apply.changes.length + p.removals.length} changes`} to ${p.apply.root}?`,
      ))
    ) {
      io.err('Nothing was changed.\n');
      return 'cancelled';
    }
  }
  const root = p.apply.root;
  const note = removedNote(p);
  begin(p.record, p.bundle, action);
  const steps = await retire(p);
  const backupDir = backupDirFor(root);
  const backups = install(p.apply, backupDir);
  removeFiles(p, backupDir);
  io.out(
    `Installed ${plural(p.apply.changes.length, 'file')}, removed ${p.removals.length}.` +
      `${backups.length + p.removals.length ? ` Replaced and removed files were backed up under ${backupDir}.` : ''}\n`,
  );
  steps.push(...(await activate(p.apply)));
  for (const s of steps) report(s);
  // A failed step leaves the journal: the next apply or rollback reports the install as unfinished and runs
  // every step again, where a completed record would find nothing to do.
  if (steps.some((s) => s.status === 'failed')) {
    io.err(
      `qemu-harden: a step failed, so this ${action} is not recorded as complete; fix the cause, then run it again (or rollback). No guest was started or restarted.\n`,
    );
    return 'findings';
  }
  commit(p.record);
  io.out(note);
  // The operator's keys are checked once the install is complete and recorded: a key with the wrong mode is a
  // finding to fix by hand, not an unfinished install.
  const checked = secrets();
  report(checked);
  return (await startGuests(p, o.start, io)) && checked.status !== 'failed' ? 'ok' : 'findings';
}
