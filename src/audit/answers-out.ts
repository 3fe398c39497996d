// --answers-out: the reconstructed answers written as YAML, with every choice that was not carried over listed
// as a comment at the top, validated by the one schema first and written all at once (or not at all).
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { stringify } from 'yaml';
import { issuesFor, validate } from '../answers.js';
import { writeFileAtomicAt } from '../atomic.js';
import { InputError } from '../errors.js';
import { shellWord } from '../invocation.js';
import { reconstruct, type NotCarried, type Reconstructed } from './reconstruct.js';
import type { HostView } from './types.js';

const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f]/g, ' ');

/**
 * The rebuilt guests that the answers schema accepts on their own; each other guest is left out and listed with
 * the schema's own words (a guest with nothing to boot, a disk where the unit cannot see it, ...).
 */
export function carriedOver(processes: HostView['processes']): Reconstructed {
  const { doc, notCarried } = reconstruct(processes);
  const guests = doc.guests.filter((g) => {
    const issues = issuesFor({ ...doc, guests: [g] });
    for (const i of issues)
      notCarried.push({
        guest: String(g.name),
        choice: 'the whole guest',
        reason: `${i.path.replace(/^guests\.0\./, '')}: ${i.message}`,
      });
    return issues.length === 0;
  });
  if (guests.length === 0)
    throw new InputError(
      `--answers-out: no running guest can be carried over:\n${notCarried.map((n) => `  ${oneLine(n.guest)}: ${oneLine(n.choice)}: ${oneLine(n.reason)}`).join('\n')}`,
    );
  return { doc: { ...doc, guests }, notCarried };
}

/** Write the reconstructed answers (YAML, with what was not carried over as comments) all at once. */
/** `runAs` is qemu-harden as it runs here from any directory (src/invocation.ts): the header's next command uses it. */
export function writeAnswersOut(
  file: string,
  view: HostView,
  runAs = 'qemu-harden',
): { guests: number; notCarried: NotCarried[] } {
  if (existsSync(file)) throw new InputError(`--answers-out: ${file} already exists; choose another path`);
  if (!existsSync(dirname(file) || '.')) throw new InputError(`--answers-out: ${dirname(file)} does not exist`);
  if (!view.processes.length)
    throw new InputError(
      '--answers-out: no QEMU process is running (or visible to this user): there is nothing to reconstruct',
    );
  const { doc, notCarried } = carriedOver(view.processes);
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
    writeFileAtomicAt(file, head.join('\n') + stringify(doc), 0o644);
  } catch (e) {
    throw new InputError(
      `--answers-out: cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return { guests: doc.guests.length, notCarried };
}
