// Admission: the checks a bundle passes, as it was read (bundle.ts), before anything is planned or changed. They
// run in order; a check marked `stops` ends the admission when it finds a problem, because the checks after it
// rely on what it holds.
//
// What each one protects against (docs/install.md, "What apply trusts"):
// - signatures (when the host is enrolled or the operator names an allowed_signers file, docs/signing.md): whoever
//   hands the host a bundle must also hold a key the trust file allows. It comes first and judges the bytes as
//   read, which are the bytes every later step uses; its refusal is an exit 2, like any input refused.
// - manifest: accidents — a file changed, truncated, added or lost since generate wrote the bundle. It is no
//   protection against whoever edits a bundle on purpose: they recompute the manifest.
// - installable paths: a bundle, however consistent, installs only qemu-harden's own files (paths.ts).
// - regenerated: every file is byte for byte what this qemu-harden generates from the bundle's own answers.json,
//   so a unit with User=root, a unit without -sandbox, or an extra file is refused even with a recomputed
//   manifest. What remains trusted is answers.json itself, which the operator reviews (and verify judges); its
//   schema and rules hold it to what qemu-harden allows.
import { ANSWERS, MANIFEST, README, readmeRunAs } from '../bundle-layout.js';
import { InputError } from '../errors.js';
import { visible } from '../escape.js';
import type { Answers } from '../model.js';
import { checkSigned, HOST_TRUST, readSignersFile, requiredSigners, type Trust } from '../sshsig.js';
import { VERSION } from '../version.js';
import type { Bundle, BundleProblem } from './bundle.js';
import { BUNDLE_TOP, installable } from './paths.js';
import { OutsideTree, type Tree } from './tree.js';

export interface Admission {
  problems: BundleProblem[];
  /** The validated answers, once a check has validated them. */
  answers?: Answers;
}

export interface AdmissionCheck {
  name: string;
  /** What the refusal says about the problems this check finds. */
  refusal: string;
  /** Whether a problem here ends the admission. */
  stops: boolean;
  /** Whether its refusal is input refused (exit 2, like a bad argument) rather than a finding (exit 1). */
  usage?: boolean;
  run(b: Bundle): Promise<Admission>;
}

/** A refusal of a `usage` check: exit 2, before anything was planned or changed. */
export class AdmissionRefused extends InputError {}

/** What the operator asked of signatures: another allowed_signers file to satisfy, and how many signers. */
export interface SigningOptions {
  /** --signers FILE, as the operator gave it. */
  signersFile?: string;
  /** --require-signatures N, as the operator gave it. */
  require?: string;
}

/** The enrolled host's trust file, read through the tree: undefined when the host is not enrolled. */
export function hostTrust(tree: Tree): Trust | undefined {
  let read;
  try {
    read = tree.read(HOST_TRUST);
  } catch (e) {
    if (!(e instanceof OutsideTree)) throw e;
    throw new InputError(
      `${visible(tree.shown(HOST_TRUST))} cannot be read inside ${visible(tree.root)}: ${visible(e.why)}; nothing was changed. It is the trust file of an enrolled host: make it a regular file, or remove it to stop requiring signatures.`,
    );
  }
  return read && { shown: tree.shown(HOST_TRUST), text: read.content };
}

/**
 * The signature check for an install into this tree, or none: the enrolled host's trust file (no option skips it)
 * and the operator's --signers file must each find the required number of distinct signers they allow.
 */
export function signatureAdmission(tree: Tree, o: SigningOptions): AdmissionCheck[] {
  const required = requiredSigners(o.require);
  const trusts = [hostTrust(tree), o.signersFile === undefined ? undefined : readSignersFile(o.signersFile)].filter(
    (t): t is Trust => t !== undefined,
  );
  if (trusts.length === 0) {
    if (o.require !== undefined)
      throw new InputError(
        `--require-signatures needs an allowed_signers file to count signers in: --signers FILE, or an enrolled host (${visible(tree.shown(HOST_TRUST))})`,
      );
    return [];
  }
  return [signatures(trusts, required)];
}

function signatures(trusts: Trust[], required: number): AdmissionCheck {
  return {
    name: 'signatures',
    refusal: `the bundle does not pass the signature check against ${trusts.map((t) => visible(t.shown)).join(' and ')}`,
    stops: true,
    usage: true,
    run: async (b) => ({ problems: (await checkSigned(b, trusts, required)).problems }),
  };
}

