// SSH signatures of a bundle's manifest (`ssh-keygen -Y`, the format git uses with gpg.format=ssh), in namespace
// "qemu-harden". The manifest lists every file of the bundle with its sha256, so a signature over its bytes covers
// the whole bundle. ssh-keygen makes every signature and judges every one against an allowed_signers file —
// principals, namespaces=, valid-after=/valid-before=, cert-authority, as ssh-keygen(1) documents them: nothing
// here parses a key, a signature or a trust file. What is signed and judged is always bytes held in memory (the
// manifest the bundle reader read), handed to ssh-keygen through a private scratch directory, never a path in the
// bundle. The result lines of ssh-keygen are read the way git reads them ("Good "NS" signature for P with T key F").
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MANIFEST } from './bundle-layout.js';
import { InputError } from './errors.js';
import { visible } from './escape.js';
import { run, which } from './tools.js';

export const NAMESPACE = 'qemu-harden';
/** The trust file of an enrolled host: while it exists, apply and rollback install only bundles it lets in. */
export const HOST_TRUST = '/etc/qemu-harden/allowed_signers';
export const SSH_KEYGEN_PACKAGE = 'openssh-client';

/** An allowed_signers file as read once: where it is, for messages, and its bytes. */
export interface Trust {
  shown: string;
  text: Buffer;
}

/** The key behind a good signature: its type and fingerprint, and the principal a trust file allows it as. */
export interface Signer {
  /** The signature file, signatures/<fingerprint>.sig. */
  path: string;
  /** Absent when no trust file was asked (status on a host that is not enrolled). */
  principal?: string;
  type: string;
  fingerprint: string;
}

export interface SignatureProblem {
  path: string;
  problem: string;
}

/** What the signature check needs of a bundle as read: the manifest, its signatures, how its files fail it. */
export interface SignedBundle {
  manifest: Buffer;
  signatures: ReadonlyMap<string, Buffer>;
  problems: readonly SignatureProblem[];
}

/** ssh-keygen, or a refusal that names the package to install. */
function sshKeygen(): string {
  const p = which('ssh-keygen');
  if (!p)
    throw new InputError(
      `ssh-keygen is not installed: signatures are made and checked by OpenSSH's ssh-keygen (Debian package ${SSH_KEYGEN_PACKAGE})`,
    );
  return p;
}

/** A directory of this process's own (mkdtemp, 0700) for the bytes ssh-keygen reads, removed afterwards. */
async function inScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'qemu-harden-sig-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const GOOD = /^Good "qemu-harden" signature (?:for (.*) )?with (\S+) key (SHA256:[A-Za-z0-9+/]{43})$/m;

/** ssh-keygen's own words, its scratch paths named as the operator knows them; its catch-all lines dropped. */
function said(r: { stdout: string; stderr: string }, names: [string, string][]): string {
  let lines = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim());
  for (const [from, to] of names) lines = lines.map((l) => l.replaceAll(from, to));
  lines = lines.filter((l) => l !== '');
  const specific = lines.filter((l) => !/^(Could not verify signature\.|No principal matched\.)$/.test(l));
  return [...new Set(specific.length ? specific : lines)].join('; ');
}

/** The key of a signature that is good over `manifest` in our namespace, whoever made it; or why it is not. */
async function keyOf(
  kg: string,
  manifest: Buffer,
  sigFile: string,
  shown: string,
): Promise<{ type: string; fingerprint: string } | { why: string }> {
  const r = await run(kg, ['-Y', 'check-novalidate', '-n', NAMESPACE, '-s', sigFile], { input: manifest });
  const m = r.exitCode === 0 ? GOOD.exec(r.stdout) : null;
  if (m) return { type: m[2]!, fingerprint: m[3]! };
  return {
    why: `does not sign this ${MANIFEST} in namespace "${NAMESPACE}" (ssh-keygen: ${said(r, [[sigFile, shown]]) || `exit ${r.exitCode}`})`,
  };
}

