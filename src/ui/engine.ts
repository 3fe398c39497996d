// The interview's heavy half, imported right after the first frame: the answers schema and its checks, the
// generators and the writer, the host probe and systemd-analyze's exposure. Nothing here is needed to draw the
// first screen, and everything the wizard writes still goes through validate(), plan() and writeBundle(),
// exactly as `generate` does.
import { issuesFor } from '../answers.js';
import { answersObject } from '../model.js';
import { requiredRisks } from '../rules.js';
import type { Checker } from './draft.js';

export { InputError, validate } from '../answers.js';
export { writeBundle } from '../bundle.js';
export { answersJson, plan, sha256 } from '../plan.js';
export { probeHost, suggestFormat } from '../probe.js';
export { exposureOf, exposureTarget } from '../verify.js';

export const checker: Checker = {
  issues: issuesFor,
  risks: (d) => {
    const r = answersObject.safeParse({ ...d, acceptedRisks: [] });
    return r.success ? requiredRisks(r.data) : undefined;
  },
};
