#!/usr/bin/env node
// The command line: argv read against the command records (commands.ts), then the one command run. `--help` and
// `--version` load nothing but the records; each command imports what it uses when it runs.
import { check, commandHelp, EXIT, globalHelp, parse, type RunAs } from './command.js';
import { COMMANDS } from './commands.js';
import { InputError } from './errors.js';
import { visible } from './escape.js';
import { invocation, invocationAnywhere, sudoInvocation } from './invocation.js';
import type { Io } from './io.js';
import { VERSION } from './version.js';

export { EXIT } from './command.js';

/**
 * What the user sees when qemu-harden itself fails (a bug, not bad input): what failed, that nothing was half
 * written, and how to report it. Never a stack trace.
 */
export function internalErrorMessage(e: unknown, argv: string[]): string {
  const what = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message.split('\n')[0]}` : String(e);
  const runAs = runAsHere();
  let command: string;
  try {
    command = parse(argv, COMMANDS, runAs).word ?? 'the interview';
  } catch {
    // The records themselves are what failed: the first word will do.
    command = argv.find((x) => !x.startsWith('-')) ?? 'the interview';
  }
  return (
    `qemu-harden: internal error in '${command}': ${what}\n` +
    'qemu-harden: this is a bug in qemu-harden, not a problem with your input.\n' +
    `qemu-harden: please report it with the output of '${runAs().me} --version', the command line and the answers file (exit status ${EXIT.internal}).\n`
  );
}

/**
 * How this process was started, worked out once and only when a message needs it. The script's path comes from
 * outside (argv), so the forms printed on the terminal go through visible(); the form for files read later is
 * checked where it is written (a bundle README takes only two absolute paths).
 */
function runAsHere(): () => RunAs {
  let r: RunAs | undefined;
  return () => (r ??= { me: visible(invocation()), sudo: visible(sudoInvocation()), anywhere: invocationAnywhere() });
}

export async function main(argv: string[], io: Io): Promise<number> {
  const runAs = runAsHere();
  try {
    const p = parse(argv, COMMANDS, runAs);
    if (p.version) {
      io.out(`${VERSION}\n`);
      return EXIT.ok;
    }
    if (p.help) {
      io.out(
        p.word === undefined
          ? globalHelp(COMMANDS, runAs(), VERSION)
          : commandHelp(p.command ?? check(p, runAs), runAs()),
      );
      return EXIT.ok;
    }
    return await check(p, runAs).run(p.args, io, runAs());
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`qemu-harden: ${e.message.split('\n').join('\nqemu-harden: ')}\n`);
      return EXIT.usage;
    }
    throw e;
  }
}
