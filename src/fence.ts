// The fence between guests in systemd's view of the file system. Every guest's QEMU must not even see the
// other guests' disks, boot files and directories, whatever their owners and modes say. Listing each other
// guest's files in every unit would make the bundle grow with the square of the guest count, so the fence
// works on directories instead: each directory that holds guest files is replaced by an empty tmpfs
// (TemporaryFileSystem=), and each guest's own files are bound back into it (BindPaths=). A unit then names
// a handful of directories plus its own files, however many guests the host runs.
import * as G from './guest.js';
import type { Answers, Guest } from './model.js';
import { GUEST_OWNED_DIRS } from './names.js';
import { SYSTEM_DIRS, underDir } from './places.js';

/** Shared directories that hold far more than guest files; a guest file directly inside one is hidden alone. */
const SHARED_DIRS = [
  '/var',
  '/var/lib',
  '/var/cache',
  '/var/log',
  '/var/tmp',
  '/var/spool',
  '/var/opt',
  '/var/local',
  '/var/mail',
  '/var/backups',
  '/home',
  '/root',
  '/tmp',
  '/mnt',
  '/media',
  '/opt',
  '/srv',
];

/** Characters TemporaryFileSystem= reads literally without quoting (it splits on ':' and has no escape for it). */
const PLAIN = /^[A-Za-z0-9_@+=,./-]+$/;

interface GuestFence {
  /** Directories replaced by an empty, read-only tmpfs in this guest's namespace. */
  tmpfs: string[];
  /** This guest's own files and directories inside those, bound back at the same path. */
  bind: { path: string; writable: boolean }[];
  /** Other guests' paths no directory covers (files in system directories, block devices): hidden one by one. */
  inaccessible: string[];
}

interface HostFence {
  /** Each fenced directory with the guests that own something inside it. */
  roots: Map<string, Set<string>>;
  /** Paths hidden one by one, with the guests that use them. */
  single: Map<string, Set<string>>;
}

const cache = new WeakMap<Answers, HostFence>();

const parent = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';
const depth = (p: string) => (p === '/' ? 0 : p.split('/').length - 1);
const ancestorOrSelf = (dir: string, path: string) => underDir(path, dir);

/** The guest-owned paths the fence must keep apart: files QEMU opens, disks on block devices, shared folders. */
function guestPaths(g: Guest): { path: string; device: boolean }[] {
  return [
    ...G.filesOf(g).map((f) => ({ path: f.path, device: false })),
    ...g.disks.filter((d) => d.blockDevice).map((d) => ({ path: d.path, device: true })),
    ...g.shares.map((sh) => ({ path: sh.path, device: false })),
  ];
}

function hostFence(a: Answers): HostFence {
  const hit = cache.get(a);
  if (hit) return hit;
  const keep = [a.host.qemuBinary, ...a.guests.flatMap((g) => G.tlsDirsOf(g).map((t) => t.path))];
  const fenceable = (dir: string) =>
    depth(dir) >= 1 &&
    PLAIN.test(dir) &&
    !SHARED_DIRS.includes(dir) &&
    !SYSTEM_DIRS.some((s) => underDir(dir, s) || underDir(s, dir)) &&
    !GUEST_OWNED_DIRS.some((b) => underDir(b, dir)) &&
    !keep.some((k) => ancestorOrSelf(dir, k));

  const owners = new Map<string, Set<string>>();
  const single = new Map<string, Set<string>>();
  const add = (m: Map<string, Set<string>>, k: string, who: string) =>
    (m.get(k) ?? m.set(k, new Set()).get(k)!).add(who);
  for (const g of a.guests) {
    for (const { path, device } of guestPaths(g)) {
      if (GUEST_OWNED_DIRS.some((b) => underDir(path, b))) continue;
      const dir = parent(path);
      if (device || !fenceable(dir)) add(single, path, g.name);
      else add(owners, dir, g.name);
    }
  }

  // Sibling directories merge into their parent (/srv/qemu/alpha and /srv/qemu/beta become /srv/qemu), so a
  // directory per guest still costs one line; a directory inside another fenced one is covered by it.
  let dirs = [...owners.keys()];
  for (;;) {
    const byParent = new Map<string, string[]>();
    for (const d of dirs) {
      const p = parent(d);
      if (depth(p) >= 2 && fenceable(p)) byParent.set(p, [...(byParent.get(p) ?? []), d]);
    }
    const merged = [...byParent].filter(([, kids]) => kids.length > 1);
    if (merged.length === 0) break;
    const gone = new Set(merged.flatMap(([, kids]) => kids));
    dirs = [...dirs.filter((d) => !gone.has(d)), ...merged.map(([p]) => p)];
  }
  dirs = dirs.filter((d) => !dirs.some((o) => o !== d && underDir(d, o)));

  const roots = new Map<string, Set<string>>(dirs.map((d) => [d, new Set<string>()]));
  for (const [dir, who] of owners) {
    const root = dirs.find((r) => underDir(dir, r))!;
    for (const w of who) roots.get(root)!.add(w);
  }
  const fence = { roots, single };
  cache.set(a, fence);
  return fence;
}

/** What QEMU's unit puts back inside the fence: the guest's directories, files, TLS directories and the shared
 * folders QEMU itself serves (9p). */
function qemuOwn(a: Answers, g: Guest): { path: string; writable: boolean }[] {
  return [
    ...[G.runtimeDir(g), G.stateDir(g), G.logsDir(g)].map((path) => ({ path, writable: true })),
    ...G.filesOf(g)
      .filter((f) => f.path !== G.uefiVars(g))
      .map((f) => ({ path: f.path, writable: f.access === 'rw' })),
    ...G.tlsDirsOf(g).map((t) => ({ path: t.path, writable: false })),
    ...G.qemuShares(a, g).map((sh) => ({ path: sh.path, writable: sh.access === 'rw' })),
  ];
}

/**
 * The fence for one of guest g's units. `own` is what that unit puts back: by default QEMU's (its directories,
 * files and TLS directories); a helper unit (src/helpers/) puts back only its own state directories, so the
 * guest's disks and other files are not there for it either.
 */
export function guestFence(a: Answers, g: Guest, own = qemuOwn(a, g)): GuestFence {
  if (a.guests.length < 2) return { tmpfs: [], bind: [], inaccessible: [] };
  const h = hostFence(a);
  const others = (who: Set<string>) => who.size > (who.has(g.name) ? 1 : 0);
  const tmpfs = [...GUEST_OWNED_DIRS, ...[...h.roots].filter(([, who]) => others(who)).map(([d]) => d)].sort();
  const bind = own
    .filter((o) => tmpfs.some((t) => underDir(o.path, t)))
    .sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  const mine = new Set(guestPaths(g).map((p) => p.path));
  const inaccessible = [...h.single]
    .filter(([p, who]) => !mine.has(p) && others(who))
    .map(([p]) => p)
    .sort();
  return { tmpfs, bind, inaccessible };
}
