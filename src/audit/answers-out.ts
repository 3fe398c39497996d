// --answers-out: the reconstructed answers written as YAML, with every choice that was not carried over listed
// as a comment at the top, validated by the one schema first and written all at once (or not at all). Only
// processes the administrator started are carried unless the operator names another (--include-user-process):
// a command line an ordinary user wrote must not become a guest in root's answers.
import { existsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { stringify } from 'yaml';
import { issuesFor, validate } from '../answers.js';
import { writeFileAtomicAt } from '../atomic.js';
import { InputError } from '../errors.js';
import { shellWord, visible } from '../escape.js';
import { userCanOpen, type Need } from './access.js';
import { ownerText } from './owner.js';
import { reconstruct, type NotCarried, type Reconstructed } from './reconstruct.js';
import type { FileFacts, HostView, QemuProcess } from './types.js';

/** A reason or name from a process, as one line of a YAML comment or a message: nothing in it can break the
 * line, hide text or recolour the terminal it is shown on. */
const oneLine = (s: string) => visible(s);

/**
 * The processes named by --include-user-process (a pid, or a -name), among those an ordinary user started. A
 * value that names none of them, or names several, is refused: a name is only unique if one process has it.
 */
function included(processes: QemuProcess[], include: string[]): Set<number> {
  const out = new Set<number>();
  const ordinary = processes.filter((p) => !p.owner.system);
  for (const v of include) {
    const byPid = /^\d+$/.test(v);
    const match = (p: QemuProcess) => (byPid ? p.pid === Number(v) : p.cmd.name === v);
    const found = ordinary.filter(match);
    if (found.length === 0) {
      const system = processes.find(match);
      throw new InputError(
        `--include-user-process ${visible(v)}: no QEMU process an ordinary user started has that ${byPid ? 'pid' : 'name'}${system ? ` (pid ${system.pid} runs as a system user: it is carried without being named)` : ''}`,
      );
    }
    if (found.length > 1)
      throw new InputError(
        `--include-user-process ${visible(v)}: ${found.length} processes have that name (pids ${found.map((p) => p.pid).join(', ')}); name one by its pid`,
      );
    out.add(found[0]!.pid);
  }
  return out;
}

interface Ask {
  path: string;
  need: Need;
  field: string;
  /** Takes the path out of the guest; false when the guest cannot go without it. */
  drop: () => boolean;
}

const NEEDS: Record<Need, string> = {
  read: 'read',
  'read-write': 'read and write',
  directory: 'list and read everything in',
};

/** Every path a rebuilt guest names, with what the guest does with it and how it is taken out. */
function asksOf(g: Record<string, unknown>): Ask[] {
  const asks: Ask[] = [];
  const known = new Set<string>();
  const disks = (g.disks as { path: string; readOnly: boolean }[] | undefined) ?? [];
  for (const d of disks)
    asks.push({
      path: d.path,
      need: d.readOnly ? 'read' : 'read-write',
      field: 'disks',
      drop: () => {
        g.disks = (g.disks as unknown[]).filter((x) => x !== d);
        return true;
      },
    });
  const boot = g.boot as Record<string, string> | undefined;
  for (const k of ['kernel', 'initrd', 'deviceTree'])
    if (boot?.[k])
      asks.push({
        path: boot[k],
        need: 'read',
        field: 'boot',
        drop: () => {
          delete g.boot;
          return true;
        },
      });
  const fw = g.firmware as { code?: string } | undefined;
  if (fw?.code)
    asks.push({
      path: fw.code,
      need: 'read',
      field: 'firmware',
      drop: () => {
        delete g.firmware;
        return true;
      },
    });
  const display = g.display as { tlsDir?: string } | undefined;
  if (display?.tlsDir)
    asks.push({
      path: display.tlsDir,
      need: 'directory',
      field: 'display',
      drop: () => {
        g.display = { mode: 'vnc-unix' };
        return true;
      },
    });
  for (const a of asks) known.add(a.path);
  // Any other path a rebuilt guest may come to hold is checked too; the guest cannot go without it.
  const walk = (v: unknown, where: string): void => {
    if (typeof v === 'string' && v.startsWith('/') && !known.has(v))
      asks.push({ path: v, need: 'read', field: where, drop: () => false });
    else if (Array.isArray(v)) v.forEach((x) => walk(x, where));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, where || k);
  };
  walk(g, '');
  return asks;
}

