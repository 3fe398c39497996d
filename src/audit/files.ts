// Files: the modes of each QEMU's unix sockets and disk images, whether one guest's user can read another
// guest's images, which images let QEMU guess their format, and where qcow2 backing chains lead. Every fact
// comes from live.ts's stat of each path (no check opens a file); backing files come from the qcow2 header,
// read here as a small fixed format from a regular file only, never by running qemu-img on a file a guest may
// have written.
import { dirname, resolve } from 'node:path';
import type { FileFact, Sidecar, Within } from '../sidecar.js';
import { finding, type AuditCheck, type FileFacts, type Finding, type QemuProcess } from './types.js';

/** What stat said about a path, when it said anything. */
const factOf = (files: FileFacts, path: string): FileFact | undefined => {
  const w = files.stat.get(path);
  return w && 'ok' in w ? w.ok : undefined;
};

export const modeText = (st: { mode: number; uid: number; gid: number }) =>
  `mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${st.uid}:${st.gid}`;

/** Backing files followed down one chain. */
export const BACKING_DEPTH = 16;

/**
 * The backing file named in a qcow2 header: undefined when the file is not qcow2 or names none; an error when it
 * is not a regular file (never opened then) or could not be read in time.
 */
export async function qcow2Backing(path: string, reader: Sidecar): Promise<Within<string | undefined>> {
  const head = await reader.read(path, 0, 20);
  if ('error' in head) return head;
  const h = head.ok;
  if (h.length < 20 || h.readUInt32BE(0) !== 0x514649fb) return { ok: undefined };
  const offset = h.readBigUInt64BE(8);
  const size = h.readUInt32BE(16);
  if (offset === 0n || size === 0 || size > 1023 || offset > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: undefined };
  const name = await reader.read(path, Number(offset), size);
  if ('error' in name) return name;
  return { ok: name.ok.length < size ? undefined : name.ok.toString('utf8') };
}

/** The guest disks of a process that are local files or block devices (not firmware, not network disks). */
export function localDisks(p: QemuProcess) {
  return p.cmd.disks.filter(
    (d) => !d.pflash && (d.protocol === 'file' || d.protocol === 'host_device') && d.path.startsWith('/'),
  );
}

export interface Creds {
  uid: number;
  gids: number[];
}

function credsOf(p: QemuProcess): Creds | undefined {
  const uid = p.owner.uids[1];
  if (uid === undefined || Number.isNaN(uid)) return undefined;
  const gid = p.owner.gids[1];
  return { uid, gids: [...(gid === undefined ? [] : [gid]), ...p.owner.groups] };
}

/** Plain file permissions: may this user read `path` (search every directory on the way, then read the file)? */
export function mayRead(c: Creds, path: string, stat: (p: string) => FileFact | undefined): boolean {
  const bit = (st: FileFact, r: number) =>
    st.uid === c.uid ? (st.mode >> 6) & r : c.gids.includes(st.gid) ? (st.mode >> 3) & r : st.mode & r;
  let dir = dirname(path);
  for (;;) {
    const st = stat(dir);
    if (!st || !bit(st, 1)) return false;
    if (dir === '/') break;
    dir = dirname(dir);
  }
  const st = stat(path);
  return !!st && !!bit(st, 4);
}

const socketModes: AuditCheck = {
  name: 'files.socket-mode',
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view) =>
    view.processes.flatMap((p) => {
      const monitors = new Set(
        p.cmd.chardevs.filter((c) => /^-(qmp|monitor)|^-mon/.test(c.via) && c.unixPath).map((c) => c.unixPath!),
      );
      const vnc = p.cmd.vnc?.opts.get('display');
      const paths = new Set([
        ...p.cmd.chardevs.filter((c) => c.unixPath && c.tcp === undefined).map((c) => c.unixPath!),
        ...(vnc?.startsWith('unix:') ? [vnc.slice(5)] : []),
        ...p.unixSockets.map((u) => u.path!),
      ]);
      return [...paths].flatMap((path): Finding[] => {
        const st = factOf(view.files, path);
        if (!st || st.type !== 'socket' || !(st.mode & 0o002)) return [];
        const monitor = monitors.has(path);
        return [
          finding(
            'files.socket-mode',
            monitor ? 'high' : 'medium',
            p,
            `${monitor ? 'monitor socket' : 'socket'} ${path} is writable by every user`,
            `${path}: ${modeText(st)}`,
            monitor
              ? 'Any user of the host can connect to this monitor socket and control QEMU completely: add devices, read guest memory, or migrate the guest away.'
              : 'Any user of the host can connect to this socket and talk to the guest’s console or device behind it.',
            'Each guest’s sockets live in its own runtime directory (mode 0750, owned by the guest’s user) with UMask=0077.',
            null,
          ),
        ];
      });
    }),
};

