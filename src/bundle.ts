// Writing and reading a bundle directory. A bundle is written next to its destination and renamed into place,
// so a crash at any moment leaves either no bundle or the complete previous one.
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { MANIFEST, manifestLine, sha256, type BundleFile } from './bundle-layout.js';
import { InputError } from './errors.js';

export function isNonEmptyDir(path: string): boolean {
  try {
    const st = statSync(path);
    if (!st.isDirectory()) throw new InputError(`--out: ${path} exists and is not a directory`);
    return readdirSync(path).length > 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

function writeNew(path: string, content: string, mode: number): void {
  const fd = openSync(path, 'wx', mode);
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

/** fsync(2) of one file or directory. */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Put everything written under `dir` on disk before the bundle is renamed into place. One syncfs(2) of the
 * file system (coreutils' `sync -f`) costs the same for 3 files or 3,000; fsync of each file and directory, the
 * fallback when `sync -f` is not there, costs one journal commit per file.
 */
function flushTree(dir: string, files: string[]): void {
  if (spawnSync('sync', ['-f', dir], { stdio: 'ignore' }).status === 0) return;
  for (const f of files) fsyncPath(f);
  for (const d of new Set(files.map((f) => dirname(f)))) fsyncPath(d);
}

export function writeBundle(outDir: string, files: BundleFile[], force: boolean): void {
  const out = resolve(outDir);
  const parent = dirname(out);
  if (isNonEmptyDir(out) && !force)
    throw new InputError(`--out: ${out} exists and is not empty; pass --force to replace it`);
  try {
    mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw new InputError(`--out: cannot create ${parent}: ${(e as NodeJS.ErrnoException).code}`);
  }
  // The names are fixed, as apply's are: a run removes whatever an earlier run left, so a random tag would keep
  // nothing apart, and a fixed name lets a test aim a kill at one file of the new bundle by its path.
  removeLeftovers(parent, basename(out));
  const tmp = join(parent, `.${basename(out)}.qemu-harden-new`);
  const old = join(parent, `.${basename(out)}.qemu-harden-old`);
  try {
    mkdirSync(tmp, { mode: 0o755 });
    const made = new Set<string>();
    const targets = files.map((f) => {
      const target = join(tmp, f.path);
      const dir = dirname(target);
      if (!made.has(dir)) mkdirSync(dir, { recursive: true, mode: 0o755 });
      made.add(dir);
      writeNew(target, f.content, f.mode);
      return target;
    });
    flushTree(tmp, targets);
    let moved = false;
    try {
      renameSync(out, old);
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    renameSync(tmp, out);
    fsyncPath(parent);
    if (moved) rmSync(old, { recursive: true, force: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Temporary directories of an earlier run that was killed before it could clean up. */
function removeLeftovers(parent: string, name: string): void {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return;
  }
  // Earlier versions tagged the names with 12 random hex digits: their leftovers go too.
  const prefix = new RegExp(
    `^\\.${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.qemu-harden-(new|old)(-[0-9a-f]{12})?$`,
  );
  for (const e of entries) if (prefix.test(e)) rmSync(join(parent, e), { recursive: true, force: true });
}

interface ManifestProblem {
  path: string;
  problem: string;
}

/** Check a bundle directory against its MANIFEST.sha256: every listed file intact, nothing unlisted. */
export function checkManifest(dir: string): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  let text: string;
  try {
    text = readFileSync(join(dir, MANIFEST), 'utf8');
  } catch {
    return [{ path: MANIFEST, problem: 'missing: this is not a qemu-harden bundle, or it is incomplete' }];
  }
  const listed = new Set<string>();
  for (const [n, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const entry = manifestLine(line);
    if (!entry) {
      problems.push({ path: MANIFEST, problem: `line ${n + 1} is not "<sha256>  <relative path>"` });
      continue;
    }
    const { hash, path: rel } = entry;
    listed.add(rel);
    let data: Buffer;
    try {
      data = readFileSync(join(dir, rel));
    } catch {
      problems.push({ path: rel, problem: 'listed in the manifest but missing' });
      continue;
    }
    if (sha256(data) !== hash)
      problems.push({ path: rel, problem: 'changed since the bundle was generated (checksum differs)' });
  }
  for (const rel of walk(dir))
    if (rel !== MANIFEST && !listed.has(rel)) problems.push({ path: rel, problem: 'not listed in the manifest' });
  return problems;
}

export function walk(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, rel));
    else out.push(rel);
  }
  return out;
}
