// Every kind of helper unit qemu-harden knows (src/helpers/helper.ts), in the order a guest's units list them.
import * as N from '../names.js';
import type { Answers, Guest } from '../model.js';
import { runsHelper } from '../rules.js';
import type { HelperKind } from './helper.js';
import { passt } from './passt.js';
import { swtpm } from './swtpm.js';
import { virtiofsd } from './virtiofsd.js';

const BY_KIND = Object.fromEntries(
  N.HELPER_KINDS.map((k): [N.HelperKind, HelperKind] => [
    k,
    k === 'tpm' ? swtpm : k === 'net' ? passt : virtiofsd(Number(k.slice('fs'.length))),
  ]),
) as Record<N.HelperKind, HelperKind>;

export const HELPERS: readonly HelperKind[] = N.HELPER_KINDS.map((k) => BY_KIND[k]);

/** The helpers this guest runs on the answers' target. */
export function helpersOf(a: Pick<Answers, 'host'>, g: Guest): HelperKind[] {
  return HELPERS.filter((h) => runsHelper(h.kind, a, g));
}
