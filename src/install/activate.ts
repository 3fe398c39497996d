// What an install runs besides writing files: retiring removed guests before their files go, the activation
// steps after (users, directories, udev, confinement, systemd), the operator's secrets checked, and with --start
// the guests started or restarted. On a tree (--root other than /) only the offline steps run, and each program
// gets the tree through its own --root handling: systemd-sysusers and systemd-tmpfiles read the bundle's
// configuration on their standard input, never a path inside the tree, which they would follow as a symlink.
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { runStep, type StepResult } from '../activation.js';
import { CONFINEMENT } from '../confine/index.js';
import { visible } from '../escape.js';
import type { Io } from '../io.js';
import type { Answers } from '../model.js';
import * as N from '../names.js';
import { parsePasswd, uidOf } from '../passwd.js';
import { tlsDirs } from '../rules.js';
import { run, which } from '../tools.js';
import { hostFiles } from './bundle.js';
import { needsRestart, type GuestPlan, type Plan } from './plan.js';
import type { InstallRecord } from './record.js';
import { OutsideTree, type Tree } from './tree.js';

const onHost = (p: Plan) => p.root === '/';
const systemdRuns = (p: Plan) => onHost(p) && exists('/run/systemd/system');
function exists(path: string): boolean {
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

/**
 * Stop and disable the removed guests' units, their helper units with them, and unload their profiles, before
 * their files go. Their state stays (removedNote names it). A helper a staying guest no longer has is not stopped
 * here: its guest's QEMU, still on its old unit, requires it until it restarts (startGuests).
 */
export async function retire(p: Plan): Promise<StepResult[]> {
  const removed = p.guests.filter((g) => g.state === 'removed');
  if (removed.length === 0) return [];
  const units = removed.flatMap((g) => [...g.units, ...g.helpers]);
  const results: StepResult[] = [];
  const step = `stop and disable ${removed.map((g) => g.name).join(', ')}`;
  if (systemdRuns(p)) {
    const r = await systemctl(['disable', '--now', ...units]);
    // A guest that ignored the power button was stopped by its timeout, which leaves its unit "failed": a guest
    // that is gone leaves no failed unit behind.
    if (r.ok) await systemctl(['reset-failed', ...units]);
    results.push({ step, status: r.ok ? 'done' : 'failed', detail: r.ok ? units.join(' ') : r.text });
  } else {
    const r = await systemctl([`--root=${p.root}`, 'disable', ...units]);
    results.push({
      step,
      status: r.ok ? 'done' : 'failed',
      detail: r.ok ? `disabled in ${p.root} (a tree: nothing to stop)` : r.text,
    });
  }
  if (onHost(p))
    for (const b of CONFINEMENT) {
      const files = p.removals.filter((h) => b.loads(h));
      if (files.length) results.push(await b.unload(files));
    }
  return results;
}

/** The activation steps for this target. On a tree only the offline ones run. */
export async function activate(p: Plan): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const rootArgs = onHost(p) ? [] : [`--root=${p.root}`];
  const files = hostFiles(p.bundle);
  const config = (h: string) => files.get(h)?.toString('utf8');

  for (const [step, tool, args, file] of [
    ['create users and groups (systemd-sysusers)', 'systemd-sysusers', [], '/etc/sysusers.d/qemu-harden.conf'],
    [
      'create directories and set ownership (systemd-tmpfiles)',
      'systemd-tmpfiles',
      ['--create'],
      '/etc/tmpfiles.d/qemu-harden.conf',
    ],
  ] as const) {
    const text = config(file);
    results.push(
      text === undefined
        ? { step, status: 'skipped', detail: `the bundle has no ${file}` }
        : await runStep(step, tool, [...rootArgs, ...args, '-'], 'systemd', text),
    );
  }

  if (!onHost(p)) {
    for (const s of [
      'reload udev rules and re-trigger devices',
      ...CONFINEMENT.map((b) => b.activationStep),
      'reload systemd',
    ])
      results.push({ step: s, status: 'skipped', detail: `needs the running system; ${visible(p.root)} is a tree` });
    return results;
  }

  if (!exists('/run/udev/control'))
    results.push({
      step: 'reload udev rules and re-trigger devices',
      status: 'skipped',
      detail: 'udev is not running',
    });
  else {
    results.push(await runStep('reload udev rules', 'udevadm', ['control', '--reload'], 'udev'));
    results.push(
      await runStep(
        're-trigger kvm, tun, vhost-net, vfio and usb devices',
        'udevadm',
        ['trigger', '--action=change', '--subsystem-match=misc', '--subsystem-match=vfio', '--subsystem-match=usb'],
        'udev',
      ),
    );
  }

  for (const b of CONFINEMENT)
    results.push(
      await b.activate(
        [...files.keys()]
          .filter((h) => b.loads(h))
          .sort()
          .map((h) => join(p.root, h)),
      ),
    );

  if (!exists('/run/systemd/system'))
    results.push({ step: 'reload systemd', status: 'skipped', detail: 'systemd is not running' });
  else results.push(await runStep('reload systemd', 'systemctl', ['daemon-reload'], 'systemd'));
  return results;
}

