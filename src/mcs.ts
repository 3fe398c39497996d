// A guest's SELinux category pair, as sVirt gives each libvirt guest one (libvirt's security_selinux.c): every
// guest's QEMU runs in the same virt domain (svirt_t), and the pair of categories of c0…c1023 in its context
// (s0:c12,c345) is what keeps it from another guest's files, labelled with that guest's pair. libvirt draws a
// pair at random when a guest starts and reserves the pairs its running guests hold; a bundle is written once and
// installed later, so here the pair is derived from the guest's name (the same name always gets the same pair),
// taken in the order of the names so that no two guests of a bundle share one, and checked against the pairs the
// host's other processes hold when it is installed (src/confine/selinux.ts).
import { createHash } from 'node:crypto';

/** Categories c0 to c1023: the range MCS policies (Debian's, Fedora's) give system processes. */
export const CATEGORIES = 1024;

export type Pair = readonly [number, number];

/** What the pair depends on: the guest's name, and the pair its answers name when they name one. */
export interface Categorized {
  name: string;
  isolation: { selinuxCategories?: readonly [number, number] };
}

/** The attempt-th pair the name may get: two different categories, the lower first. */
function candidate(name: string, attempt: number): Pair | undefined {
  const h = createHash('sha256').update(`qemu-harden:selinux:${name}:${attempt}`).digest();
  const x = h.readUInt16BE(0) % CATEGORIES;
  const y = h.readUInt16BE(2) % CATEGORIES;
  if (x === y) return undefined;
  return x < y ? [x, y] : [y, x];
}

const key = (p: Pair) => `${p[0]},${p[1]}`;

/**
 * Every guest's pair: the one its answers name, else the first of its name's candidates no guest before it (by
 * name) holds. A guest added later takes a pair of its own without moving the others', unless its name sorts
 * first and its first candidate is theirs, which happens for one bundle in about half a million.
 */
export function categoryPairs(guests: readonly Categorized[]): Map<string, Pair> {
  const out = new Map<string, Pair>();
  const taken = new Set<string>();
  for (const g of guests) {
    const p = g.isolation.selinuxCategories;
    if (p) {
      out.set(g.name, p);
      taken.add(key(p));
    }
  }
  for (const name of guests.map((g) => g.name).sort()) {
    if (out.has(name)) continue;
    for (let attempt = 0; ; attempt++) {
      const c = candidate(name, attempt);
      if (c === undefined || taken.has(key(c))) continue;
      out.set(name, c);
      taken.add(key(c));
      break;
    }
  }
  return out;
}

/** The MCS level of a pair: "s0:c12,c345". */
export const level = (p: Pair) => `s0:c${p[0]},c${p[1]}`;

/** The virt domain, and the types of a guest's own files and of read-only content (Debian's and Fedora's policy). */
export const DOMAIN = 'svirt_t';
export const IMAGE_TYPE = 'svirt_image_t';
export const CONTENT_TYPE = 'virt_content_t';

/** The context a guest's QEMU runs in. */
export const processContext = (p: Pair) => `system_u:system_r:${DOMAIN}:${level(p)}`;

/**
 * The categories a context reaches: those of its range's high level (its clearance: "s0:c12,c345" → [12, 345],
 * "s0-s0:c0.c1023" → all 1024, "s0" → []), or undefined when it has no level. MCS lets a process read and write
 * a file only where its high level dominates the file's categories.
 */
export function categoriesOf(context: string): number[] | undefined {
  const parts = context.split(':');
  if (parts.length < 4) return undefined;
  const range = parts.slice(3).join(':');
  const high = range.includes('-') ? range.slice(range.indexOf('-') + 1) : range;
  const cats = high.includes(':') ? high.slice(high.indexOf(':') + 1) : '';
  if (cats === '') return [];
  const out: number[] = [];
  for (const part of cats.split(',')) {
    const m = /^c(\d+)(?:\.c(\d+))?$/.exec(part);
    if (!m) return undefined;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let c = from; c <= to; c++) out.push(c);
  }
  return out;
}

/** The type of a context ("system_u:system_r:svirt_t:s0" → "svirt_t"). */
export const typeOf = (context: string) => context.split(':')[2] ?? '';
