// Every kind of helper unit qemu-harden knows (src/helpers/helper.ts), in the order a guest's units list them.
import * as N from '../names.js';
import type { Guest } from '../model.js';
import { runsHelper } from '../rules.js';
import type { HelperKind } from './helper.js';
import { passt } from './passt.js';
import { swtpm } from './swtpm.js';

const BY_KIND: Record<N.HelperKind, HelperKind> = { tpm: swtpm, net: passt };

export const HELPERS: readonly HelperKind[] = N.HELPER_KINDS.map((k) => BY_KIND[k]);

/** The helpers this guest runs. */
export function helpersOf(g: Guest): HelperKind[] {
  return HELPERS.filter((h) => runsHelper(h.kind, g));
}
