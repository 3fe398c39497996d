// The install record on the target (docs/install.md, "The install record"): under
// /var/lib/qemu-harden/.installed/, a copy of the bundle installed last (`current`), the one before it
// (`previous`), and, only while an install is under way, the bundle it is putting in place (`next`) and
// `journal.json`. apply, rollback, status and the Ansible role share this layout. Every file of it is reached
// through the tree (tree.ts); a record that cannot be read as written (a damaged journal, a recorded bundle that
// fails its own manifest) is a RecordDamaged, with the way out in its message.
import { writeDirAtomic, writeFileAtomic, removeTree } from '../atomic.js';
import { MANIFEST } from '../bundle-layout.js';
import { InputError } from '../errors.js';
import { visible } from '../escape.js';
import { readTreeBundle, type Bundle } from './bundle.js';
import type { Dir, Tree } from './tree.js';

export const RECORD_DIR = 'var/lib/qemu-harden/.installed';

export interface Journal {
  action: 'apply' | 'rollback';
  /** sha256 of current/MANIFEST.sha256 when the install started, or null on a first install. */
  from: string | null;
  /** sha256 of the new bundle's MANIFEST.sha256. */
  to: string;
  started: string;
}

export interface InstallRecord {
  /** The record directory as shown to the operator. */
  dir: string;
  current?: Bundle;
  /** Read as it is: only rollback needs it whole (see `intactPrevious`). */
  previous?: Bundle;
  /** The bundle an interrupted install was putting in place (read only while a journal says one was). */
  next?: Bundle;
  journal?: Journal;
}

/** The record cannot be used as it is: which file, why, and what to do. Exit 2, nothing changed. */
export class RecordDamaged extends InputError {}

const HASH = /^[0-9a-f]{64}$/;

