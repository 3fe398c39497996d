// The root apply, rollback and status work on (`/`, or the tree given with --root), and every file operation they
// do in it, confined to it at the moment of use. Whoever prepares a tree (the root user of a container, a build
// user) controls every name in it and can swap any of them for a symlink at any time, so no path under the root is
// ever handed to the kernel whole. Node has no openat(2) with O_BENEATH; instead:
//
// - A directory is reached from an open descriptor of the root, one component at a time, each opened with
//   O_DIRECTORY|O_NOFOLLOW through /proc/self/fd/<parent fd>/<name>: the kernel resolves the name in the directory
//   the descriptor holds, whatever has been renamed since.
// - A component that is a symlink is read (readlink, which follows nothing) and resolved by this code, inside the
//   tree: a relative target from the directory it is in, an absolute one only when it names a place under the
//   root's own path. A target that leads out of the tree (an absolute path elsewhere, ".." above the root) is
//   refused with OutsideTree. On `/` every target is inside.
// - The last component is never followed: files are opened with O_NOFOLLOW (and O_NONBLOCK, so a FIFO cannot hang
//   a read) and must be regular; new files are created with O_EXCL (src/atomic.ts); mode and owner are set on the
//   descriptor (fchmod, fchown); rename, link, unlink, mkdir and rmdir act on the name itself.
//
// Out of scope: mount points inside the tree (a bind mount the tree's owner cannot make from inside a container,
// but the host's administrator can), and a directory moved out of the tree while it is held open, which needs write
// access outside the tree.
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  realpathSync,
  renameSync,
  unlinkSync,
  type Stats,
} from 'node:fs';
import { resolve } from 'node:path';
import type { Place } from '../atomic.js';
import { InputError } from '../errors.js';
import { visible } from '../escape.js';

/**
 * A path under the root that resolves out of it (`leaves`), or whose file is not what it must be (a directory, a
 * regular file). `path` is where it was found, `why` what is wrong there.
 */
export class OutsideTree extends Error {
  constructor(
    readonly path: string,
    readonly why: string,
    readonly leaves = false,
  ) {
    super(`${path} ${why}`);
    this.name = 'OutsideTree';
  }
}

const DIRECTORY = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** As many symlinks as the kernel follows in one lookup before it gives up (ELOOP); also bounds the retries of a
 * component that changes under the walk. */
const MAX_LINKS = 40;

const parts = (path: string) => path.split('/').filter((p) => p !== '' && p !== '.');
const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * The regular file at `path` (its last component never followed, a FIFO never waited on): content and mode, or
 * undefined when nothing is there; OutsideTree, naming it as `shown`, when it is a symlink or not a regular file.
 */
export function readRegular(path: string, shown: string): { content: Buffer; mode: number } | undefined {
  let fd: number;
  try {
    fd = openSync(path, FILE);
  } catch (e) {
    if (code(e) === 'ENOENT') return undefined;
    if (code(e) === 'ELOOP') throw new OutsideTree(shown, 'is a symlink, not a regular file');
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new OutsideTree(shown, 'is not a regular file');
    // Sized by fstat, one byte over so that a file that has not grown is read whole by the first read and the
    // second finds its end; a file that grows meanwhile is read to its end all the same.
    let buf = Buffer.allocUnsafe(st.size + 1);
    let length = 0;
    for (;;) {
      if (length === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, length);
        buf = bigger;
      }
      const n = readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
    }
    return { content: buf.subarray(0, length), mode: st.mode & 0o7777 };
  } finally {
    closeSync(fd);
  }
}

/** A directory inside the tree, held open. */
export class Dir implements Place {
  constructor(
    readonly fd: number,
    /** The directory's path on the host, for messages. */
    readonly shown: string,
  ) {}

  at(name: string): string {
    return `/proc/self/fd/${this.fd}/${name}`;
  }

  child(name: string): Dir {
    let fd: number;
    try {
      fd = openSync(this.at(name), DIRECTORY);
    } catch (e) {
      if (code(e) === 'ELOOP' || code(e) === 'ENOTDIR')
        throw new OutsideTree(this.join(name), 'is not a directory (a symlink, or a file)');
      throw e;
    }
    return new Dir(fd, this.join(name));
  }

  join(name: string): string {
    return this.shown === '/' ? `/${name}` : `${this.shown}/${name}`;
  }

  sync(): void {
    fsyncSync(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }

  /** What is at `name`, without following it; undefined when nothing is. */
  lstat(name: string): Stats | undefined {
    return lstatSync(this.at(name), { throwIfNoEntry: false });
  }

  /** The content and mode of the regular file `name`; undefined when there is none; OutsideTree for anything else. */
  read(name: string): { content: Buffer; mode: number } | undefined {
    return readRegular(this.at(name), this.join(name));
  }

  /** The names in this directory. */
  list(): string[] {
    return readdirSync(this.at('.'));
  }

  unlink(name: string): void {
    unlinkSync(this.at(name));
  }

  rename(from: string, to: string): void {
    renameSync(this.at(from), this.at(to));
  }

  /** Make `name` a directory of this mode and owner root, or give the one that is there that mode. */
  mkdir(name: string, mode: number): Dir {
    try {
      mkdirSync(this.at(name), mode);
    } catch (e) {
      if (code(e) !== 'EEXIST') throw e;
    }
    const d = this.child(name);
    fchmodSync(d.fd, mode);
    return d;
  }
}

export class Tree {
  private constructor(
    /** The root's real path: `/`, or the tree's. */
    readonly root: string,
    private readonly fd: number,
  ) {}