/**
 * A guest rebuilt from a process an ordinary user started keeps only the paths that user can open themselves,
 * as it needs them, checked with the user's own credentials (the real uid and gid, and the groups, of the
 * process): no disk, kernel, firmware or TLS directory the user could not reach becomes the guest's. False when
 * the guest must be left out altogether.
 */
function keepUsersOwn(g: Record<string, unknown>, p: QemuProcess, note: (choice: string, reason: string) => void) {
  const who = ownerText(p.owner.uids[0], p.owner.user);
  const asks = asksOf(g);
  const r = userCanOpen(
    { uid: p.owner.uids[0]!, gid: p.owner.gids[0]!, groups: p.owner.groups.filter((x) => !Number.isNaN(x)) },
    asks,
  );
  if ('error' in r) {
    note('the whole guest', `started by ${who}, whose paths could not be checked: ${r.error}`);
    return false;
  }
  for (const [i, a] of asks.entries()) {
    if (r.ok[i]) continue;
    if (!a.drop()) {
      note('the whole guest', `${a.path} (${a.field}): ${who}, who started it, cannot ${NEEDS[a.need]} it`);
      return false;
    }
    note(a.field, `${a.path}: ${who}, who started this process, cannot ${NEEDS[a.need]} it, so it is not carried`);
  }
  note(
    'owner',
    `rebuilt from a process ${who} started, named with --include-user-process; every path it keeps is one that user can open`,
  );
  const tls = (g.display as { tlsDir?: string } | undefined)?.tlsDir;
  if (tls)
    note(
      'display',
      `the TLS credentials in ${tls} were chosen by ${who}: whoever holds the key of the CA there can open this console`,
    );
  return true;
}

export interface CarryOptions {
  /** What live.ts read of the images (their qcow2 headers). */
  files?: FileFacts;
  /** --include-user-process: pids or -name names of processes an ordinary user started, to carry all the same. */
  include?: string[];
}

/**
 * The rebuilt guests that may be carried and that the answers schema accepts on their own. A process an ordinary
 * user started is carried only when --include-user-process names it, and then only with the paths that user
 * can open; a process whose command line was not read whole is never carried. Each guest left out is listed
 * with the reason (the schema's own words for a guest with nothing to boot, a disk the unit cannot see, ...).
 */
