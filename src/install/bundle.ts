// The one reader of a bundle for installing it: every file read once into memory (regular files only, never
// through a symlink), the manifest checked against what was read, the signatures of the manifest kept beside it
// (they cannot be in the manifest they sign: the reader knows them by name, and nothing else may be unlisted),
// answers.json parsed once. Everything after it —
// admission (admit.ts), the plan, the diff the operator confirms, the files installed, the copy kept in the install
// record — works on this in-memory bundle, so what was checked and confirmed is exactly what is installed, however
// the directory changes meanwhile. It reads a bundle directory the operator names (apply, export ansible) or a
// bundle kept in the install record inside the root (rollback, status), through the tree (tree.ts).
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ANSWERS, isSignaturePath, MANIFEST, manifestLine, SIGNATURES, sha256 } from '../bundle-layout.js';
import * as N from '../names.js';
import { OutsideTree, readRegular, type Dir } from './tree.js';

export interface BundleProblem {
  path: string;
  problem: string;
}

/** A guest as the install reads it from answers.json: its name, and its disks for the message after removing it. */
export interface BundleGuest {
  name: string;
  disks: string[];
}

export interface Bundle {
  /** Where it was read from, for messages. */
  from: string;
  /** Every file but the manifest, by path relative to the bundle. */
  files: Map<string, Buffer>;
  manifest: Buffer;
  manifestHash: string;
  /** The signatures of the manifest, by path (signatures/<key fingerprint>.sig); judged by admission, not here. */
  signatures: Map<string, Buffer>;
  /** The parsed answers.json (undefined when it is not JSON); its guests, by name. */
  answers: unknown;
  guests: BundleGuest[];
  /** How the bundle fails its manifest; empty when it is intact. */
  problems: BundleProblem[];
  /** How its answers.json fails to name its guests; empty when it names them. */
  guestProblems: BundleProblem[];
}

/** What the reader needs of a directory: its entries, and a regular file's bytes. */
interface Source {
  /** Entries of the directory `rel` ('' for the top): name, and whether it is a directory, a regular file or other. */
  list(rel: string): { name: string; kind: 'dir' | 'file' | 'other' }[];
  /** The bytes of the regular file `rel`; undefined when it is gone, OutsideTree when it is not a regular file. */
  read(rel: string): Buffer | undefined;
}

const kindOf = (st: { isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean }) =>
  st.isDirectory() && !st.isSymbolicLink() ? 'dir' : st.isFile() ? 'file' : 'other';

/** A bundle directory given by its path. */
function pathSource(dir: string): Source {
  return {
    list: (rel) => readdirSync(join(dir, rel)).map((name) => ({ name, kind: kindOf(lstatSync(join(dir, rel, name))) })),
    read: (rel) => readRegular(join(dir, rel), join(dir, rel))?.content,
  };
}

/** A bundle directory inside the tree, held open. */
function treeSource(top: Dir): Source {
  const within = <T>(rel: string, fn: (d: Dir) => T): T => {
    let d = top;
    const opened: Dir[] = [];
    try {
      for (const p of rel.split('/').filter(Boolean)) opened.push((d = d.child(p)));
      return fn(d);
    } finally {
      for (const o of opened) o.close();
    }
  };
  return {
    list: (rel) =>
      within(rel, (d) =>
        d.list().map((name) => {
          const st = d.lstat(name);
          return { name, kind: st ? kindOf(st) : 'other' };
        }),
      ),
    read: (rel) => {
      const i = rel.lastIndexOf('/');
      return within(i < 0 ? '' : rel.slice(0, i), (d) => d.read(rel.slice(i + 1)))?.content;
    },
  };
}

function walk(src: Source, rel = ''): { path: string; kind: 'file' | 'other' }[] {
  const out: { path: string; kind: 'file' | 'other' }[] = [];
  for (const e of src.list(rel).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.kind === 'dir') out.push(...walk(src, p));
    else out.push({ path: p, kind: e.kind });
  }
  return out;
}

