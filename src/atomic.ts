// The one way qemu-harden puts a file or a directory in place: written under a fresh temporary name beside the
// destination, flushed, then renamed over it, so that a reader (or a crash at any moment) sees the old one or the
// complete new one and never a part. Every writer uses it: generate and the wizard (a bundle, an answers file),
// import --out, audit --answers-out, export ansible, and apply (installed files, backups, the install record).
//
// A writer names a directory as a Place. A path is a place (`inDir`); so is a directory apply holds open inside a
// --root tree (src/install/tree.ts), which names its entries through /proc/self/fd so that nothing here follows a
// symlink out of the tree. Temporary files are created with O_EXCL|O_NOFOLLOW: a name planted in advance, or a
// symlink, fails the write instead of being written through.
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A directory that files are written in, by name. */
export interface Place {
  /** What a system call is handed for the entry `name` (it never follows `name` itself when it is a symlink). */
  at(name: string): string;
  /** The subdirectory `name`, which the caller made or saw as a directory (a tree's refuses a symlink). */
  child(name: string): Place;
  /** A path another program can open to reach this directory, when there is one (`sync -f`). */
  readonly path?: string;
  /** fsync(2) of the directory itself, so that a rename in it is on disk. */
  sync(): void;
  close(): void;
}

/** fsync(2) of one file or directory, by path. */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A directory named by its path: the operator's own (an --out directory, the directory of an answers file). */
export function inDir(dir: string): Place {
  return {
    at: (name) => join(dir, name),
    child: (name) => inDir(join(dir, name)),
    path: dir,
    sync: () => fsyncPath(dir),
    close: () => undefined,
  };
}

const NEW_FILE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * The temporary name beside `name`. It is fixed: each write first removes what an earlier, killed write left
 * (removeLeftovers), and a fixed name lets the proofs aim a kill at one file by its path (strace -P). A file
 * someone else made there in between makes the exclusive create fail (EEXIST) rather than write through it.
 */
const temporary = (name: string, kind: 'new' | 'old' = 'new') => `.${name}.qemu-harden-${kind}`;

function writeAll(fd: number, content: string | Buffer): void {
  const data = typeof content === 'string' ? Buffer.from(content) : content;
  for (let off = 0; off < data.length;) off += writeSync(fd, data, off, data.length - off);
}

export interface FileOptions {
  mode: number;
  /** Set on the file before it is renamed into place (apply installs root:root). */
  owner?: { uid: number; gid: number };
  /** Keep a file already at `name` and drop the new one (a backup: the first one of a path wins). */
  keepExisting?: boolean;
}

/**
 * Put `content` at `name` in `place`: a new file beside it (mode and owner set on its descriptor), flushed, renamed
 * over `name`, and the directory flushed. Returns false when `keepExisting` found a file there already.
 */
