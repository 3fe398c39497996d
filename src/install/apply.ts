// `qemu-harden apply DIR`: install a bundle directory, admitted in full — its signatures when the host is enrolled
// or --signers names a trust file, its manifest, only paths qemu-harden installs, and every file regenerated from
// its own answers.json (admit.ts) — through the walk in run.ts.
import type { Io } from '../io.js';
import { APPLY_ADMISSION, signatureAdmission, type SigningOptions } from './admit.js';
import { readBundleDir } from './bundle.js';
import { readRecord } from './record.js';
import { runInstall, type InstallOptions, type Installed } from './run.js';

export async function apply(
  dir: string,
  rootArg: string,
  o: InstallOptions,
  io: Io,
  signing: SigningOptions = {},
): Promise<Installed> {
  return runInstall('apply', rootArg, o, io, async (tree) => ({
    bundle: readBundleDir(dir),
    admission: [...signatureAdmission(tree, signing), ...APPLY_ADMISSION],
    record: readRecord(tree),
  }));
}