function read(src: Source, from: string): Bundle {
  const b: Bundle = {
    from,
    files: new Map(),
    manifest: Buffer.alloc(0),
    manifestHash: '',
    signatures: new Map(),
    answers: undefined,
    guests: [],
    problems: [],
    guestProblems: [],
  };
  const problem = (path: string, p: string) => b.problems.push({ path, problem: p });
  const guestProblem = (p: string) => b.guestProblems.push({ path: ANSWERS, problem: p });
  let present: { path: string; kind: 'file' | 'other' }[];
  try {
    present = walk(src);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw e;
    present = [];
  }
  // A file that changes kind or goes away between the listing and the read is what the listing would have said.
  const readListed = (rel: string): Buffer | 'gone' | 'other' => {
    try {
      return src.read(rel) ?? 'gone';
    } catch (e) {
      if (e instanceof OutsideTree) return 'other';
      throw e;
    }
  };
  const manifest = present.some((e) => e.path === MANIFEST && e.kind === 'file') ? readListed(MANIFEST) : 'gone';
  if (!(manifest instanceof Buffer)) {
    problem(MANIFEST, 'missing: this is not a qemu-harden bundle, or it is incomplete');
    return b;
  }
  b.manifest = manifest;
  b.manifestHash = sha256(b.manifest);
  const kinds = new Map(present.map((e) => [e.path, e.kind]));
  const listed = new Set<string>();
  for (const [n, line] of b.manifest.toString('utf8').split('\n').entries()) {
    if (line === '') continue;
    const entry = manifestLine(line);
    if (!entry) {
      problem(MANIFEST, `line ${n + 1} is not "<sha256>  <relative path>"`);
      continue;
    }
    if (isSignaturePath(entry.path)) {
      problem(entry.path, 'a signature cannot be listed in the manifest it signs');
      continue;
    }
    listed.add(entry.path);
    const kind = kinds.get(entry.path);
    const data = kind === 'file' ? readListed(entry.path) : (kind ?? 'gone');
    if (data === 'gone') {
      problem(entry.path, 'listed in the manifest but missing');
      continue;
    }
    if (!(data instanceof Buffer)) {
      problem(entry.path, 'not a regular file (a symlink, a FIFO, a device)');
      continue;
    }
    if (sha256(data) !== entry.hash) problem(entry.path, 'changed since the bundle was generated (checksum differs)');
    b.files.set(entry.path, data);
  }
  for (const e of present) {
    if (e.path === MANIFEST || listed.has(e.path)) continue;
    if (isSignaturePath(e.path)) {
      const sig = e.kind === 'file' ? readListed(e.path) : e.kind;
      if (sig instanceof Buffer) b.signatures.set(e.path, sig);
      else if (sig === 'other') problem(e.path, 'not a regular file (a symlink, a FIFO, a device)');
    } else
      problem(
        e.path,
        e.path.startsWith(`${SIGNATURES}/`)
          ? `not a signature (${SIGNATURES}/<key fingerprint>.sig, as qemu-harden sign writes them), and not listed in the manifest`
          : 'not listed in the manifest',
      );
  }

  const text = b.files.get(ANSWERS);
  if (text === undefined) {
    if (!b.problems.some((p) => p.path === ANSWERS)) guestProblem('missing from the bundle');
    return b;
  }
  try {
    b.answers = JSON.parse(text.toString('utf8'));
  } catch (e) {
    guestProblem(`not valid JSON: ${(e as Error).message.split('\n')[0]}`);
    return b;
  }
  const guests = (b.answers as { guests?: unknown } | null)?.guests;
  if (!Array.isArray(guests)) {
    guestProblem('has no list of guests');
    return b;
  }
  for (const [i, g] of guests.entries()) {
    const name = (g as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || !N.GUEST_NAME.test(name)) {
      guestProblem(`guests[${i}].name is not a guest name qemu-harden gives`);
      continue;
    }
    const disks = (g as { disks?: unknown }).disks;
    b.guests.push({
      name,
      disks: Array.isArray(disks)
        ? disks.map((d) => (d as { path?: unknown } | null)?.path).filter((p): p is string => typeof p === 'string')
        : [],
    });
  }
  return b;
}

/** A bundle directory named on the command line. */
export function readBundleDir(dir: string): Bundle {
  return read(pathSource(dir), dir);
}

/** A bundle kept in the install record, in a directory of the tree held open. */
export function readTreeBundle(dir: Dir): Bundle {
  return read(treeSource(dir), dir.shown);
}

/** The files under root/ a bundle installs, by host path (/etc/...). */
export function hostFiles(b: Bundle | undefined): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (b) for (const [rel, data] of b.files) if (rel.startsWith('root/')) out.set(rel.slice('root'.length), data);
  return out;
}