export function writeFileAtomic(place: Place, name: string, content: string | Buffer, o: FileOptions): boolean {
  removeLeftovers(place, name);
  const tmp = temporary(name);
  let placed = false;
  try {
    const fd = openSync(place.at(tmp), NEW_FILE, o.mode);
    try {
      writeAll(fd, content);
      fchmodSync(fd, o.mode);
      if (o.owner) fchownSync(fd, o.owner.uid, o.owner.gid);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (o.keepExisting) {
      // link(2) fails when the name exists, whatever it is: an earlier backup is never replaced.
      try {
        linkSync(place.at(tmp), place.at(name));
        placed = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      unlinkSync(place.at(tmp));
    } else {
      renameSync(place.at(tmp), place.at(name));
      placed = true;
    }
    place.sync();
    return placed;
  } catch (e) {
    removeQuietly(place, tmp);
    throw e;
  }
}

/** The same for a file named by its path, as the operator gave it. */
export function writeFileAtomicAt(path: string, content: string | Buffer, mode: number): void {
  writeFileAtomic(inDir(dirname(path)), basename(path), content, { mode });
}

export interface DirFile {
  /** Relative to the directory, "/"-separated. */
  path: string;
  mode: number;
  content: string | Buffer;
}

/**
 * Put a whole directory at `name` in `place`: written in full under a temporary name, flushed, then renamed over
 * the old one (which is removed after). A crash at any moment leaves the old directory or the complete new one,
 * and at worst a temporary directory that the next call removes.
 */
export function writeDirAtomic(place: Place, name: string, files: readonly DirFile[], dirMode: number): void {
  removeLeftovers(place, name);
  const tmp = temporary(name);
  const old = temporary(name, 'old');
  // Where another program can reach the directory, one syncfs(2) (`sync -f`) flushes it all at the cost of one
  // journal commit; a directory held open inside a tree is flushed file by file as it is written.
  const flushEach = place.path === undefined;
  try {
    mkdirSync(place.at(tmp), dirMode);
    const top = place.child(tmp);
    const dirs = new Map<string, Place>([['', top]]);
    const written: string[] = [];
    try {
      const dirOf = (rel: string): Place => {
        const have = dirs.get(rel);
        if (have) return have;
        const parent = dirOf(rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '');
        const name = rel.slice(rel.lastIndexOf('/') + 1);
        mkdirSync(parent.at(name), dirMode);
        const made = parent.child(name);
        dirs.set(rel, made);
        return made;
      };
      for (const f of files) {
        const i = f.path.lastIndexOf('/');
        const dir = dirOf(i < 0 ? '' : f.path.slice(0, i));
        const fd = openSync(dir.at(f.path.slice(i + 1)), NEW_FILE | constants.O_TRUNC, f.mode);
        try {
          writeAll(fd, f.content);
          if (flushEach) fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        written.push(f.path);
      }
      if (flushEach) for (const d of [...dirs.values()].reverse()) d.sync();
      else flushByPath(join(place.path!, tmp), written);
    } finally {
      for (const d of dirs.values()) d.close();
    }
    let moved = false;
    try {
      renameSync(place.at(name), place.at(old));
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    renameSync(place.at(tmp), place.at(name));
    place.sync();
    if (moved) removeTree(place, old);
  } catch (e) {
    removeQuietly(place, tmp);
    throw e;
  }
}

/**
 * Everything written under `dir` on disk before it is renamed into place. One syncfs(2) of the file system
 * (coreutils' `sync -f`) costs the same for 3 files or 3,000; fsync of each file and directory, the fallback when
 * `sync -f` is not there, costs one journal commit per file.
 */
function flushByPath(dir: string, files: string[]): void {
  if (spawnSync('sync', ['-f', dir], { stdio: 'ignore' }).status === 0) return;
  const paths = files.map((f) => join(dir, f));
  for (const f of paths) fsyncPath(f);
  for (const d of new Set(paths.map((f) => dirname(f)))) fsyncPath(d);
}

/** Remove `name` from `place` and everything under it, never following a symlink (a symlink is removed itself). */
export function removeTree(place: Place, name: string): void {
  let st;
  try {
    st = lstatSync(place.at(name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isDirectory()) return unlinkSync(place.at(name));
  const dir = place.child(name);
  try {
    for (const e of readdirSync(dir.at('.'))) removeTree(dir, e);
  } finally {
    dir.close();
  }
  rmdirSync(place.at(name));
}

function removeQuietly(place: Place, name: string): void {
  try {
    removeTree(place, name);
  } catch {
    // The write already failed; its error is the one to report.
  }
}

/** Temporary files and directories of an earlier run that was killed before it could clean up. */
function removeLeftovers(place: Place, name: string): void {
  let entries: string[];
  try {
    entries = readdirSync(place.at('.'));
  } catch {
    return;
  }
  const prefix = new RegExp(
    `^\\.${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.qemu-harden-(new|old)(-[0-9a-f]{12})?$`,
  );
  for (const e of entries) if (prefix.test(e)) removeTree(place, e);
}
