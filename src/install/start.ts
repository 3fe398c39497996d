// `--start`, and `qemu-harden start` alone: every guest of the installed bundle brought to running its installed
// unit and profile, whether or not this run changed a file. What runs is read from systemd itself, never assumed
// from the plan: each unit's ActiveState, UnitFileState, NeedDaemonReload and when its running process was
// started; what is installed is read from the files (their mtime, through the tree). A running guest runs an
// older unit when its unit (or its tap unit) was written after that unit's process started, or systemd has not
// re-read the file yet; an older profile when a file of its profile (its own, its rules, the shared abstraction)
// was written after QEMU started, on a host where that backend is enforced. The kernel moves a running task to a
// replaced AppArmor profile, but what QEMU opened and mapped before was granted by the old one: a guest is
// restarted so that everything it holds was granted by the installed profile.
//
// A stopped guest is started (and enabled), also one an operator stopped on purpose, as `systemctl start` would;
// a running guest that is not enabled is enabled. A guest whose installed unit or profile differs from the
// record is left alone and named: starting it would run something no bundle holds. On a tree nothing runs: only
// whether each guest is enabled there is read (`systemctl --root is-enabled`), and enabling it is the one thing
// done (`systemctl --root enable`, an operation systemd does offline).
import { lstatSync } from 'node:fs';
import { type StepResult } from '../activation.js';
import { CONFINEMENT } from '../confine/index.js';
import { InputError } from '../errors.js';
import { shellWord, visible } from '../escape.js';
import type { Io } from '../io.js';
import * as N from '../names.js';
import { run, systemctl, which } from '../tools.js';
import { listed } from '../words.js';
import { hostFiles, type Bundle } from './bundle.js';
import { readRecord, wayOn } from './record.js';
import { OutsideTree, Tree } from './tree.js';

export type Older = 'unit' | 'profile';

export interface GuestStart {
  name: string;
  /** Its systemd units, the guest's own first (then its tap unit). */
  units: string[];
  /** Whether its QEMU runs; null: not looked at (a tree, or systemd is not running). */
  running: boolean | null;
  /** Whether its unit is enabled (starts at boot); null: not looked at. */
  enabled: boolean | null;
  /** What of the running guest is older than installed; null: not looked at (or it does not run). */
  older: Older[] | null;
  /** Its installed unit and profile files that differ from the installed bundle: it is left alone. */
  drifted: string[];
  /** What bringing it to its installed unit and profile takes. */
  action: 'none' | 'start' | 'restart' | 'enable' | 'blocked';
  /** With --start (or `start`): how it went; otherwise null. */
  result: 'done' | 'failed' | null;
  detail: string | null;
}

export interface StartReport {
  /** Where the guests' state was read: the running systemd, a tree (systemctl --root), or nowhere. */
  looked: 'systemd' | 'tree' | null;
  /** Whether the actions were taken (--start, `start`), or only named. */
  acted: boolean;
  /** Why nothing was looked at or done, when nothing was. */
  skipped: string | null;
  /** Whether systemd was told to re-read unit files it had not read since they were written. */
  reloaded: boolean;
  guests: GuestStart[];
  /** The one command that does what is left, as printed; null when nothing is left. */
  next: string | null;
  ok: boolean;
}

export interface StartOptions {
  /** Take the actions (--start, `start`); otherwise only name them and print the command that takes them. */
  act: boolean;
  /** qemu-harden's `start` command as the operator runs it here as root: what is printed for a live host. */
  again: string;
}

const exists = (path: string) => lstatSync(path, { throwIfNoEntry: false }) !== undefined;

/** What systemd says of one unit. */
interface UnitState {
  active: string;
  fileState: string;
  needsReload: boolean;
  /** How often systemd restarted it since it was started (Restart=); undefined: not asked. */
  restarts: number | undefined;
  /** When its running process started (its current activation began), in microseconds since the epoch. */
  startedUs: number | undefined;
}

/** `systemctl show --timestamp=us+utc` prints times as `Mon 2024-06-03 10:11:12.123456 UTC`. */
export function parseTimestamp(value: string): number | undefined {
  const m = /(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? UTC$/.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac] = m;
  const seconds = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) / 1000;
  return seconds * 1_000_000 + Number((frac ?? '').padEnd(6, '0'));
}