  /** Open the root the operator named (symlinks in the operator's own path are theirs to choose). */
  static open(rootArg: string): Tree {
    let root: string;
    try {
      root = realpathSync(resolve(rootArg));
    } catch {
      // A tree is never made by qemu-harden, also for a dry run: a mistyped --root is said, not planned against.
      throw new InputError(
        `--root: ${visible(rootArg)} does not exist; the tree must exist (also for --dry-run): create it first`,
      );
    }
    let fd: number;
    try {
      fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
    } catch (e) {
      throw new InputError(`--root: cannot open ${visible(root)}: ${code(e) ?? visible((e as Error).message)}`);
    }
    try {
      closeSync(openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY | constants.O_DIRECTORY));
    } catch {
      closeSync(fd);
      throw new InputError('/proc is not mounted: qemu-harden reaches the files under the root through /proc/self/fd');
    }
    return new Tree(root, fd);
  }

  close(): void {
    closeSync(this.fd);
  }

  /** `rel` (a host path such as /etc/passwd) as it is shown: its path on this machine. */
  shown(rel: string): string {
    const p = parts(rel).join('/');
    return this.root === '/' ? `/${p}` : `${this.root}/${p}`;
  }

  /**
   * The directory at `rel`, resolved inside the tree; undefined when a component is missing, or, with `create`,
   * missing components made with that mode. The caller closes it.
   */
  dir(rel: string, create?: number): Dir | undefined {
    const rootParts = parts(this.root);
    // The root's own descriptor, reopened (its /proc/self/fd entry is a link the kernel must follow).
    const stack: Dir[] = [
      new Dir(openSync(`/proc/self/fd/${this.fd}`, constants.O_RDONLY | constants.O_DIRECTORY), this.root),
    ];
    const todo = parts(rel);
    let links = 0;
    const escape = (why: string): never => {
      throw new OutsideTree(this.shown(rel), why, true);
    };
    try {
      while (todo.length) {
        const name = todo.shift()!;
        const top = stack.at(-1)!;
        if (name === '..') {
          if (stack.length === 1) {
            if (this.root === '/') continue;
            escape('climbs above the root through a symlink on the way');
          }
          stack.pop()!.close();
          continue;
        }
        let fd: number | undefined;
        try {
          fd = openSync(top.at(name), DIRECTORY);
        } catch (e) {
          const c = code(e);
          if (c === 'ENOENT') {
            if (create === undefined) return undefined;
            if (++links > MAX_LINKS) escape('keeps changing while it is made');
            try {
              mkdirSync(top.at(name), create);
            } catch (m) {
              if (code(m) !== 'EEXIST') throw m;
            }
            todo.unshift(name);
            continue;
          }
          if (c !== 'ELOOP' && c !== 'ENOTDIR') throw e;
        }
        if (fd !== undefined) {
          stack.push(new Dir(fd, top.join(name)));
          continue;
        }
        // Swapped for a symlink, a file, or nothing since the open: look at what is there now.
        if (++links > MAX_LINKS) escape('has too many symlinks on the way');
        const st = top.lstat(name);
        if (!st) {
          todo.unshift(name);
          continue;
        }
        if (!st.isSymbolicLink()) throw new OutsideTree(top.join(name), 'is not a directory');
        const target = readlinkSync(top.at(name));
        if (target.startsWith('/')) {
          const t = parts(target);
          if (rootParts.some((p, i) => t[i] !== p)) escape(`leads through ${top.join(name)}, a symlink to ${target}`);
          while (stack.length > 1) stack.pop()!.close();
          todo.unshift(...t.slice(rootParts.length));
        } else todo.unshift(...parts(target));
      }
      return stack.pop()!;
    } finally {
      for (const d of stack) d.close();
    }
  }

  /** Run `fn` in the directory that holds `rel`, which must exist (or is created with `create`). */
  inParent<T>(rel: string, fn: (dir: Dir, name: string) => T, create?: number): T | undefined {
    const p = parts(rel);
    const name = p.pop();
    if (name === undefined) throw new OutsideTree(this.shown(rel), 'names the root itself');
    const dir = this.dir(p.join('/'), create);
    if (!dir) return undefined;
    try {
      return fn(dir, name);
    } finally {
      dir.close();
    }
  }

  /** The regular file at `rel`: its content and mode, or undefined when it (or its directory) is missing. */
  read(rel: string): { content: Buffer; mode: number } | undefined {
    return this.inParent(rel, (d, n) => d.read(n));
  }

  /** What is at `rel`, without following its last component; undefined when missing. */
  lstat(rel: string): Stats | undefined {
    return this.inParent(rel, (d, n) => d.lstat(n));
  }
}
