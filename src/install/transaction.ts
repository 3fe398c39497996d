// The files of one install, under the journal (record.ts begin/commit): every file the plan replaces or removes is
// copied to the run's backup directory first, then each new file is put in place with the one atomic write
// (src/atomic.ts), root:root 0644, and each removed file is deleted. Every path is reached through the tree
// (tree.ts): a symlink swapped in after planning is refused at the moment of use, never written through.
import { writeFileAtomic } from '../atomic.js';
import { FILE_MODE, type Plan } from './plan.js';
import { BACKUPS } from './paths.js';
import type { Dir, Tree } from './tree.js';

/** The backup directory of one install, named by its UTC time to the second. */
export function backupDirFor(): string {
  const stamp = new Date()
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/[-:]/g, '');
  return `${BACKUPS}/${stamp}`;
}

const split = (hostPath: string) => {
  const i = hostPath.lastIndexOf('/');
  return { dir: hostPath.slice(0, i), name: hostPath.slice(i + 1) };
};

/** What the transaction has done so far, for the operator when it stops midway. */
export interface Progress {
  /** The file (or the record) the transaction is at, for an error's message. */
  at?: string;
  backedUp: string[];
  installed: string[];
  removed: string[];
}

/**
 * Copy the file at `hostPath` into the backup directory (root's alone, 0700), as it is now. An earlier backup of
 * the same path in that directory (an install in the same second) is kept.
 */
function backUp(tree: Tree, backupDir: string, hostPath: string, progress: Progress): void {
  progress.at = hostPath;
  const current = tree.read(hostPath);
  if (!current) return;
  const { dir, name } = split(hostPath);
  tree.inParent(
    `${backupDir}${dir}/${name}`,
    (d: Dir) => writeFileAtomic(d, name, current.content, { mode: current.mode & 0o777, keepExisting: true }),
    0o700,
  );
  progress.backedUp.push(hostPath);
}

/** Back up what the plan replaces and removes, install its files, then delete the removed ones. */
export function transact(tree: Tree, p: Plan, backupDir: string, progress: Progress): void {
  for (const c of p.changes) if (c.kind === 'changed') backUp(tree, backupDir, c.hostPath, progress);
  for (const c of p.changes) {
    const { dir, name } = split(c.hostPath);
    progress.at = c.hostPath;
    tree.inParent(
      `${dir}/${name}`,
      (d) => writeFileAtomic(d, name, c.content, { mode: FILE_MODE, owner: { uid: 0, gid: 0 } }),
      0o755,
    );
    progress.installed.push(c.hostPath);
  }
  for (const r of p.removals) {
    backUp(tree, backupDir, r, progress);
    progress.at = r;
    tree.inParent(r, (d, name) => {
      const st = d.lstat(name);
      if (st?.isFile()) {
        d.unlink(name);
        d.sync();
      }
    });
    progress.removed.push(r);
  }
}
