// The one plan of an install, from the admitted bundle, the record and the files on the target as they are: each
// file of the bundle new, changed (with its diff) or unchanged; each recorded file the bundle no longer has
// removed (or left alone when it is not a regular file, or not a path qemu-harden installs); each guest new,
// changed — which of unit, profile, udev, users —, removed or unchanged. Nothing here changes anything.
import { createTwoFilesPatch } from 'diff';
import { CONFINEMENT } from '../confine/index.js';
import { visible } from '../escape.js';
import * as N from '../names.js';
import { hostFiles, type Bundle } from './bundle.js';
import { BACKUPS, guestPart, installable } from './paths.js';
import type { InstallRecord, Journal } from './record.js';
import { OutsideTree, type Tree } from './tree.js';
import { plural } from '../words.js';

/** Installed files are root's, mode 0644: what status checks as drift. */
export const FILE_MODE = 0o644;

type Part = 'unit' | 'profile' | 'udev' | 'users';

export interface GuestPlan {
  name: string;
  state: 'new' | 'changed' | 'removed' | 'unchanged';
  /** What of the guest changes (new and changed guests). */
  parts: Part[];
  /** Its systemd units, the guest's own first (then its tap unit, when it has one). */
  units: string[];
  /**
   * Its helper units (src/helpers/: its TPM's service and socket): started by QEMU's unit (Requires=), restarted
   * and stopped with it (PartOf=), stopped and disabled with a removed guest.
   */
  helpers: string[];
  /** Helper units the guest no longer has (its TPM turned off): stopped before their files go, their state kept. */
  droppedHelpers: string[];
}

export interface Change {
  /** Path on the host, e.g. /etc/sysusers.d/qemu-harden.conf. */
  hostPath: string;
  kind: 'new' | 'changed';
  content: Buffer;
  diff?: string;
}

export interface Plan {
  action: Journal['action'];
  root: string;
  bundle: Bundle;
  changes: Change[];
  unchanged: string[];
  /** Recorded files the bundle no longer has, to back up and remove. */
  removals: string[];
  /**
   * Every file the record's bundles installed that this bundle does not have, with the text it was installed with
   * (the record's copy): also those an interrupted install already removed, whose policy may still be loaded.
   */
  gone: Map<string, string>;
  /** Recorded files no longer in the bundle that are left alone, with why. */
  leftAlone: { hostPath: string; why: string }[];
  guests: GuestPlan[];
  /** What an interrupted install left, when one did. */
  recovered?: string;
  /** Whether there is anything to do at all: files, or the record itself. */
  idle: boolean;
}

/** Refused before anything changes; the message names the path. */
export class PlanRefused extends Error {}

const SHARED: Record<string, Part> = {
  '/etc/sysusers.d/qemu-harden.conf': 'users',
  '/etc/tmpfiles.d/qemu-harden.conf': 'users',
  '/etc/udev/rules.d/65-qemu-harden.rules': 'udev',
};

/** The lines of a shared file (users, directories, udev) that name the guest's user as a field. */
function guestLines(text: string | undefined, g: string): string {
  if (text === undefined) return '';
  const user = new RegExp(`(^|[\\s"=,])${N.userName(g).replace(/[.-]/g, '\\$&')}($|[\\s",])`);
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#') && user.test(l))
    .join('\n');
}

/** A file on the target: its content and mode, undefined when absent; refused when it is not a regular file. */
function onTarget(tree: Tree, hostPath: string): { content: Buffer; mode: number } | undefined {
  try {
    return tree.read(hostPath);
  } catch (e) {
    if (e instanceof OutsideTree) throw new PlanRefused(refusalOf(hostPath, e, tree.root));
    throw e;
  }
}

/** What an OutsideTree says about `hostPath`, in the words of a refusal. */
export function refusalOf(hostPath: string, e: OutsideTree, root: string): string {
  return e.leaves
    ? `${hostPath}: it ${visible(e.why)}: the target leaves ${visible(root)} through a symlink`
    : `${hostPath}: on the target, ${visible(e.message)}`;
}