const imageModes: AuditCheck = {
  name: 'files.image-mode',
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view) =>
    view.processes.flatMap((p) =>
      localDisks(p).flatMap((d): Finding[] => {
        const st = factOf(view.files, d.path);
        if (!st || (st.type !== 'regular file' && st.type !== 'block device') || !(st.mode & 0o006)) return [];
        const writable = !!(st.mode & 0o002);
        return [
          finding(
            'files.image-mode',
            writable ? 'high' : 'medium',
            p,
            `disk ${d.path} is ${writable ? 'readable and writable' : 'readable'} by every user`,
            `${d.path}: ${modeText(st)}`,
            `Disk images must be protected from other guests unless the user shares them on purpose; this one is ${writable ? 'readable and writable' : 'readable'} by every user of the host, every other guest’s QEMU included.`,
            'Each disk belongs to its guest’s user (tmpfiles.d), mode 0600 (0400 read-only), and other guests’ disks do not exist in a guest’s mount namespace.',
            'guests.N.disks',
          ),
        ];
      }),
    ),
};

const crossGuest: AuditCheck = {
  name: 'files.cross-guest',
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view) => {
    const out: Finding[] = [];
    const stat = (path: string) => factOf(view.files, path);
    // Whether a user can read a path depends on its credentials alone: judged once per distinct credentials.
    const creds = new Map(view.processes.map((p) => [p, credsOf(p)]));
    const byCreds = new Map<string, { c: Creds; procs: QemuProcess[] }>();
    for (const p of view.processes) {
      const c = creds.get(p);
      if (!c || c.uid === 0) continue;
      const key = `${c.uid}:${c.gids.join(',')}`;
      byCreds.set(key, { c, procs: [...(byCreds.get(key)?.procs ?? []), p] });
    }
    const disksOf = new Map(view.processes.map((p) => [p, new Set(localDisks(p).map((d) => d.path))]));
    const seen = new Set<string>();
    for (const owner of view.processes) {
      for (const d of localDisks(owner)) {
        const key = `${owner.pid}\0${d.path}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const st = stat(d.path);
        if (!st || (st.type !== 'regular file' && st.type !== 'block device') || st.mode & 0o004) continue;
        const readers = [...byCreds.values()]
          .filter((g) => mayRead(g.c, d.path, stat))
          .flatMap((g) => g.procs)
          .filter((other) => other !== owner && !disksOf.get(other)!.has(d.path))
          .sort((x, y) => x.pid - y.pid);
        if (!readers.length) continue;
        out.push(
          finding(
            'files.cross-guest',
            'high',
            owner,
            `disk ${d.path} is readable by another guest's user`,
            `${d.path}: ${modeText(st)}; readable by ${readers
              .slice(0, 8)
              .map((r) => `${r.guest} (pid ${r.pid}, uid ${r.owner.uids[1]})`)
              .join(', ')}${readers.length > 8 ? ` and ${readers.length - 8} more` : ''}`,
            'A guest must not reach another guest’s data: this image is readable by the user another guest’s QEMU runs as, so an escape from that guest reads this disk.',
            'Each guest has its own user, its disks belong to that user alone, and its unit hides every other guest’s files.',
            'guests.N.disks',
          ),
        );
      }
    }
    return out;
  },
};

const formatProbe: AuditCheck = {
  name: 'files.format-probed',
  tool: null,
  debianPackage: null,
  judges: 'command line',
  run: (view) =>
    view.processes.flatMap((p) =>
      localDisks(p)
        .filter((d) => !d.format)
        .map((d) =>
          finding(
            'files.format-probed',
            'medium',
            p,
            `disk ${d.path} has no format: QEMU guesses it`,
            `disk without format=: ${d.raw}`,
            'Disk images are untrusted input. Without an explicit format QEMU guesses it from the contents, and a guest that writes a qcow2 header into its raw disk makes the next start open whatever backing file it names.',
            'Every disk in the bundle has its format spelled out (qcow2 or raw); the format is never probed.',
            'guests.N.disks.N.format',
          ),
        ),
    ),
};

const backing: AuditCheck = {
  name: 'files.backing-file',
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view) =>
    view.processes.flatMap((p) => {
      const out: Finding[] = [];
      for (const d of localDisks(p).filter((x) => x.format !== 'raw')) {
        const home = dirname(d.path);
        let cur = d.path;
        for (let depth = 0; depth < BACKING_DEPTH; depth++) {
          const b = view.files.backing.get(cur);
          const name = b && 'ok' in b ? b.ok : undefined;
          if (name === undefined || /^[a-z+]+:/.test(name)) break;
          const full = resolve(dirname(cur), name);
          if (!(full === home || full.startsWith(home + '/'))) {
            out.push(
              finding(
                'files.backing-file',
                'medium',
                p,
                `${cur} has a backing file outside ${home}: ${full}`,
                `${cur}: qcow2 backing file "${name}" (${full})`,
                'A backing file outside the guest’s own files is a resource the guest reaches through its image: shared with other guests, or chosen by whoever wrote the header.',
                'The bundle gives QEMU only the disks in the answers; its mount namespace and its mandatory access control leave every other path out of reach, so a foreign backing file fails to open instead of being read.',
                'guests.N.disks',
              ),
            );
            break;
          }
          cur = full;
        }
      }
      return out;
    }),
};

export const fileChecks: AuditCheck[] = [socketModes, imageModes, crossGuest, formatProbe, backing];
