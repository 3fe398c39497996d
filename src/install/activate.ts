// What an install runs besides writing files: retiring removed guests before their files go, the activation
// steps after (users, directories, udev, confinement, systemd), and the operator's secrets checked. Starting the
// guests is start.ts. On a tree (--root other than /) only the offline steps run, and each program
// gets the tree through its own --root handling: systemd-sysusers and systemd-tmpfiles read the bundle's
// configuration on their standard input, never a path inside the tree, which they would follow as a symlink.
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { runStep, type StepResult } from '../activation.js';
import { CONFINEMENT } from '../confine/index.js';
import { visible } from '../escape.js';
import type { Answers } from '../model.js';
import * as N from '../names.js';
import { parsePasswd, uidOf } from '../passwd.js';
import { tlsDirs } from '../rules.js';
import { systemctl } from '../tools.js';
import { hostFiles } from './bundle.js';
import { UNITS } from './paths.js';
import type { Plan } from './plan.js';
import type { InstallRecord } from './record.js';
import { OutsideTree, type Tree } from './tree.js';

const onHost = (p: Plan) => p.root === '/';
const systemdRuns = (p: Plan) => onHost(p) && exists('/run/systemd/system');
const exists = (path: string) => lstatSync(path, { throwIfNoEntry: false }) !== undefined;

/**
 * Stop and disable the removed guests' units, their helper units with them, and unload their policy where their
 * backend does that before the files go. Their state stays (removedNote names it). A helper a staying guest no
 * longer has is not stopped here: its guest's QEMU, still on its old unit, requires it until it restarts
 * (start.ts stops it then).
 */
export async function retire(p: Plan): Promise<StepResult[]> {
  const removed = p.guests.filter((g) => g.state === 'removed');
  if (removed.length === 0) return [];
  const units = removed.flatMap((g) => [...g.units, ...g.helpers]);
  const results: StepResult[] = [];
  const step = `stop and disable ${removed.map((g) => g.name).join(', ')}`;
  if (systemdRuns(p)) {
    // After an install that stopped midway a removed guest's unit files may be gone already: systemctl refuses to
    // disable a unit without its file, and stops nothing then. Such a unit is only stopped, and one systemd no
    // longer has loaded has nothing to stop (systemctl's exit status 5).
    const withFile = units.filter((u) => exists(join(UNITS, u)));
    const without = units.filter((u) => !withFile.includes(u));
    const disabled = withFile.length
      ? await systemctl(['disable', '--now', ...withFile])
      : { ok: true, code: 0, text: '' };
    const stopped = without.length ? await systemctl(['stop', ...without]) : { ok: true, code: 0, text: '' };
    const ok = disabled.ok && (stopped.ok || stopped.code === 5);
    // A guest that ignored the power button was stopped by its timeout, which leaves its unit "failed": a guest
    // that is gone leaves no failed unit behind.
    if (ok) await systemctl(['reset-failed', ...units]);
    results.push({
      step,
      status: ok ? 'done' : 'failed',
      detail: ok ? units.join(' ') : [disabled.text, stopped.text].filter(Boolean).join('; '),
    });
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
      const files = p.removals.filter((h) => b.loads.test(h));
      if (files.length && b.unload) results.push(await b.unload(files));
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
          .filter((h) => b.loads.test(h))
          .sort()
          .map((h) => join(p.root, h)),
        new Map([...p.gone].filter(([h]) => b.loads.test(h))),
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

/** What is kept of a removed guest: its user, its state and log directories, its disks, its helpers' state. */
export interface RemovedGuest {
  name: string;
  user: string;
  kept: string[];
  /**
   * What of the kept state directory its helpers kept, each named: its TPM's state, the guest's own secrets
   * (names.ts HELPER_STATE).
   */
  helperState: string[];
}

/** The state a guest's helper units kept, named, by the units it had. */
function helperState(g: string, units: string[]): { text: string[]; dirs: string[] } {
  const kinds = N.HELPER_KINDS.filter(
    (k) => units.includes(N.helperUnitName(g, k)) && N.helperState(k).dirs(g).length > 0,
  );
  return {
    text: kinds.map((k) => `${N.helperState(k).what} ${N.helperState(k).dirs(g).join(' ')}`),
    dirs: kinds.flatMap((k) => N.helperState(k).dirs(g)),
  };
}

/** What is kept of each removed guest, as read from the record before the install moves it. */
export function removedGuests(p: Plan, record: InstallRecord): RemovedGuest[] {
  const disks = new Map((record.current?.guests ?? []).map((g) => [g.name, g.disks]));
  return p.guests
    .filter((g) => g.state === 'removed')
    .map((g) => ({
      name: g.name,
      user: N.userName(g.name),
      kept: [`${N.STATE_BASE}/${g.name}`, `${N.LOGS_BASE}/${g.name}`, ...(disks.get(g.name) ?? [])],
      helperState: helperState(g.name, g.helpers).text,
    }));
}

/** What is kept of each removed guest, and how to remove it too. */
export function removedNote(removed: RemovedGuest[]): string {
  return removed
    .map((g) => {
      const [state, logs, ...d] = g.kept.map(visible);
      return (
        `Guest ${g.name} was removed: its units are stopped and disabled and its files are gone (backed up). Kept: user ${g.user}, ` +
        `state ${state}${g.helperState.length ? ` with its ${g.helperState.join(', ')}` : ''}, logs ${logs}${d.length ? `, disks ${d.join(' ')}` : ''}. To remove them too:\n` +
        `  userdel ${g.user}; groupdel ${g.user}; rm -r ${state} ${logs}${d.length ? ` ${d.join(' ')}` : ''}\n`
      );
    })
    .join('');
}

/**
 * What a guest that stays keeps of a helper it no longer has (its TPM turned off): the helper's files go, its units
 * stop once the guest runs its new unit (start), and its state stays, named with the command that removes it.
 */
export function droppedNote(p: Plan): string {
  return p.guests
    .filter((g) => g.droppedHelpers.length)
    .map((g) => {
      const kept = helperState(g.name, g.droppedHelpers);
      return (
        `Guest ${g.name} no longer has ${g.droppedHelpers.filter((u) => u.endsWith('.service')).join(', ')}: its files are gone (backed up), and it stops once the guest restarts on its new unit` +
        (kept.dirs.length
          ? `. Kept: its ${kept.text.join(', ')}. To remove it too:\n  rm -r ${kept.dirs.join(' ')}\n`
          : '.\n')
      );
    })
    .join('');
}