/** The blocks `systemctl show` prints for several units, one per unit, by their Id. */
export function parseShow(text: string): Map<string, UnitState> {
  const out = new Map<string, UnitState>();
  for (const block of text.split(/\n\s*\n/)) {
    const props = new Map<string, string>();
    for (const line of block.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) props.set(line.slice(0, i), line.slice(i + 1));
    }
    const id = props.get('Id');
    if (!id) continue;
    out.set(id, {
      active: props.get('ActiveState') ?? '',
      fileState: props.get('UnitFileState') ?? '',
      needsReload: props.get('NeedDaemonReload') === 'yes',
      restarts: props.has('NRestarts') ? Number(props.get('NRestarts')) : undefined,
      startedUs:
        parseTimestamp(props.get('ExecMainStartTimestamp') ?? '') ??
        parseTimestamp(props.get('InactiveExitTimestamp') ?? ''),
    });
  }
  return out;
}

const running = (u: UnitState | undefined) => u?.active === 'active' || u?.active === 'reloading';
const isEnabled = (fileState: string) => fileState === 'enabled' || fileState === 'enabled-runtime';

interface GuestFiles {
  name: string;
  units: string[];
  /** Its installed helper units (its TPM's service and socket): they start and restart with its QEMU. */
  helpers: string[];
  /** Helper units it may have had and the installed bundle does not give it: stopped once it no longer needs them. */
  dropped: string[];
  unitFiles: Map<string, string>;
  profileFiles: string[];
}

/** Each guest's units and the installed files its running QEMU depends on, from the installed bundle. */
function guestFiles(bundle: Bundle): GuestFiles[] {
  const installed = hostFiles(bundle);
  return bundle.guests.map(({ name }) => {
    const units = [N.unitName(name), N.tapUnitName(name)].filter((u) => installed.has(`/etc/systemd/system/${u}`));
    const helpers = N.helperUnitFiles(name).filter((u) => installed.has(`/etc/systemd/system/${u}`));
    const dropped = N.helperUnitFiles(name).filter((u) => !helpers.includes(u));
    const profileFiles = CONFINEMENT.filter((b) => b.probe().enforced).flatMap((b) => {
      const own = b.guestFiles(name).filter((h) => installed.has(h));
      return own.length ? [...own, ...b.sharedFiles.filter((h) => installed.has(h))] : [];
    });
    return {
      name,
      units,
      helpers,
      dropped,
      unitFiles: new Map([...units, ...helpers].map((u) => [u, `/etc/systemd/system/${u}`])),
      profileFiles,
    };
  });
}

/** A guest whose units were not looked at (no systemd to ask, or a tree): nothing known, nothing done. */
function notLookedAt(f: GuestFiles): GuestStart {
  return {
    name: f.name,
    units: f.units,
    running: null,
    enabled: null,
    older: null,
    drifted: [],
    action: 'none',
    result: null,
    detail: null,
  };
}

/** The installed files of a guest that differ from the bundle (or are gone, or are not regular files). */
function drifted(tree: Tree, bundle: Bundle, paths: string[]): string[] {
  const installed = hostFiles(bundle);
  return paths.filter((h) => {
    try {
      const now = tree.read(h);
      return !now || !now.content.equals(installed.get(h)!);
    } catch (e) {
      if (e instanceof OutsideTree) return true;
      throw e;
    }
  });
}

/** When a file under the root was last written, in microseconds since the epoch; undefined when it is not there. */
function writtenUs(tree: Tree, hostPath: string): number | undefined {
  try {
    const st = tree.lstat(hostPath);
    return st ? Math.floor(st.mtimeMs * 1000) : undefined;
  } catch (e) {
    if (e instanceof OutsideTree) return undefined;
    throw e;
  }
}

function describe(g: GuestStart): string {
  if (g.action === 'blocked')
    return `its ${listed(g.drifted)} ${g.drifted.length === 1 ? 'differs' : 'differ'} from the installed bundle (status shows the drift): apply the bundle again, or rollback`;
  if (!g.running) return g.enabled ? 'stopped' : 'stopped, not enabled';
  const parts: string[] = [];
  if (g.older?.length) parts.push(`runs an older ${g.older.join(' and ')} (written after it started)`);
  if (!g.enabled) parts.push('not enabled');
  return parts.join('; ');
}

/**
 * Watch the started units settle for two seconds, all of them with one `systemctl show` every quarter second; a
 * unit that is not active then, or that systemd restarted meanwhile, is reported with its journal.
 */
