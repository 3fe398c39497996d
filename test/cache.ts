// A directory built once per key and kept between runs under the repository's .cache/ (git ignores it): a Debian
// root, a kernel, anything slow to make and fixed by its inputs. The key is a hash of the inputs, so a changed
// input builds a new directory beside the old one. Each build goes into a temporary directory next to its final
// place and is renamed into place when complete, so a directory under its key is always whole. The builder of a
// key holds a lock file beside it (`<key>.lock`, made only if absent, holding its process ID), and a test file that
// finds another one building the same key waits for that build instead of making a second copy: on a cold cache
// two proofs want the same Debian root at once. A lock whose process is gone (a run killed mid-build) is taken
// over. Should two builders still both build (both took over the same dead lock), both end with the copy that was
// renamed into place first, and the other's is removed.
import { createHash } from 'node:crypto';
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { cacheNotice, REPO } from './helpers.js';

export const CACHE_ROOT = join(REPO, '.cache');

export interface CachedDir {
  /** The directory under .cache/ holding every key of this kind, e.g. "debian". */
  kind: string;
  /** Everything the built directory depends on; their JSON is hashed into the key. */
  inputs: Record<string, unknown>;
  /** What is built, for the line the suite prints while it builds, e.g. 'a Debian 13 root (debootstrap)'. */
  what: string;
  /**
   * Where the kinds live; CACHE_ROOT unless a test of this helper gives its own. Only a build under CACHE_ROOT is
   * announced with the suite's cache notice, since only that one is kept for the next run.
   */
  root?: string;
  /** Fills the (empty, existing) directory it is given. */
  build(dir: string): void | Promise<void>;
}

/** The same value with every object's keys in sorted order, so that equal inputs give equal JSON. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** The key of these inputs: the first 16 hex digits of the sha256 of their canonical JSON. */
export function cacheKey(inputs: Record<string, unknown>): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(inputs)))
    .digest('hex')
    .slice(0, 16);
}

const BUILDING = /^\.building-[0-9a-f]{16}-(\d+)-/;

/** Removes what builders that no longer run left behind (a run killed mid-build). */
function removeAbandoned(dir: string): void {
  for (const e of readdirSync(dir)) {
    const pid = Number(BUILDING.exec(e)?.[1]);
    if (pid && !existsSync(`/proc/${pid}`)) rmSync(join(dir, e), { recursive: true, force: true });
  }
}

/** The process that holds the lock, if it still runs. */
function lockHolder(lock: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(lock, 'utf8'));
  } catch {
    return undefined;
  }
  return pid && existsSync(`/proc/${pid}`) ? pid : undefined;
}

/** The built directory for these inputs: the cached one, one another builder is making now, or a new one built now. */
export async function cachedDir(c: CachedDir): Promise<string> {
  const key = cacheKey(c.inputs);
  const parent = join(c.root ?? CACHE_ROOT, c.kind);
  const done = join(parent, key);
  if (existsSync(done)) return done;
  mkdirSync(parent, { recursive: true });
  const say = c.root === undefined ? cacheNotice : (text: string) => process.stderr.write(`${text}\n`);
  const lock = `${done}.lock`;
  // The lock appears with its process ID already in it: written aside, then linked into place if absent.
  const mine = `${lock}.${process.pid}.${Math.random().toString(16).slice(2)}`;
  writeFileSync(mine, String(process.pid));
  try {
    linkSync(mine, lock);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const holder = lockHolder(lock);
    if (holder === undefined) rmSync(lock, { force: true });
    else {
      say(`waiting for process ${holder}, which is building ${c.what} into ${done}`);
      while (!existsSync(done) && lockHolder(lock) === holder) await new Promise((r) => setTimeout(r, 1000));
    }
    // Built, or that build failed or its process is gone: look again, and build it here if it is still missing.
    return cachedDir(c);
  } finally {
    rmSync(mine, { force: true });
  }
  try {
    // A builder that held the lock until a moment ago may have finished it.
    return existsSync(done) ? done : await build(c, parent, done, say);
  } finally {
    rmSync(lock, { force: true });
  }
}

async function build(c: CachedDir, parent: string, done: string, say: (text: string) => void): Promise<string> {
  const key = basename(done);
  removeAbandoned(parent);
  const building = mkdtempSync(join(parent, `.building-${key}-${process.pid}-`));
  say(`building ${c.what} into ${done}: once, later runs reuse it (inputs: ${JSON.stringify(c.inputs)})`);
  const started = Date.now();
  try {
    await c.build(building);
    try {
      renameSync(building, done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !existsSync(done)) throw e;
      // Another builder finished first; its directory is as good as this one.
      rmSync(building, { recursive: true, force: true });
    }
  } catch (e) {
    rmSync(building, { recursive: true, force: true });
    throw e;
  }
  writeFileSync(`${done}.inputs.json`, JSON.stringify(c.inputs, null, 2) + '\n');
  say(`built ${c.what} in ${Math.round((Date.now() - started) / 1000)} s`);
  return done;
}