/** The --signers file the operator names: read once, here. */
export function readSignersFile(path: string): Trust {
  let text: Buffer;
  try {
    if (!statSync(path).isFile()) throw new InputError(`--signers ${visible(path)}: not a regular file`);
    text = readFileSync(path);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(
      `--signers ${visible(path)}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  return { shown: path, text };
}

/**
 * Sign `manifest` with the key in `keyFile` (a private key, or a public key whose private half an ssh-agent holds;
 * ssh-keygen asks for a passphrase on the terminal). Returns the armored signature and who made it.
 */
export async function sign(
  manifest: Buffer,
  keyFile: string,
): Promise<{ signature: Buffer; type: string; fingerprint: string }> {
  const kg = sshKeygen();
  return inScratch(async (dir) => {
    // A file, not standard input: with no terminal ssh-keygen reads a passphrase from standard input.
    const message = join(dir, MANIFEST);
    writeFileSync(message, manifest, { mode: 0o600 });
    const r = await run(kg, ['-Y', 'sign', '-n', NAMESPACE, '-f', keyFile, message], { timeoutMs: 600_000 });
    let signature: Buffer;
    try {
      signature = readFileSync(`${message}.sig`);
    } catch {
      throw new InputError(
        `--key ${visible(keyFile)}: ssh-keygen could not sign with it: ${visible(said(r, [[message, MANIFEST]]) || `exit ${r.exitCode}`)}`,
      );
    }
    const key = await keyOf(kg, manifest, `${message}.sig`, 'the new signature');
    if ('why' in key) throw new Error(`ssh-keygen made a signature it does not accept: ${key.why}`);
    return { signature, ...key };
  });
}

/** Every signature judged against one trust file: the distinct keys it allows, and why the others do not count. */
async function judge(
  kg: string,
  b: SignedBundle,
  trust: Trust,
  dir: string,
): Promise<{ signers: Signer[]; refused: SignatureProblem[] }> {
  const trustFile = join(dir, 'allowed_signers');
  writeFileSync(trustFile, trust.text, { mode: 0o600 });
  const signers: Signer[] = [];
  const refused: SignatureProblem[] = [];
  for (const [path, bytes] of [...b.signatures].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const sigFile = join(dir, 'signature');
    writeFileSync(sigFile, bytes, { mode: 0o600 });
    const names: [string, string][] = [
      [trustFile, trust.shown],
      [sigFile, path],
    ];
    const found = await run(kg, ['-Y', 'find-principals', '-s', sigFile, '-f', trustFile]);
    const principals = found.exitCode === 0 ? found.stdout.split('\n').filter((p) => p !== '') : [];
    let good: Signer | undefined;
    let last = found;
    for (const principal of principals) {
      last = await run(kg, ['-Y', 'verify', '-f', trustFile, '-I', principal, '-n', NAMESPACE, '-s', sigFile], {
        input: b.manifest,
      });
      const m = last.exitCode === 0 ? GOOD.exec(last.stdout) : null;
      if (m) {
        good = { path, principal, type: m[2]!, fingerprint: m[3]! };
        break;
      }
    }
    if (good) {
      if (!signers.some((s) => s.fingerprint === good.fingerprint)) signers.push(good);
      continue;
    }
    const key = await keyOf(kg, b.manifest, sigFile, path);
    if ('why' in key) refused.push({ path, problem: key.why });
    else if (principals.length === 0)
      refused.push({
        path,
        problem: `made by ${key.type} key ${key.fingerprint}, which ${trust.shown} does not allow (ssh-keygen: ${said(found, names)})`,
      });
    else
      refused.push({
        path,
        problem: `made by ${key.type} key ${key.fingerprint} of ${principals.join(', ')}, which ${trust.shown} does not allow for this (ssh-keygen: ${said(last, names)})`,
      });
  }
  return { signers, refused };
}

/**
 * Whether a bundle as read is signed as every trust file requires: each must find `required` distinct keys it
 * allows among the signatures, and every file must match the signed manifest. Returns the signers each trust file
 * allowed, and every problem (empty when the bundle is admitted).
 */
export async function checkSigned(
  b: SignedBundle,
  trusts: readonly Trust[],
  required: number,
): Promise<{ signers: Signer[][]; problems: SignatureProblem[] }> {
  const kg = sshKeygen();
  return inScratch(async (dir) => {
    const problems: SignatureProblem[] = [];
    const signers: Signer[][] = [];
    if (b.signatures.size === 0) problems.push({ path: 'signatures/', problem: 'none: the bundle is not signed' });
    for (const trust of trusts) {
      const j = await judge(kg, b, trust, dir);
      signers.push(j.signers);
      if (j.signers.length >= required) continue;
      for (const r of j.refused)
        if (!problems.some((p) => p.path === r.path && p.problem === r.problem)) problems.push(r);
      problems.push({
        path: trust.shown,
        problem: `requires ${required} distinct signer${required > 1 ? 's' : ''} it lists; ${
          j.signers.length ? `only ${j.signers.map(describeSigner).join(', ')} signed` : 'none signed'
        }`,
      });
    }
    for (const p of b.problems)
      problems.push({ path: p.path, problem: `does not match the signed ${MANIFEST}: ${p.problem}` });
    return { signers, problems };
  });
}

/** The keys behind the good signatures of a bundle, for status on a host whose trust file is gone. */
export async function signedBy(b: SignedBundle): Promise<{ signers: Signer[]; problems: SignatureProblem[] }> {
  const kg = sshKeygen();
  return inScratch(async (dir) => {
    const signers: Signer[] = [];
    const problems: SignatureProblem[] = [];
    for (const [path, bytes] of b.signatures) {
      const sigFile = join(dir, 'signature');
      writeFileSync(sigFile, bytes, { mode: 0o600 });
      const key = await keyOf(kg, b.manifest, sigFile, path);
      if ('why' in key) problems.push({ path, problem: key.why });
      else signers.push({ path, ...key });
    }
    return { signers, problems };
  });
}

/** A signer as the operator reads it: alice@example.com (ED25519 key SHA256:…). */
export const describeSigner = (s: Signer) =>
  s.principal !== undefined ? `${s.principal} (${s.type} key ${s.fingerprint})` : `${s.type} key ${s.fingerprint}`;

/** Checks the number asked for with --require-signatures. */
export function requiredSigners(value: string | undefined): number {
  if (value === undefined) return 1;
  if (!/^[1-9][0-9]{0,2}$/.test(value))
    throw new InputError(`--require-signatures ${value}: expected the number of distinct signers, from 1 to 999`);
  return Number(value);
}
