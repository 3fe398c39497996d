// The bundle's answers against this machine, where the bundle is verified: a disk path that is a character
// device, a FIFO or a directory here, or a block device holding this host's own storage (a mounted file system,
// swap, a volume built on it), is a finding, as at `generate`. `apply` asks the same of the target, always.
import { existsSync } from 'node:fs';
import { ANSWERS } from '../bundle-layout.js';
import { targetProblems } from '../target.js';
import type { BundleUnderCheck, Check } from './check.js';

export const hostDisks: Check<BundleUnderCheck> = {
  name: 'disks on this host',
  nothingToCheck: (b) =>
    b.answers.guests.some((g) => g.disks.some((d) => existsSync(d.path)))
      ? undefined
      : 'no disk path of the bundle exists on this host',
  async run(b) {
    const problems = targetProblems('/', b.answers);
    const present = b.answers.guests.flatMap((g) => g.disks).filter((d) => existsSync(d.path)).length;
    return {
      status: problems.length ? 'failed' : 'passed',
      detail: `${present} disk path${present === 1 ? '' : 's'} present here`,
      findings: problems.map((message) => ({ message, file: ANSWERS })),
    };
  },
};
