// Writing and reading a bundle directory. A bundle is written next to its destination and renamed into place
// (src/atomic.ts), so a crash at any moment leaves either no bundle or the complete previous one.
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { inDir, writeDirAtomic, type DirFile } from './atomic.js';

export { fsyncPath } from './atomic.js';
import { InputError } from './errors.js';
import { MANIFEST, manifestLine, sha256 } from './bundle-layout.js';

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