const manifest: AdmissionCheck = {
  name: 'manifest',
  refusal: 'the bundle does not match its manifest',
  stops: true,
  run: async (b) => ({ problems: b.problems }),
};

const guests: AdmissionCheck = {
  name: 'guests',
  refusal: 'its answers.json does not name its guests',
  stops: true,
  run: async (b) => ({ problems: b.guestProblems }),
};

const paths: AdmissionCheck = {
  name: 'installable paths',
  refusal: 'the bundle holds files qemu-harden never installs',
  stops: false,
  async run(b) {
    const allowed = installable(b.guests.map((g) => g.name));
    const problems: BundleProblem[] = [];
    for (const rel of b.files.keys()) {
      if (rel.startsWith('root/') ? allowed.has(rel.slice('root'.length)) : BUNDLE_TOP.includes(rel)) continue;
      problems.push({ path: rel, problem: 'not a path qemu-harden installs' });
    }
    return { problems };
  },
};

const regenerated: AdmissionCheck = {
  name: 'regenerated',
  refusal: `the bundle is not what qemu-harden ${VERSION} generates from its own answers.json (a bundle from another version: generate it again from its answers.json with this one)`,
  stops: false,
  async run(b) {
    // The schema and the generators are loaded here, when a bundle is admitted, never before.
    const [{ validate }, { plan }] = await Promise.all([import('../answers.js'), import('../plan.js')]);
    let answers: Answers;
    try {
      answers = validate(b.answers);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      return { problems: e.message.split('\n').map((problem) => ({ path: ANSWERS, problem })) };
    }
    const problems: BundleProblem[] = [];
    const expected = new Set<string>();
    // The README names qemu-harden the way it ran where the bundle was written: read that form back, so the
    // README is regenerated as written and every other file compared byte for byte.
    const readme = b.files.get(README);
    for (const f of plan(answers, { runAs: readme === undefined ? undefined : readmeRunAs(readme.toString('utf8')) })) {
      expected.add(f.path);
      const actual = f.path === MANIFEST ? b.manifest : b.files.get(f.path);
      if (actual === undefined) problems.push({ path: f.path, problem: 'missing, though answers.json produces it' });
      else if (!actual.equals(Buffer.from(f.content)))
        problems.push({ path: f.path, problem: 'differs from what answers.json produces' });
    }
    for (const rel of b.files.keys())
      if (!expected.has(rel)) problems.push({ path: rel, problem: 'not a file answers.json produces' });
    return { problems, answers };
  },
};

/** What `apply` and `export ansible` hold a bundle to. */
export const APPLY_ADMISSION: readonly AdmissionCheck[] = [manifest, guests, paths, regenerated];
/**
 * What `rollback` holds a recorded bundle to: it was admitted when it was applied, and may come from an earlier
 * qemu-harden whose files this one would generate differently, so it is not regenerated.
 */
export const RECORD_ADMISSION: readonly AdmissionCheck[] = [manifest, guests, paths];

export interface Refusal {
  check: AdmissionCheck;
  problems: BundleProblem[];
}

/** Run the checks in order; every refusal, and the validated answers when a check produced them. */
export async function admit(
  b: Bundle,
  checks: readonly AdmissionCheck[],
): Promise<{ refusals: Refusal[]; answers?: Answers }> {
  const refusals: Refusal[] = [];
  let answers: Answers | undefined;
  for (const check of checks) {
    const r = await check.run(b);
    answers ??= r.answers;
    if (r.problems.length === 0) continue;
    if (check.usage)
      throw new AdmissionRefused(
        `refused: ${describeRefusals([{ check, problems: r.problems }])}\nNothing was changed.`,
      );
    refusals.push({ check, problems: r.problems });
    if (check.stops) break;
  }
  return { refusals, answers };
}

/** The refusals as the operator reads them, one problem a line. */
export function describeRefusals(refusals: Refusal[]): string {
  return refusals
    .map(
      (r) => `${r.check.refusal}:\n${r.problems.map((p) => `  ${visible(p.path)}: ${visible(p.problem)}`).join('\n')}`,
    )
    .join('\n');
}
