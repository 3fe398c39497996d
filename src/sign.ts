// `qemu-harden sign DIR --key KEYFILE`: sign the bundle's manifest with an SSH key (ssh-keygen -Y sign, namespace
// "qemu-harden") and keep the signature beside it, in signatures/<key fingerprint>.sig. The manifest signed is the
// one the bundle reader read and checked every file against; a bundle that fails that check is not signed. A second
// key adds its own file (two-person review); the same key signing again replaces its own.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { inDir, writeFileAtomic } from './atomic.js';
import { MANIFEST, signaturePath, SIGNATURES } from './bundle-layout.js';
import { InputError } from './errors.js';
import { visible } from './escape.js';
import { readBundleDir } from './install/bundle.js';
import { sign } from './sshsig.js';

export interface Signed {
  bundle: string;
  /** The signature written, relative to the bundle. */
  path: string;
  type: string;
  fingerprint: string;
  manifestSha256: string;
  /** Every signature the bundle now carries. */
  signatures: string[];
}

export async function signBundle(dir: string, keyFile: string): Promise<Signed> {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new InputError(`sign: ${visible(dir)} is not a bundle directory`);
  try {
    statSync(keyFile);
  } catch (e) {
    throw new InputError(`--key ${visible(keyFile)}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const b = readBundleDir(dir);
  if (b.problems.length)
    throw new InputError(
      `sign refused: ${visible(dir)} does not match its ${MANIFEST}, so a signature of it would not cover the bundle; nothing was signed:\n` +
        b.problems.map((p) => `  ${visible(p.path)}: ${visible(p.problem)}`).join('\n'),
    );
  const made = await sign(b.manifest, keyFile);
  const path = signaturePath(made.fingerprint);
  mkdirSync(join(dir, SIGNATURES), { recursive: true, mode: 0o755 });
  writeFileAtomic(inDir(join(dir, SIGNATURES)), path.slice(SIGNATURES.length + 1), made.signature, { mode: 0o644 });
  return {
    bundle: dir,
    path,
    type: made.type,
    fingerprint: made.fingerprint,
    manifestSha256: b.manifestHash,
    signatures: [...new Set([...b.signatures.keys(), path])].sort(),
  };
}

export function formatSigned(s: Signed): string {
  const others = s.signatures.filter((p) => p !== s.path);
  return (
    `Signed ${visible(s.bundle)}/${MANIFEST} (sha256 ${s.manifestSha256.slice(0, 12)}) with ${s.type} key ${s.fingerprint}: wrote ${s.path}.\n` +
    (others.length
      ? `The bundle carries ${s.signatures.length} signatures: ${s.signatures.join(', ')}.\n`
      : 'It is the bundle’s only signature.\n')
  );
}
