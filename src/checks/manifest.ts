// The bundle against its MANIFEST.sha256: every listed file intact, nothing unlisted.
import { checkManifest } from '../bundle.js';
import type { Check } from './check.js';

export const manifest: Check<string> = {
  name: 'manifest',
  async run(dir) {
    const problems = checkManifest(dir);
    return {
      status: problems.length ? 'failed' : 'passed',
      findings: problems.map((p) => ({ message: p.problem, file: p.path })),
    };
  },
};
