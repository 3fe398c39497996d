// `qemu-harden apply`: install a verified bundle's root/ onto a host (or a tree), back up what it replaces,
// then run the activation steps that apply to that target.
import {
  chmodSync,
  chownSync,
  constants,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { runStep, type StepResult } from './activation.js';
import { checkManifest, walk } from './bundle.js';
import { CONFINEMENT } from './confine/index.js';
import { InputError } from './errors.js';
import type { Answers } from './model.js';
import * as N from './names.js';
import { readPasswd, uidOf } from './passwd.js';
import { tlsDirs } from './rules.js';
import { plural } from './words.js';

interface Change {
  /** Absolute path on the target (under root). */
  target: string;
  /** Path as it will be on the host, e.g. /etc/sysusers.d/qemu-harden.conf. */
  hostPath: string;
  kind: 'new' | 'changed';
  mode: number;
  content: Buffer;
  diff?: string;
}

export interface ApplyPlan {
  root: string;
  changes: Change[];
  unchanged: string[];
}

export class ApplyRefused extends InputError {}

/** Is `target` still inside `root` once every symlink on the way is followed? */
export function staysInside(root: string, target: string): boolean {
  let probe = target;
  while (!existsSync(probe)) {
    const up = dirname(probe);
    if (up === probe) break;
    probe = up;
  }
  const real = realpathSync(probe);
  return real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
}

export function planApply(bundle: string, rootArg: string): ApplyPlan {
  const problems = checkManifest(bundle);
  if (problems.length > 0)
    throw new ApplyRefused(
      `the bundle does not match its manifest; nothing was changed:\n${problems.map((p) => `  ${p.path}: ${p.problem}`).join('\n')}`,
    );
  if (!existsSync(rootArg)) throw new InputError(`--root: ${rootArg} does not exist`);
  const root = realpathSync(resolve(rootArg));
  const plan: ApplyPlan = { root, changes: [], unchanged: [] };
  const src = join(bundle, 'root');
  for (const rel of walk(src)) {
    const hostPath = `/${rel}`;
    const target = join(root, rel);
    if (!staysInside(root, target))
      throw new ApplyRefused(`${hostPath}: the target leaves ${root} through a symlink; nothing was changed`);
    const content = readFileSync(join(src, rel));
    let current: Buffer | undefined;
    try {
      const st = lstatSync(target);
      if (st.isSymbolicLink()) throw new ApplyRefused(`${hostPath}: is a symlink on the target; nothing was changed`);
      if (!st.isFile())
        throw new ApplyRefused(`${hostPath}: exists on the target and is not a regular file; nothing was changed`);
      current = readFileSync(target);
    } catch (e) {
      if (e instanceof InputError) throw e;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const mode = 0o644;
    if (current === undefined) plan.changes.push({ target, hostPath, kind: 'new', mode, content });
    else if (!current.equals(content) || (lstatSync(target).mode & 0o7777) !== mode) {
      plan.changes.push({
        target,
        hostPath,
        kind: 'changed',
        mode,
        content,
        diff: createTwoFilesPatch(
          `${hostPath} (installed)`,
          `${hostPath} (bundle)`,
          current.toString('utf8'),
          content.toString('utf8'),
        ),
      });
    } else plan.unchanged.push(hostPath);
  }
  return plan;
}

export function describePlan(p: ApplyPlan): string {
  if (p.changes.length === 0)
    return `Nothing to change under ${p.root}: ${p.unchanged.length === 1 ? 'the one file is' : `all ${plural(p.unchanged.length, 'file')} are`} installed as in the bundle.\n`;
  const out: string[] = [`Changes under ${p.root}:`];
  for (const c of p.changes) out.push(`  ${c.kind === 'new' ? 'new     ' : 'changed '} ${c.hostPath}`);
  if (p.unchanged.length) out.push(`  (${plural(p.unchanged.length, 'file')} already up to date)`);
  for (const c of p.changes) if (c.diff) out.push('', c.diff.trimEnd());
  return out.join('\n') + '\n';
}

/** Install the changed files. Every replaced file is copied to backupDir first (an earlier backup of the same
 * path in that directory is kept). Returns the backups made. */
export function install(p: ApplyPlan, backupDir: string): string[] {
  const backups: string[] = [];
  for (const c of p.changes) {
    if (c.kind === 'changed') {
      const b = join(backupDir, relative(p.root, c.target));
      mkdirSync(dirname(b), { recursive: true, mode: 0o700 });
      try {
        copyFileSync(c.target, b, constants.COPYFILE_EXCL);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      backups.push(b);
    }
  }
  for (const c of p.changes) {
    mkdirSync(dirname(c.target), { recursive: true, mode: 0o755 });
    const tmp = `${c.target}.qemu-harden-new`;
    writeFileSync(tmp, c.content, { mode: c.mode });
    chmodSync(tmp, c.mode);
    chownSync(tmp, 0, 0);
    renameSync(tmp, c.target);
  }
  return backups;
}

/** The activation steps for this target. On a tree (root other than /) only the offline ones run. */
export async function activate(p: ApplyPlan): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const onHost = p.root === '/';
  const rootArgs = onHost ? [] : [`--root=${p.root}`];
  const installed = [...p.changes.map((c) => c.hostPath), ...p.unchanged];

  results.push(
    await runStep(
      'create users and groups (systemd-sysusers)',
      'systemd-sysusers',
      [...rootArgs, join(p.root, 'etc/sysusers.d/qemu-harden.conf')],
      'systemd',
    ),
  );
  results.push(
    await runStep(
      'create directories and set ownership (systemd-tmpfiles)',
      'systemd-tmpfiles',
      [...rootArgs, '--create', join(p.root, 'etc/tmpfiles.d/qemu-harden.conf')],
      'systemd',
    ),
  );

  if (!onHost) {
    for (const s of [
      'reload udev rules and re-trigger devices',
      ...CONFINEMENT.map((b) => b.activationStep),
      'reload systemd',
    ])
      results.push({ step: s, status: 'skipped', detail: `needs the running system; ${p.root} is a tree` });
    return results;
  }

  if (!existsSync('/run/udev/control'))
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
        installed
          .filter((h) => b.loads(h))
          .sort()
          .map((h) => join(p.root, h)),
      ),
    );

  if (!existsSync('/run/systemd/system'))
    results.push({ step: 'reload systemd', status: 'skipped', detail: 'systemd is not running' });
  else results.push(await runStep('reload systemd', 'systemctl', ['daemon-reload'], 'systemd'));
  return results;
}

