// Each guest's machine type and CPU model against the bundle's own QEMU binary (`-machine help`, `-cpu help`):
// a name the binary does not know makes the unit fail at start. Skipped where that binary is not on this host.
import { existsSync } from 'node:fs';
import { ANSWERS } from '../bundle-layout.js';
import { checkQemuCaps } from '../qemucaps.js';
import type { BundleUnderCheck, Check } from './check.js';

export const qemuCaps: Check<BundleUnderCheck> = {
  name: 'qemu machine and CPU',
  unavailable: (b) =>
    existsSync(b.answers.host.qemuBinary) ? undefined : `${b.answers.host.qemuBinary} is not on this host`,
  async run(b) {
    const caps = (await checkQemuCaps(b.answers))!;
    return {
      status: caps.findings.length ? 'failed' : 'passed',
      detail: caps.detail,
      findings: caps.findings.map((f) => ({ message: `${f.path}: ${f.message}`, file: ANSWERS })),
    };
  },
};