/**
 * The secrets the operator provides, checked but never changed (qemu-harden does not chown files it did not
 * create): each TLS private key must belong to the guest's user with no group or world access, and a SPICE
 * password file to root, mode 0600 or stricter. A missing file is reported but is no failure: keys usually come
 * after the guest's user exists, and `apply` again (with nothing to install) repeats this check. Without validated
 * answers (a rollback to a bundle this qemu-harden no longer reads) the step is skipped, and says why.
 */
export function checkSecrets(tree: Tree, answers: Answers | string): StepResult {
  const step = 'check TLS keys and passwords';
  if (typeof answers === 'string') return { step, status: 'skipped', detail: answers };
  const problems: string[] = [];
  const missing: string[] = [];
  const check = (path: string, owner: string, uid: number | undefined) => {
    let st;
    try {
      st = tree.lstat(path);
    } catch (e) {
      if (!(e instanceof OutsideTree)) throw e;
      return problems.push(visible(e.message));
    }
    if (!st) return missing.push(path);
    if (!st.isFile()) return problems.push(`${path} is not a regular file`);
    if (uid !== undefined && st.uid !== uid) problems.push(`${path} belongs to uid ${st.uid}, not ${owner}`);
    if ((st.mode & 0o077) !== 0)
      problems.push(`${path} has mode ${(st.mode & 0o777).toString(8)}; group and others must have no access`);
    return undefined;
  };
  const users = parsePasswd(tree.read('/etc/passwd')?.content.toString('utf8') ?? '');
  for (const g of answers.guests) {
    const user = N.userName(g.name);
    const uid = uidOf(users, user);
    for (const dir of tlsDirs(g)) {
      check(`${dir}/server-key.pem`, user, uid);
      if (g.migration?.enabled && g.migration.tls && g.migration.tlsDir === dir)
        check(`${dir}/client-key.pem`, user, uid);
    }
    if (g.display.mode === 'spice-tls' && g.display.passwordFile) check(g.display.passwordFile, 'root', 0);
  }
  if (problems.length > 0) return { step, status: 'failed', detail: problems.join('; ') };
  if (missing.length > 0)
    return {
      step,
      status: 'skipped',
      detail: `not there yet (the guest cannot start without them): ${missing.join(', ')}`,
    };
  return { step, status: 'done', detail: 'owners and modes as required' };
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
export async function startGuests(p: Plan, start: boolean, io: Io): Promise<boolean> {
  const fresh = p.guests.filter((g) => g.state === 'new');
  const restart = p.guests.filter(needsRestart);
  // Helper units a restarted guest no longer has: its QEMU released them, their socket still listens.
  const dropped = restart.flatMap((g) => g.droppedHelpers);
  if (!start) {
    if (restart.length)
      io.out(
        `Guests running their old unit or profile until restarted: ${restart.map((g) => g.name).join(', ')}\n  systemctl restart ${restart.map((g) => g.units[0]).join(' ')}\n` +
          (dropped.length ? `  then: systemctl stop ${dropped.join(' ')}\n` : ''),
      );
    if (fresh.length)
      io.out(
        `New guests, not started: ${fresh.map((g) => g.name).join(', ')}\n  systemctl enable --now ${fresh.map((g) => g.units[0]).join(' ')}\n`,
      );
    if (restart.length || fresh.length) io.out('(or run apply again with --start)\n');
    return true;
  }
  if (fresh.length + restart.length === 0) return true;
  if (!systemdRuns(p)) {
    io.out(`  skip  start guests: ${onHost(p) ? 'systemd is not running' : `${visible(p.root)} is a tree`}\n`);
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
  let stopped = true;
  if (dropped.length) {
    // A helper service its restarted QEMU released has stopped already (StopWhenUnneeded=) and, its file gone,
    // is no longer loaded: only what still runs is stopped.
    const running: string[] = [];
    for (const u of dropped) if ((await systemctl(['is-active', u])).text !== 'inactive') running.push(u);
    const r = running.length ? await systemctl(['stop', ...running]) : { ok: true, text: '' };
    stopped = r.ok;
    io.out(`  ${r.ok ? 'done' : 'FAIL'}  stop what the guests no longer have: ${r.ok ? dropped.join(' ') : r.text}\n`);
  }
  return outcomes.every((o) => o.ok) && stopped;
}

/** The state a guest's helper units keep, named where a removal keeps it, as its disks are named. */
function helperState(g: string, units: string[]): { text: string[]; dirs: string[] } {
  const kinds = N.HELPER_KINDS.filter(
    (k) => units.includes(N.helperUnitName(g, k)) && N.helperState(k).dirs(g).length > 0,
  );
  return {
    text: kinds.map((k) => `${N.helperState(k).what} ${N.helperState(k).dirs(g).join(' ')}`),
    dirs: kinds.flatMap((k) => N.helperState(k).dirs(g)),
  };
}

/** What is kept of each removed guest, and how to remove it too; and what a guest that drops its TPM keeps. */
export function removedNote(p: Plan, record: InstallRecord): string {
  const removed = p.guests.filter((g) => g.state === 'removed');
  const disks = new Map((record.current?.guests ?? []).map((g) => [g.name, g.disks.map(visible)]));
  const gone = removed.map((g) => {
    const d = disks.get(g.name) ?? [];
    const kept = helperState(g.name, g.helpers).text;
    return (
      `Guest ${g.name} was removed: its units are stopped and disabled and its files are gone (backed up). Kept: user ${N.userName(g.name)}, ` +
      `state /var/lib/qemu-harden/${g.name}${kept.length ? ` with its ${kept.join(', ')}` : ''}, logs /var/log/qemu-harden/${g.name}${d.length ? `, disks ${d.join(' ')}` : ''}. To remove them too:\n` +
      `  userdel ${N.userName(g.name)}; groupdel ${N.userName(g.name)}; rm -r /var/lib/qemu-harden/${g.name} /var/log/qemu-harden/${g.name}${d.length ? ` ${d.join(' ')}` : ''}\n`
    );
  });
  const dropped = p.guests
    .filter((g) => g.droppedHelpers.length)
    .map((g) => {
      const kept = helperState(g.name, g.droppedHelpers);
      return (
        `Guest ${g.name} no longer has ${g.droppedHelpers.filter((u) => u.endsWith('.service')).join(', ')}: its files are gone (backed up), and it stops once the guest restarts on its new unit` +
        (kept.dirs.length
          ? `. Kept: its ${kept.text.join(', ')}. To remove it too:\n  rm -r ${kept.dirs.join(' ')}\n`
          : '.\n')
      );
    });
  return [...gone, ...dropped].join('');
}