async function settled(
  started: { unit: string; r: { ok: boolean; text: string } }[],
): Promise<{ ok: boolean; detail: string }[]> {
  const last = new Map<string, UnitState>();
  let watched = started.filter((s) => s.r.ok).map((s) => s.unit);
  for (let i = 0; i < 8 && watched.length; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const shown = await systemctl(['show', '--property=Id,ActiveState,NRestarts', '--', ...watched]);
    for (const [id, u] of parseShow(shown.stdout)) last.set(id, u);
    watched = watched.filter((unit) => ['active', 'activating'].includes(last.get(unit)?.active ?? ''));
  }
  return Promise.all(
    started.map(async ({ unit, r }) => {
      const u = last.get(unit);
      if (r.ok && u?.active === 'active' && u.restarts === 0) return { ok: true, detail: 'running' };
      const why = !r.ok
        ? r.text.split('\n').at(-1)
        : u?.restarts
          ? `restarted ${u.restarts} time(s) after starting, now ${u.active}`
          : `${u?.active || 'unknown'} after starting`;
      return { ok: false, detail: `${why}; its last journal lines:\n${await lastJournalLines(unit)}` };
    }),
  );
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
    .map((l) => `      ${visible(l)}`)
    .join('\n');
}

const report = (io: Io, s: StepResult) =>
  io.out(`  ${s.status === 'done' ? 'done' : s.status === 'skipped' ? 'skip' : 'FAIL'}  ${s.step}: ${s.detail}\n`);

