// What `status` reads of an install: the record (current, previous, an interrupted install's journal, the
// signatures kept with the copies), the drift of every installed file from the record's copy, the users of the
// root's /etc/passwd and the enrolled host's trust file — all through the tree (tree.ts), so that a symlink planted
// in a --root tree is reported, never followed out of it.
import { visible } from '../escape.js';
import { InputError } from '../errors.js';
import { parsePasswd, type PasswdEntry } from '../passwd.js';
import type { Trust } from '../sshsig.js';
import { hostTrust } from './admit.js';
import { hostFiles, type Bundle } from './bundle.js';
import { FILE_MODE } from './plan.js';
import { readRecord, recover, RECORD_DIR, type Journal } from './record.js';
import { OutsideTree, Tree } from './tree.js';

export interface Drift {
  path: string;
  problem: 'missing' | 'changed' | 'mode' | 'not a regular file';
}

export interface Installed {
  root: string;
  current: Bundle;
  previous?: Bundle;
  journal?: Journal;
  /** Every installed file that differs from the record's copy. */
  drift: Drift[];
  users: PasswdEntry[];
  /** The enrolled host's allowed_signers; undefined when the host is not enrolled; a string saying why it cannot be read. */
  trust: Trust | undefined | string;
}

export function readInstalled(rootArg: string): Installed {
  const tree = Tree.open(rootArg);
  try {
    return read(tree);
  } catch (e) {
    const io = e as NodeJS.ErrnoException;
    if (!(e instanceof Error) || typeof io.code !== 'string' || !('syscall' in e)) throw e;
    throw new InputError(
      `cannot read the install under ${visible(tree.root)}: ${io.syscall} failed: ${io.code}${io.code === 'EACCES' ? ' (the install record is root’s alone: run status as root)' : ''}`,
    );
  } finally {
    tree.close();
  }
}

function read(tree: Tree): Installed {
  const root = tree.root;
  let rec;
  try {
    rec = readRecord(tree);
  } catch (e) {
    if (!(e instanceof OutsideTree)) throw e;
    throw new InputError(`the install record under ${visible(root)} cannot be read: ${visible(e.message)}`);
  }
  const journal = rec.journal;
  recover(tree, rec, true);
  if (!rec.current)
    throw new InputError(
      journal
        ? `nothing is installed under ${visible(root)} yet: the first ${journal.action} (started ${visible(journal.started)}) did not complete; run apply again`
        : `nothing is installed under ${visible(root)}: ${visible(tree.shown(RECORD_DIR))} holds no current bundle (run apply first)`,
    );
  const drift: Drift[] = [];
  for (const [path, content] of hostFiles(rec.current)) {
    let now;
    try {
      now = tree.read(path);
    } catch (e) {
      if (!(e instanceof OutsideTree)) throw e;
      drift.push({ path, problem: 'not a regular file' });
      continue;
    }
    if (!now) drift.push({ path, problem: 'missing' });
    else if (!now.content.equals(content)) drift.push({ path, problem: 'changed' });
    else if (now.mode !== FILE_MODE) drift.push({ path, problem: 'mode' });
  }
  let passwd;
  try {
    passwd = tree.read('/etc/passwd');
  } catch (e) {
    if (!(e instanceof OutsideTree)) throw e;
  }
  let trust: Installed['trust'];
  try {
    trust = hostTrust(tree);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    trust = e.message;
  }
  return {
    root,
    trust,
    current: rec.current,
    previous: rec.previous,
    journal,
    drift,
    users: parsePasswd(passwd?.content.toString('utf8') ?? ''),
  };
}
