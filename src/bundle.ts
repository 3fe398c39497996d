// Writing and reading a bundle directory. A bundle is written next to its destination and renamed into place
// (src/atomic.ts), so a crash at any moment leaves either no bundle or the complete previous one.
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { inDir, writeDirAtomic, type DirFile } from './atomic.js';
import { InputError } from './errors.js';
import { readBundleDir, type BundleProblem } from './install/bundle.js';

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

export function writeBundle(outDir: string, files: readonly DirFile[], force: boolean): void {
  const out = resolve(outDir);
  const parent = dirname(out);
  if (isNonEmptyDir(out) && !force)
    throw new InputError(`--out: ${out} exists and is not empty; pass --force to replace it`);
  try {
    mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw new InputError(`--out: cannot create ${parent}: ${(e as NodeJS.ErrnoException).code}`);
  }
  writeDirAtomic(inDir(parent), basename(out), files, 0o755);
}

/** Check a bundle directory against its MANIFEST.sha256: every listed file intact, nothing unlisted. */
export function checkManifest(dir: string): BundleProblem[] {
  return readBundleDir(dir).problems;
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