/**
 * The secrets the operator provides, checked but never changed (qemu-harden does not chown files it did not
 * create): each TLS private key must belong to the guest's user with no group or world access, and a SPICE
 * password file to root, mode 0600 or stricter. A missing file is reported but is no failure: keys usually come
 * after the guest's user exists, and `apply` again (with nothing to install) repeats this check.
 */
export function checkSecrets(root: string, answers: Answers): StepResult {
  const problems: string[] = [];
  const missing: string[] = [];
  const check = (path: string, owner: string, uid: number | undefined) => {
    const target = join(root, path);
    if (!existsSync(target)) return missing.push(path);
    const st = lstatSync(target);
    if (!st.isFile()) return problems.push(`${path} is not a regular file`);
    if (uid !== undefined && st.uid !== uid) problems.push(`${path} belongs to uid ${st.uid}, not ${owner}`);
    if ((st.mode & 0o077) !== 0)
      problems.push(`${path} has mode ${(st.mode & 0o777).toString(8)}; group and others must have no access`);
    return undefined;
  };
  const users = readPasswd(root);
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
  const step = 'check TLS keys and passwords';
  if (problems.length > 0) return { step, status: 'failed', detail: problems.join('; ') };
  if (missing.length > 0)
    return {
      step,
      status: 'skipped',
      detail: `not there yet (the guest cannot start without them): ${missing.join(', ')}`,
    };
  return { step, status: 'done', detail: 'owners and modes as required' };
}
