// The install record on the target host (/var/lib/qemu-harden/.installed/, described in docs/install.md): a
// copy of the bundle installed last (`current`), the one before it (`previous`), and a journal that exists only
// while an install is under way. apply, rollback, status and the Ansible role share this layout.
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { ANSWERS, MANIFEST, manifestLine, sha256 } from './bundle-layout.js';
import { fsyncPath } from './bundle.js';
import { CONFINEMENT } from './confine/index.js';
import * as N from './names.js';

export const RECORD_DIR = 'var/lib/qemu-harden/.installed';

export interface Journal {
  action: 'apply' | 'rollback';
  /** sha256 of current/MANIFEST.sha256 when the install started, or null on a first install. */
  from: string | null;
  /** sha256 of the new bundle's MANIFEST.sha256. */
  to: string;
  started: string;
}

/** One recorded bundle: where its copy is, the hash of its manifest, its files and its guests. */
export interface RecordedBundle {
  dir: string;
  manifestHash: string;
  /** Every file the manifest lists, relative to the bundle, with its sha256. */
  files: Map<string, string>;
  guests: string[];
}

export interface InstallRecord {
  root: string;
  dir: string;
  current?: RecordedBundle;
  previous?: RecordedBundle;
  /** The bundle an interrupted install was putting in place (`.installed/next`). */
  next?: RecordedBundle;
  journal?: Journal;
}

function parseManifest(text: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const line of text.split('\n')) {
    const entry = manifestLine(line);
    if (entry) files.set(entry.path, entry.hash);
  }
  return files;
}

/** The guests' names in a bundle's answers.json. Read with JSON.parse: the bundle was validated when generated. */
export function guestNames(bundleDir: string): string[] {
  const doc = JSON.parse(readFileSync(join(bundleDir, ANSWERS), 'utf8')) as { guests?: { name?: unknown }[] };
  return (doc.guests ?? []).map((g) => g.name).filter((n): n is string => typeof n === 'string');
}

/** A bundle directory as a recorded bundle, or undefined when it is missing or incomplete. */
export function readBundle(dir: string): RecordedBundle | undefined {
  let manifest: Buffer;
  try {
    manifest = readFileSync(join(dir, MANIFEST));
    return {
      dir,
      manifestHash: sha256(manifest),
      files: parseManifest(manifest.toString('utf8')),
      guests: guestNames(dir),
    };
  } catch {
    return undefined;
  }
}

/** The files under root/ a recorded bundle installs, as host paths (/etc/...). */
export function hostFiles(b: RecordedBundle | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (b) for (const [rel, hash] of b.files) if (rel.startsWith('root/')) out.set(rel.slice('root'.length), hash);
  return out;
}

/** Which of guest g's own files an installed host path is: one of its units, or a file of its confinement. */
export function guestPart(hostPath: string, g: string): 'unit' | 'profile' | undefined {
  if (hostPath === `/etc/systemd/system/${N.unitName(g)}` || hostPath === `/etc/systemd/system/${N.tapUnitName(g)}`)
    return 'unit';
  if (CONFINEMENT.some((b) => b.guestFiles(g).includes(hostPath))) return 'profile';
  return undefined;
}

export function readRecord(root: string): InstallRecord {
  const dir = join(root, RECORD_DIR);
  const rec: InstallRecord = { root, dir };
  rec.current = readBundle(join(dir, 'current'));
  rec.previous = readBundle(join(dir, 'previous'));
  rec.next = readBundle(join(dir, 'next'));
  try {
    rec.journal = JSON.parse(readFileSync(join(dir, 'journal.json'), 'utf8')) as Journal;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return rec;
}

/** Copy a bundle directory (the files its manifest lists, and the manifest) to `to`, flushed to disk. */
function copyBundle(from: RecordedBundle, to: string): void {
  rmSync(to, { recursive: true, force: true });
  mkdirSync(to, { recursive: true, mode: 0o700 });
  for (const rel of [...from.files.keys(), MANIFEST]) {
    const target = join(to, rel);
    mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    copyFileSync(join(from.dir, rel), target);
    const fd = openSync(target, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  fsyncPath(to);
}

/**
 * Put the record in the shape an install starts from. An interrupted install may have left `next` (the bundle
 * it was installing) and, killed between the two renames of `commit`, `previous` holding what was `current`.
 * Returns what the journal says happened, for the operator, or undefined when no install was interrupted.
 */
export function recover(rec: InstallRecord, dryRun: boolean): string | undefined {
  const j = rec.journal;
  if (!j) return undefined;
  const short = (h: string | null) => (h ? h.slice(0, 12) : 'nothing');
  if (rec.current?.manifestHash === j.to) {
    if (!dryRun) rmSync(join(rec.dir, 'journal.json'), { force: true });
    rec.journal = undefined;
    return `the last ${j.action} (started ${j.started}) had installed bundle ${short(j.to)} completely; only its journal was left behind`;
  }
  if (!rec.current && rec.previous && rec.previous.manifestHash === j.from) {
    if (!dryRun) renameSync(join(rec.dir, 'previous'), join(rec.dir, 'current'));
    rec.current = dryRun ? rec.previous : { ...rec.previous, dir: join(rec.dir, 'current') };
    rec.previous = undefined;
  }
  return `the last ${j.action} (started ${j.started}) stopped midway: the host holds a mix of bundle ${short(j.from)} and bundle ${short(j.to)}; planning against the files as they are`;
}

/** Begin an install: the new bundle copied to `next`, then the journal, both on disk before any host file changes. */
export function begin(rec: InstallRecord, bundle: RecordedBundle, action: Journal['action']): Journal {
  mkdirSync(dirname(rec.dir), { recursive: true, mode: 0o755 });
  mkdirSync(rec.dir, { recursive: true, mode: 0o700 });
  chmodSync(rec.dir, 0o700);
  copyBundle(bundle, join(rec.dir, 'next'));
  const journal: Journal = {
    action,
    from: rec.current?.manifestHash ?? null,
    to: bundle.manifestHash,
    started: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
  const tmp = join(rec.dir, 'journal.json.new');
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(journal, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(rec.dir, 'journal.json'));
  fsyncPath(rec.dir);
  return journal;
}

/** Finish an install: current becomes previous, next becomes current, the journal goes last. */
export function commit(rec: InstallRecord): void {
  const p = (n: string) => join(rec.dir, n);
  if (existsSync(p('current'))) {
    rmSync(p('previous'), { recursive: true, force: true });
    renameSync(p('current'), p('previous'));
  }
  renameSync(p('next'), p('current'));
  fsyncPath(rec.dir);
  rmSync(p('journal.json'), { force: true });
  fsyncPath(rec.dir);
}