function parseJournal(text: string): Journal | string {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${(e as Error).message.split('\n')[0]}); truncated?`;
  }
  const o = j as Partial<Record<keyof Journal, unknown>> | null;
  if (o === null || typeof o !== 'object') return 'not a JSON object';
  if (o.action !== 'apply' && o.action !== 'rollback') return 'its "action" is neither "apply" nor "rollback"';
  if (o.from !== null && !(typeof o.from === 'string' && HASH.test(o.from)))
    return 'its "from" is not a sha256 or null';
  if (!(typeof o.to === 'string' && HASH.test(o.to))) return 'its "to" is not a sha256';
  if (typeof o.started !== 'string') return 'its "started" is not a time';
  return { action: o.action, from: o.from, to: o.to, started: o.started };
}

const problems = (b: Bundle) =>
  [...b.problems, ...b.guestProblems].map((p) => `${visible(p.path)}: ${visible(p.problem)}`).join('; ');
const damaged = (b: Bundle | undefined) => !!b && b.problems.length + b.guestProblems.length > 0;

/** A recorded bundle in `dir`, or undefined when there is none. */
function slot(dir: Dir, name: string): Bundle | undefined {
  if (!dir.lstat(name)) return undefined;
  const d = dir.child(name);
  try {
    return readTreeBundle(d);
  } finally {
    d.close();
  }
}

export function readRecord(tree: Tree): InstallRecord {
  const shown = visible(tree.shown(RECORD_DIR));
  const rec: InstallRecord = { dir: shown };
  const dir = tree.dir(RECORD_DIR);
  if (!dir) return rec;
  try {
    const text = dir.read('journal.json');
    if (text) {
      const j = parseJournal(text.content.toString('utf8'));
      if (typeof j === 'string')
        throw new RecordDamaged(
          `the install record is damaged: ${shown}/journal.json is ${j}. A journal exists only while an install is under way, so the last one stopped midway. Nothing was changed. To go on: move it aside (mv ${shown}/journal.json ${shown}/journal.json.damaged), then apply the bundle that should be installed: apply installs every file that differs from it and records it.`,
        );
      rec.journal = j;
    }
    rec.current = slot(dir, 'current');
    if (damaged(rec.current))
      throw new RecordDamaged(
        `the install record is damaged: ${shown}/current, the copy of the installed bundle, fails its manifest: ${problems(rec.current!)}. Nothing was changed. To go on: move it aside (mv ${shown}/current ${shown}/current.damaged), then apply the bundle that should be installed; files of the old bundle that it does not have then stay on the host (remove them by hand).`,
      );
    rec.previous = slot(dir, 'previous');
    if (rec.journal) {
      rec.next = slot(dir, 'next');
      if (damaged(rec.next))
        throw new RecordDamaged(
          `the install record is damaged: ${shown}/next, the bundle the interrupted ${rec.journal.action} was putting in place, fails its manifest: ${problems(rec.next!)}. Nothing was changed. To go on: move it and the journal aside (mv ${shown}/next ${shown}/next.damaged; mv ${shown}/journal.json ${shown}/journal.json.damaged), then apply the bundle that should be installed.`,
        );
    }
  } finally {
    dir.close();
  }
  return rec;
}

/** `previous`, when a command is about to rely on it. */
export function intactPrevious(rec: InstallRecord, why: string): Bundle | undefined {
  const p = rec.previous;
  if (p && damaged(p))
    throw new RecordDamaged(
      `${why}: ${rec.dir}/previous, the copy of the bundle installed before, fails its manifest: ${problems(p)}. Nothing was changed.`,
    );
  return p;
}

/**
 * What to run after an install that stopped midway, for "run …": the same command completes it (rollback.ts
 * completes a rollback), the other undoes it.
 */
export function wayOn(action: Journal['action']): string {
  return action === 'apply'
    ? 'apply again to complete it (or rollback to the bundle installed before)'
    : 'rollback again to complete it (or apply the bundle installed before it)';
}

/**
 * Put the record in the shape an install starts from. An interrupted install may have left `next` (the bundle
 * it was installing) and, killed between the two renames of `commit`, `previous` holding what was `current`.
 * Returns what the journal says happened, for the operator, or undefined when no install was interrupted.
 */
export function recover(tree: Tree, rec: InstallRecord, dryRun: boolean): string | undefined {
  const j = rec.journal;
  if (!j) return undefined;
  const short = (h: string | null) => (h ? h.slice(0, 12) : 'nothing');
  const inRecord = (fn: (d: Dir) => void) => {
    if (dryRun) return;
    const d = tree.dir(RECORD_DIR);
    if (!d) return;
    try {
      fn(d);
      d.sync();
    } finally {
      d.close();
    }
  };
  if (rec.current?.manifestHash === j.to) {
    inRecord((d) => d.unlink('journal.json'));
    rec.journal = undefined;
    return `the last ${j.action} (started ${j.started}) had installed bundle ${short(j.to)} completely; only its journal was left behind`;
  }
  if (!rec.current && rec.previous && rec.previous.manifestHash === j.from) {
    rec.current = intactPrevious(rec, 'the install record cannot be recovered');
    inRecord((d) => d.rename('previous', 'current'));
    rec.previous = undefined;
  }
  return `the last ${j.action} (started ${j.started}) stopped midway: the host holds a mix of bundle ${short(j.from)} and bundle ${short(j.to)}; planning against the files as they are`;
}

/** The record directory, made (root's alone, 0700) if it is not there. The caller closes it. */
function recordDir(tree: Tree): Dir {
  const parent = tree.dir(RECORD_DIR.slice(0, RECORD_DIR.lastIndexOf('/')), 0o755)!;
  try {
    return parent.mkdir(RECORD_DIR.slice(RECORD_DIR.lastIndexOf('/') + 1), 0o700);
  } finally {
    parent.close();
  }
}

/** Begin an install: the new bundle written to `next`, then the journal, both on disk before any host file changes. */
export function begin(tree: Tree, rec: InstallRecord, bundle: Bundle, action: Journal['action']): Journal {
  const journal: Journal = {
    action,
    from: rec.current?.manifestHash ?? null,
    to: bundle.manifestHash,
    started: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
  const d = recordDir(tree);
  try {
    removeTree(d, 'next');
    // The signatures go with the copy, so that status can say who signed what is installed and rollback can
    // show them again to an enrolled host.
    const files = [...bundle.files, ...bundle.signatures].map(([path, content]) => ({ path, mode: 0o644, content }));
    writeDirAtomic(d, 'next', [...files, { path: MANIFEST, mode: 0o644, content: bundle.manifest }], 0o700);
    writeFileAtomic(d, 'journal.json', JSON.stringify(journal, null, 2) + '\n', { mode: 0o600 });
  } finally {
    d.close();
  }
  return journal;
}

/** Finish an install: current becomes previous, next becomes current, the journal goes last. */
export function commit(tree: Tree): void {
  const d = recordDir(tree);
  try {
    if (d.lstat('current')) {
      removeTree(d, 'previous');
      d.rename('current', 'previous');
    }
    d.rename('next', 'current');
    d.sync();
    d.unlink('journal.json');
    d.sync();
  } finally {
    d.close();
  }
}