export function carriedOver(processes: HostView['processes'], opts: CarryOptions = {}): Reconstructed {
  const named = included(processes, opts.include ?? []);
  const left: NotCarried[] = [];
  const carry = processes.filter((p) => {
    if (p.argvTruncated || p.cmd.unread.length) {
      left.push({
        guest: p.guest,
        choice: 'the whole guest',
        reason: `its command line was not read whole (${p.argvTruncated ? 'longer than the read limit' : p.cmd.unread.map((u) => `${u.option}: ${u.reason}`).join('; ')})`,
      });
      return false;
    }
    if (p.owner.system || named.has(p.pid)) return true;
    left.push({
      guest: p.guest,
      choice: 'the whole guest',
      reason: `pid ${p.pid} was started by ${ownerText(p.owner.uids[0], p.owner.user)}, not a system user: its command line is that user's choice (disks, kernel, certificates). To carry it all the same, name it with --include-user-process ${p.pid}; only the paths that user can open are then kept`,
    });
    return false;
  });
  // The system's guests first: a disk is kept by the first guest that names it, and a named user process must not
  // take one from them (its claim would then be dropped for the user not reaching it, leaving neither with it).
  carry.sort((a, b) => Number(b.owner.system) - Number(a.owner.system));
  const { doc, notCarried, pids } = reconstruct(carry, opts.files);
  notCarried.push(...left);
  const byPid = new Map(carry.map((p) => [p.pid, p]));
  const kept: number[] = [];
  const guests = doc.guests.filter((g, i) => {
    const p = byPid.get(pids[i]!)!;
    if (!p.owner.system) {
      const note = (choice: string, reason: string) => notCarried.push({ guest: String(g.name), choice, reason });
      if (!keepUsersOwn(g, p, note)) return false;
    }
    const issues = issuesFor({ ...doc, guests: [g] });
    for (const i of issues)
      notCarried.push({
        guest: String(g.name),
        choice: 'the whole guest',
        reason: `${i.path.replace(/^guests\.0\./, '')}: ${i.message}`,
      });
    if (issues.length === 0) kept.push(pids[i]!);
    return issues.length === 0;
  });
  if (guests.length === 0)
    throw new InputError(
      `--answers-out: no running guest can be carried over:\n${notCarried.map((n) => `  ${oneLine(n.guest)}: ${oneLine(n.choice)}: ${oneLine(n.reason)}`).join('\n')}`,
    );
  return { doc: { ...doc, guests }, notCarried, pids: kept };
}

/** Write the reconstructed answers (YAML, with what was not carried over as comments) all at once. */
/** `runAs` is qemu-harden as it runs here from any directory (src/invocation.ts): the header's next command uses it. */
export function writeAnswersOut(
  file: string,
  view: HostView,
  include: string[] = [],
  runAs = 'qemu-harden',
  force = false,
): { guests: number; notCarried: NotCarried[] } {
  // The format is the one the name asks for, as generate reads it back: JSON for .json, YAML otherwise.
  const json = file.endsWith('.json');
  if (!json && /\.[A-Za-z0-9]+$/.test(basename(file)) && !/\.ya?ml$/.test(file))
    throw new InputError(
      `--answers-out: ${visible(file)}: the name must end in .yaml, .yml or .json, the formats generate reads`,
    );
  if (existsSync(file) && !force)
    throw new InputError(`--answers-out: ${visible(file)} already exists; choose another path, or add --force`);
  if (!existsSync(dirname(file) || '.'))
    throw new InputError(`--answers-out: ${visible(dirname(file))} does not exist`);
  if (!view.processes.length)
    throw new InputError(
      '--answers-out: no QEMU process is running (or visible to this user): there is nothing to reconstruct',
    );
  const { doc, notCarried } = carriedOver(view.processes, { files: view.files, include });
  validate(doc);
  const again = (me: string) => `${me} generate --answers ${shellWord(resolve(file))} --out qemu-harden-bundle`;
  const head = [
    '# Answers reconstructed by `qemu-harden audit --answers-out` from the QEMU command lines running on this host.',
    `# Review them, then: ${oneLine(again(runAs))}`,
    ...(runAs === 'qemu-harden' ? [] : [`# (once qemu-harden is installed: ${oneLine(again('qemu-harden'))})`]),
    ...(notCarried.length
      ? [
          '#',
          '# Not carried over (left at the secure default):',
          ...notCarried.map((n) => `#   ${oneLine(n.guest)}: ${oneLine(n.choice)}: ${oneLine(n.reason)}`),
        ]
      : ['# Every choice of the running guests was carried over.']),
    '',
  ];
  try {
    // JSON has no comments: what was not carried over is in the report only.
    writeFileAtomicAt(file, json ? `${JSON.stringify(doc, null, 2)}\n` : head.join('\n') + stringify(doc), 0o644);
  } catch (e) {
    throw new InputError(
      `--answers-out: cannot write ${visible(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return { guests: doc.guests.length, notCarried };
}
