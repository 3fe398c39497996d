// Files: the modes of each QEMU's unix sockets and disk images, whether one guest's user can read another
// guest's images, which images let QEMU guess their format, and where qcow2 backing chains lead. Backing files
// are found by reading the qcow2 header here (a small fixed format), never by running qemu-img on a file a
// guest may have written.
import { closeSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { finding, type AuditCheck, type Finding, type QemuProcess } from './types.js';

function stat(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

export const modeText = (st: Stats) =>
  `mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${st.uid}:${st.gid}`;

/** The backing file named in a qcow2 header, or undefined (not qcow2, no backing file, unreadable). */
export function qcow2Backing(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(20);
    if (readSync(fd, head, 0, 20, 0) < 20 || head.readUInt32BE(0) !== 0x514649fb) return undefined;
    const offset = head.readBigUInt64BE(8);
    const size = head.readUInt32BE(16);
    if (offset === 0n || size === 0 || size > 1023) return undefined;
    const name = Buffer.alloc(size);
    if (readSync(fd, name, 0, size, Number(offset)) < size) return undefined;
    return name.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** The guest disks of a process that are local files or block devices (not firmware, not network disks). */
export function localDisks(p: QemuProcess) {
  return p.cmd.disks.filter(
    (d) => !d.pflash && (d.protocol === 'file' || d.protocol === 'host_device') && d.path.startsWith('/'),
  );
}

interface Creds {
  uid: number;
  gids: number[];
}

function credsOf(p: QemuProcess): Creds | undefined {
  const uid = p.uids[1];
  if (uid === undefined || Number.isNaN(uid)) return undefined;
  const gid = Number((p.status.get('Gid') ?? '').split(/\s+/)[1]);
  const groups = (p.status.get('Groups') ?? '').split(/\s+/).filter(Boolean).map(Number);
  return { uid, gids: [gid, ...groups] };
}

/** Plain file permissions: may this user read `path` (search every directory on the way, then read the file)? */
export function mayRead(c: Creds, path: string, stat: (p: string) => Stats | undefined): boolean {
  const bit = (st: Stats, r: number) =>
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
  run: (view) =>
    view.processes.flatMap((p) => {
      const monitors = new Set(
        p.cmd.chardevs.filter((c) => /^-(qmp|monitor)|^-mon/.test(c.via) && c.unixPath).map((c) => c.unixPath!),
      );
      const vnc = p.cmd.vnc?.opts.get('display');
      const paths = new Set([
        ...p.cmd.chardevs.filter((c) => c.unixPath && c.tcp === undefined).map((c) => c.unixPath!),
        ...(vnc?.startsWith('unix:') ? [vnc.slice(5)] : []),
        ...p.unixSockets,
      ]);
      return [...paths].flatMap((path): Finding[] => {
        const st = stat(path);
        if (!st || !st.isSocket() || !(st.mode & 0o002)) return [];
        const monitor = monitors.has(path);
        return [
          finding(
            'files.socket-mode',
            monitor ? 'high' : 'medium',
            p,
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
  run: (view) =>
    view.processes.flatMap((p) =>
      localDisks(p).flatMap((d): Finding[] => {
        const st = stat(d.path);
        if (!st || !(st.mode & 0o006)) return [];
        const writable = !!(st.mode & 0o002);
        return [
          finding(
            'files.image-mode',
            writable ? 'high' : 'medium',
            p,
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
  run: (view) => {
    const out: Finding[] = [];
    const stats = new Map<string, Stats | undefined>();
    const cached = (p: string) => {
      if (!stats.has(p)) stats.set(p, stat(p));
      return stats.get(p);
    };
    const creds = new Map(view.processes.map((p) => [p, credsOf(p)]));
    const disksOf = new Map(view.processes.map((p) => [p, new Set(localDisks(p).map((d) => d.path))]));
    for (const owner of view.processes) {
      for (const d of localDisks(owner)) {
        const st = cached(d.path);
        if (!st || st.mode & 0o004) continue;
        const readers = view.processes.filter((other) => {
          if (other === owner) return false;
          const c = creds.get(other);
          if (!c || c.uid === 0) return false;
          if (disksOf.get(other)!.has(d.path)) return false;
          return mayRead(c, d.path, cached);
        });
        if (!readers.length) continue;
        out.push(
          finding(
            'files.cross-guest',
            'high',
            owner,
            `${d.path}: ${modeText(st)}; readable by ${readers.map((r) => `${r.guest} (pid ${r.pid}, uid ${r.uids[1]})`).join(', ')}`,
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
  run: (view) =>
    view.processes.flatMap((p) =>
      localDisks(p)
        .filter((d) => !d.format)
        .map((d) =>
          finding(
            'files.format-probed',
            'medium',
            p,
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
  run: (view) =>
    view.processes.flatMap((p) => {
      const out: Finding[] = [];
      for (const d of localDisks(p).filter((x) => x.format !== 'raw')) {
        const home = dirname(d.path);
        let cur = d.path;
        for (let depth = 0; depth < 16; depth++) {
          const name = qcow2Backing(cur);
          if (name === undefined || /^[a-z+]+:/.test(name)) break;
          const full = resolve(dirname(cur), name);
          if (!(full === home || full.startsWith(home + '/'))) {
            out.push(
              finding(
                'files.backing-file',
                'medium',
                p,
                `${cur}: qcow2 backing file "${name}" (${full})`,
                'A backing file outside the guest’s own files is a resource the guest reaches through its image: shared with other guests, or chosen by whoever wrote the header.',
                'The bundle gives QEMU only the disks in the answers; its AppArmor profile and mount namespace leave every other path out of reach, so a foreign backing file fails to open instead of being read.',
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