/** On the running host: read each guest's units from systemd, then act or say what to run. */
async function onHost(tree: Tree, bundle: Bundle, o: StartOptions, io: Io): Promise<StartReport> {
  const files = guestFiles(bundle);
  const base: StartReport = {
    looked: null,
    acted: o.act,
    skipped: null,
    reloaded: false,
    guests: [],
    next: null,
    ok: true,
  };
  const notLooked = (skipped: string): StartReport => ({
    ...base,
    skipped,
    guests: files.map(notLookedAt),
  });
  if (!exists('/run/systemd/system')) {
    const r = notLooked('systemd is not running');
    io.out(
      o.act
        ? '  skip  start guests: systemd is not running\n'
        : 'systemd is not running here: no guest was looked at or started.\n',
    );
    return r;
  }
  const shown = await systemctl([
    'show',
    '--timestamp=us+utc',
    '--property=Id,ActiveState,UnitFileState,NeedDaemonReload,ExecMainStartTimestamp,InactiveExitTimestamp',
    '--',
    ...files.flatMap((f) => [...f.units, ...f.helpers, ...f.dropped]),
  ]);
  if (!shown.ok) {
    const r = { ...notLooked(`systemctl show failed: ${shown.text}`), ok: !o.act };
    io.out(`  ${o.act ? 'FAIL' : 'skip'}  read the guests' units from systemd: ${visible(shown.text)}\n`);
    return r;
  }
  const states = parseShow(shown.stdout);
  /** The running units of each guest that run an older unit file than the one installed. */
  const olderUnits = new Map<string, string[]>();
  const guests: GuestStart[] = files.map((f) => {
    const main = states.get(f.units[0]!);
    const isRunning = running(main);
    const enabled = isEnabled(main?.fileState ?? '');
    // A helper unit written after its process started is an older unit of its guest: restarting the guest
    // restarts its helpers (PartOf=).
    const stale = [...f.units, ...f.helpers].filter((u) => {
      const s = states.get(u);
      if (!s || !running(s)) return false;
      const written = writtenUs(tree, f.unitFiles.get(u)!);
      return s.needsReload || (written !== undefined && (s.startedUs === undefined || s.startedUs < written));
    });
    olderUnits.set(f.name, stale);
    const profileWritten = Math.max(0, ...f.profileFiles.map((h) => writtenUs(tree, h) ?? 0));
    const olderProfile =
      isRunning && f.profileFiles.length > 0 && (main!.startedUs === undefined || main!.startedUs < profileWritten);
    const older: Older[] = [
      ...(isRunning && stale.length ? (['unit'] as const) : []),
      ...(olderProfile ? (['profile'] as const) : []),
    ];
    const drift = drifted(tree, bundle, [...f.unitFiles.values(), ...f.profileFiles]);
    const g: GuestStart = {
      name: f.name,
      units: f.units,
      running: isRunning,
      enabled,
      older: isRunning ? older : null,
      drifted: drift,
      action: drift.length ? 'blocked' : !isRunning ? 'start' : older.length ? 'restart' : !enabled ? 'enable' : 'none',
      result: null,
      detail: null,
    };
    g.detail = g.action === 'none' ? null : describe(g);
    return g;
  });
  const r: StartReport = { ...base, looked: 'systemd', guests };
  const todo = guests.filter((g) => g.action !== 'none');

  if (!o.act) {
    const doable = todo.filter((g) => g.action !== 'blocked');
    if (todo.length === 0) io.out('Every guest runs its installed unit and profile, and is enabled.\n');
    else {
      io.out(
        'Guests not running their installed unit and profile, or not enabled (nothing was started or restarted):\n',
      );
      const w = Math.max(...todo.map((g) => g.name.length));
      for (const g of todo) io.out(`  ${g.name.padEnd(w)}  ${g.detail}\n`);
    }
    if (doable.length) {
      r.next = `${o.again} start`;
      io.out(
        `To start, restart and enable them (a guest stopped on purpose is started too, as systemctl start does):\n  ${r.next}\n`,
      );
    }
    return r;
  }

  // Units written since systemd read them are read again first, so that what starts is what is installed.
  if (
    files.some((f) => [...f.units, ...f.helpers].some((u) => states.get(u)?.needsReload)) &&
    todo.some((g) => g.action !== 'blocked')
  ) {
    const reload = await systemctl(['daemon-reload']);
    report(io, {
      step: 'reload systemd (unit files changed since it read them)',
      status: reload.ok ? 'done' : 'failed',
      detail: reload.ok ? 'ok' : reload.text,
    });
    r.reloaded = reload.ok;
    if (!reload.ok) return { ...r, ok: false };
  }

  // Each guest is started in turn (systemctl waits for its start job), then all are watched as they settle.
  const started: { g: GuestStart; what: string; r: { ok: boolean; text: string } }[] = [];
  for (const g of todo) {
    const [unit, tap] = g.units as [string, string | undefined];
    const tapOlder = tap !== undefined && olderUnits.get(g.name)!.includes(tap);
    if (g.action === 'blocked') {
      g.result = 'failed';
      io.out(`  FAIL  start ${g.name}: left alone: ${g.detail}\n`);
      continue;
    }
    if (g.action === 'enable') {
      const e = await systemctl(['enable', unit]);
      g.result = e.ok ? 'done' : 'failed';
      report(io, {
        step: `enable ${g.name}`,
        status: e.ok ? 'done' : 'failed',
        detail: e.ok ? 'it already runs its installed unit and profile' : e.text,
      });
      continue;
    }
    if (!g.enabled) {
      const e = await systemctl(['enable', unit]);
      if (!e.ok) {
        g.result = 'failed';
        report(io, { step: `enable ${g.name}`, status: 'failed', detail: e.text });
        continue;
      }
    }
    if (g.action === 'start') {
      // A tap left active with an older unit while its guest was stopped is restarted before the guest starts.
      const t = tapOlder ? await systemctl(['restart', tap]) : { ok: true, text: '' };
      const what = g.enabled ? 'start' : 'enable and start';
      started.push({ g, what, r: t.ok ? await systemctl(['start', unit]) : t });
    } else {
      const what = `restart (${g.older!.join(', ')} changed)`;
      started.push({ g, what, r: await systemctl(['restart', ...(tapOlder ? [tap] : []), unit]) });
    }
  }
  const outcomes = await settled(started.map(({ g, r }) => ({ unit: g.units[0]!, r })));
  for (const [i, { g, what }] of started.entries()) {
    g.result = outcomes[i]!.ok ? 'done' : 'failed';
    io.out(`  ${outcomes[i]!.ok ? 'done' : 'FAIL'}  ${what} ${g.name}: ${outcomes[i]!.detail}\n`);
  }
  // Helper units a guest no longer has keep running while its QEMU, on its old unit, requires them; once it runs
  // its installed unit they are stopped (the service stops itself then, StopWhenUnneeded=, its socket does not).
  const onInstalled = new Set(guests.filter((g) => g.action === 'none' || g.result === 'done').map((g) => g.name));
  const leftover = files.filter((f) => onInstalled.has(f.name)).flatMap((f) => f.dropped);
  if (leftover.length) {
    const now = await systemctl(['show', '--property=Id,ActiveState', '--', ...leftover]);
    const live = [...parseShow(now.stdout)].filter(([, u]) => u.active !== 'inactive').map(([id]) => id);
    if (live.length) {
      const stop = await systemctl(['stop', '--', ...live]);
      report(io, {
        step: 'stop the helper units guests no longer have',
        status: stop.ok ? 'done' : 'failed',
        detail: stop.ok ? live.join(' ') : stop.text,
      });
      if (!stop.ok) r.ok = false;
    }
  }
  const already = guests.filter((g) => g.action === 'none').map((g) => g.name);
  if (already.length) io.out(`Already running their installed unit and profile, and enabled: ${already.join(', ')}\n`);
  r.ok = r.ok && guests.every((g) => g.result !== 'failed');
  return r;
}