export function planInstall(
  action: Journal['action'],
  bundle: Bundle,
  tree: Tree,
  record: InstallRecord,
  recovered: string | undefined,
): Plan {
  const wanted = hostFiles(bundle);
  const changes: Change[] = [];
  const unchanged: string[] = [];
  const host = new Map<string, string | undefined>();
  for (const [hostPath, content] of wanted) {
    const current = onTarget(tree, hostPath);
    host.set(hostPath, current?.content.toString('utf8'));
    if (current === undefined) changes.push({ hostPath, kind: 'new', content });
    else if (!current.content.equals(content) || current.mode !== FILE_MODE)
      changes.push({
        hostPath,
        kind: 'changed',
        content,
        diff: createTwoFilesPatch(
          `${hostPath} (installed)`,
          `${hostPath} (bundle)`,
          current.content.toString('utf8'),
          content.toString('utf8'),
        ),
      });
    else unchanged.push(hostPath);
  }

  // What qemu-harden installed: the record's current bundle, and after an interruption also the one it was installing.
  const olders = [record.current, record.journal ? record.next : undefined].filter((b): b is Bundle => !!b);
  const installed = new Map(olders.flatMap((b) => [...hostFiles(b)]));
  const ours = installable(olders.flatMap((b) => b.guests.map((g) => g.name)));
  const removals: string[] = [];
  const gone = new Map<string, string>();
  const leftAlone: Plan['leftAlone'] = [];
  for (const hostPath of [...installed.keys()].sort()) {
    if (wanted.has(hostPath)) continue;
    if (!ours.has(hostPath)) {
      leftAlone.push({ hostPath, why: 'not a path qemu-harden installs' });
      continue;
    }
    gone.set(hostPath, installed.get(hostPath)!.toString('utf8'));
    let st;
    try {
      st = tree.lstat(hostPath);
    } catch (e) {
      if (e instanceof OutsideTree) throw new PlanRefused(refusalOf(visible(hostPath), e, tree.root));
      throw e;
    }
    if (!st) continue;
    if (st.isFile()) {
      removals.push(hostPath);
      host.set(hostPath, onTarget(tree, hostPath)?.content.toString('utf8'));
    } else leftAlone.push({ hostPath, why: 'not a regular file on the host' });
  }

  // Replaced and removed files are backed up: a backup directory that leads out of the root is refused now, as
  // well as when each backup is written.
  if (removals.length || changes.some((c) => c.kind === 'changed'))
    try {
      tree.dir(BACKUPS)?.close();
    } catch (e) {
      if (e instanceof OutsideTree) throw new PlanRefused(refusalOf(`/${BACKUPS}`, e, tree.root));
      throw e;
    }

  // A file changes for a guest when the bundle's copy differs from the host's or from the record's.
  const bundleText = (h: string) => wanted.get(h)?.toString('utf8');
  const olds = (h: string) => [host.get(h), ...olders.map((b) => b.files.get(`root${h}`)?.toString('utf8'))];
  const changedFile = (h: string) => olds(h).some((o) => o !== bundleText(h));
  const oldGuests = new Set(olders.flatMap((b) => b.guests.map((g) => g.name)));
  const newGuests = bundle.guests.map((g) => g.name);
  const allPaths = new Set([...wanted.keys(), ...installed.keys()]);
  const shared = CONFINEMENT.flatMap((b) => b.sharedFiles).filter((h) => allPaths.has(h) && changedFile(h));

  const unitsDir = '/etc/systemd/system/';
  const helpersIn = (files: { has(h: string): boolean }, g: string) =>
    N.helperUnitFiles(g).filter((u) => files.has(`${unitsDir}${u}`));
  const guests: GuestPlan[] = [];
  for (const g of newGuests) {
    const parts = new Set<Part>();
    let confined = false;
    for (const h of allPaths) {
      const part = guestPart(h, g);
      if (part === 'profile' && wanted.has(h)) confined = true;
      if (part && changedFile(h)) parts.add(part);
    }
    if (confined && shared.length) parts.add('profile');
    for (const [h, part] of Object.entries(SHARED)) {
      const now = guestLines(bundleText(h), g);
      if (olds(h).some((o) => guestLines(o, g) !== now)) parts.add(part);
    }
    const units = [N.unitName(g), ...(wanted.has(`${unitsDir}${N.tapUnitName(g)}`) ? [N.tapUnitName(g)] : [])];
    const state = !oldGuests.has(g) ? 'new' : parts.size ? 'changed' : 'unchanged';
    const helpers = helpersIn(wanted, g);
    const droppedHelpers = helpersIn(new Set(removals), g);
    guests.push({ name: g, state, parts: [...parts].sort(), units, helpers, droppedHelpers });
  }
  for (const g of [...oldGuests].filter((n) => !newGuests.includes(n)).sort())
    guests.push({
      name: g,
      state: 'removed',
      parts: [],
      units: [N.unitName(g), ...(installed.has(`${unitsDir}${N.tapUnitName(g)}`) ? [N.tapUnitName(g)] : [])],
      helpers: helpersIn(installed, g),
      droppedHelpers: [],
    });

  const idle =
    changes.length === 0 &&
    removals.length === 0 &&
    !record.journal &&
    record.current?.manifestHash === bundle.manifestHash;
  return { action, root: tree.root, bundle, changes, unchanged, removals, gone, leftAlone, guests, recovered, idle };
}

export function describePlan(p: Plan): string {
  const out: string[] = [];
  const root = visible(p.root);
  if (p.recovered) out.push(`Interrupted install: ${p.recovered}.`);
  if (p.changes.length === 0)
    out.push(
      `Nothing to change under ${root}: ${p.unchanged.length === 1 ? 'the one file is' : `all ${plural(p.unchanged.length, 'file')} are`} installed as in the bundle.`,
    );
  else {
    out.push(`Changes under ${root}:`);
    for (const c of p.changes) out.push(`  ${c.kind === 'new' ? 'new     ' : 'changed '} ${c.hostPath}`);
    if (p.unchanged.length) out.push(`  (${plural(p.unchanged.length, 'file')} already up to date)`);
    // The installed side of a diff is whatever the target holds: shown with its control characters escaped.
    for (const c of p.changes) if (c.diff) out.push('', ...c.diff.trimEnd().split('\n').map(visible));
  }
  if (p.removals.length) {
    out.push(`Removed from the bundle (backed up, then deleted):`);
    for (const r of p.removals) out.push(`  removed   ${r}`);
  }
  for (const l of p.leftAlone) out.push(`  ${visible(l.hostPath)}: no longer in the bundle but ${l.why}: left alone`);
  out.push('Guests:');
  for (const g of p.guests)
    out.push(
      `  ${g.state.padEnd(9)} ${g.name}${g.parts.length && g.state === 'changed' ? ` (${g.parts.join(', ')})` : ''}`,
    );
  return out.join('\n') + '\n';
}