/** In a tree: nothing runs there; each guest is enabled, or the command that enables it is printed. */
async function inTree(tree: Tree, bundle: Bundle, o: StartOptions, io: Io): Promise<StartReport> {
  const files = guestFiles(bundle);
  const root = `--root=${tree.root}`;
  const mains = files.map((f) => f.units[0]!);
  const base: StartReport = {
    looked: 'tree',
    acted: o.act,
    skipped: null,
    reloaded: false,
    guests: [],
    next: null,
    ok: true,
  };
  const asked = mains.length
    ? await systemctl([root, 'is-enabled', '--', ...mains])
    : { ok: true, text: '', stdout: '' };
  const states = asked.stdout.trim().split('\n');
  // is-enabled answers one line per unit, and exits non-zero when any is not enabled; no line at all is a failure.
  if (mains.length && states.length !== mains.length) {
    io.out(
      `  ${o.act ? 'FAIL' : 'skip'}  read which guests are enabled in ${visible(tree.root)}: ${visible(asked.text)}\n`,
    );
    return {
      ...base,
      looked: null,
      skipped: asked.text,
      ok: !o.act,
      guests: files.map(notLookedAt),
    };
  }
  const guests: GuestStart[] = files.map((f, i) => {
    const enabled = isEnabled(states[i]!.trim());
    return {
      name: f.name,
      units: f.units,
      running: null,
      enabled,
      older: null,
      drifted: [],
      action: enabled ? 'none' : 'enable',
      result: null,
      detail: enabled ? null : 'not enabled',
    };
  });
  const todo = guests.filter((g) => g.action === 'enable');
  const r: StartReport = { ...base, guests };
  const where = visible(tree.root);
  const names = (gs: GuestStart[]) => gs.map((g) => g.name).join(', ');
  if (todo.length === 0) {
    io.out(
      `Every guest is enabled in ${where}, so each starts when a system boots from it (nothing runs in a tree).\n`,
    );
    return r;
  }
  const command = ['systemctl', `--root=${tree.root}`, 'enable', ...todo.map((g) => g.units[0]!)];
  if (!o.act) {
    r.next = command.map(shellWord).join(' ');
    io.out(
      `Not enabled in ${where}: ${names(todo)}. Nothing runs in a tree; an enabled guest starts when a system boots from it. To enable them:\n  ${visible(r.next)}\n`,
    );
    return r;
  }
  const e = await systemctl(command.slice(1));
  for (const g of todo) g.result = e.ok ? 'done' : 'failed';
  report(io, {
    step: `enable ${names(todo)} in ${where}`,
    status: e.ok ? 'done' : 'failed',
    detail: e.ok ? 'they start when a system boots from the tree (nothing runs in a tree)' : visible(e.text),
  });
  r.ok = e.ok;
  return r;
}

/** Bring every guest of `bundle`, installed in `tree`, to running its installed unit and profile, or say how. */
export async function startInstalled(tree: Tree, bundle: Bundle, o: StartOptions, io: Io): Promise<StartReport> {
  return tree.root === '/' ? onHost(tree, bundle, o, io) : inTree(tree, bundle, o, io);
}

/**
 * `qemu-harden start`: the same for the bundle the record holds as installed. An install that stopped midway is
 * completed first (apply, or rollback): its files are a mix of two bundles.
 */
export async function start(rootArg: string, o: StartOptions, io: Io): Promise<StartReport | 'interrupted'> {
  const tree = Tree.open(rootArg);
  try {
    if (tree.root === '/' && !io.isRoot && o.act)
      throw new InputError('start on / must run as root (or use --root PATH, or --dry-run)');
    let record;
    try {
      record = readRecord(tree);
    } catch (e) {
      if (e instanceof OutsideTree)
        throw new InputError(`the install record under ${visible(tree.root)} cannot be read: ${visible(e.message)}`);
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EACCES')
        throw new InputError(
          `cannot read the install record under ${visible(tree.root)}: it is root’s alone: run start as root`,
        );
      throw e;
    }
    const j = record.journal;
    if (j && record.current?.manifestHash !== j.to) {
      io.err(
        `qemu-harden: the last ${j.action} (started ${visible(j.started)}) stopped midway, so the files under ${visible(tree.root)} are a mix of two bundles; nothing was started. Run ${wayOn(j.action)}, then start.\n`,
      );
      return 'interrupted';
    }
    if (!record.current)
      throw new InputError(
        `nothing is installed under ${visible(tree.root)}: ${record.dir} holds no current bundle (run apply first)`,
      );
    return await startInstalled(tree, record.current, o, io);
  } finally {
    tree.close();
  }
}
