// A command as a record (after git's `help COMMAND` and gemini-cli's command descriptions): its name, usage,
// flags with their defaults, what it does, its exit codes, one example and how it runs. The parser, the global
// help, each command's own help and docs/cli.md are all read from the records, so a flag is added in one place:
// one line in its command's `flags`. This module imports nothing heavy: `--help` and `--version` load only it,
// the records and the entry.
import { InputError } from './errors.js';
import { visible } from './escape.js';
import type { Io } from './io.js';

export const EXIT = { ok: 0, findings: 1, usage: 2, internal: 70, cancelled: 130 } as const;

export class UsageError extends InputError {}

export interface Flag {
  /** As typed, with the name of its value when it takes one: `--root PATH`, `--dry-run`. A trailing ` ...`
   * (`--set PATH=VALUE ...`) makes it repeatable: each use adds a value. */
  flag: string;
  help: string;
  /** What holds when the flag is not given, in words (shown as "default: ..."). */
  default?: string;
}

/** How the operator runs qemu-harden here (src/invocation.ts), so that every command printed can be pasted. */
export interface RunAs {
  /** From the current directory: `qemu-harden`, `npm start --`, `node dist/qemu-harden.js`. */
  me: string;
  /** The same as root: `sudo qemu-harden`, or sudo with node and the script by path. */
  sudo: string;
  /** From any directory, for files read later (a bundle's README): `qemu-harden`, or node and the script by path. */
  anywhere: string;
}

export interface Args {
  operands: string[];
  /** The value of a flag that takes one; undefined when it was not given. */
  value(flag: string): string | undefined;
  /** Every value of a repeatable flag, in the order given. */
  values(flag: string): string[];
  has(flag: string): boolean;
}

export interface Command {
  /** What the operator types; the interview, which runs when no command is given, is listed as `interview`. */
  name: string;
  /** One line for the global help's list of commands. */
  summary: string;
  /** What follows the name in each usage line: operands, and the flags whose place matters (required ones,
   * alternatives). Every flag a line does not name is appended to it as `[FLAG]`. */
  usage: string[];
  /** What it does, a paragraph a string. `code` in backquotes. */
  about: string[];
  flags: Flag[];
  /** At most this many operands (words that are not flags) after the name. */
  operands: number;
  /** The statuses this command exits with, besides 70 (an internal error), which every command may. */
  exits: [status: number, when: string][];
  example: { args: string; says: string; asRoot?: boolean };
  /** The page of docs/ that says more. */
  manual?: string;
  run(args: Args, io: Io, runAs: RunAs): Promise<number>;
}

/** The interview runs when no command is given: its usage lines have no name. */
export const IMPLICIT = 'interview';

const GLOBAL_FLAGS: Flag[] = [
  { flag: '--help', help: 'this help; after a command, that command’s own' },
  { flag: '-h', help: 'the same as --help' },
  { flag: '--version', help: 'the version of qemu-harden' },
  { flag: '-V', help: 'the same as --version' },
];

interface FlagShape {
  name: string;
  value: string | undefined;
  repeat: boolean;
}

export function shapeOf(f: Flag): FlagShape {
  const [name, value, more] = f.flag.split(' ');
  return { name: name!, value, repeat: more === '...' };
}

/** Every flag any command knows, by name. A flag spelled alike in two commands takes a value in both or in neither:
 * the command is found after the flags, so a flag's value must never be mistaken for the command. */
function flagTable(commands: Command[]): Map<string, FlagShape> {
  const table = new Map<string, FlagShape>();
  for (const f of [...GLOBAL_FLAGS, ...commands.flatMap((c) => c.flags)]) {
    const s = shapeOf(f);
    const seen = table.get(s.name);
    if (seen && (seen.value === undefined) !== (s.value === undefined))
      throw new Error(`${s.name} takes a value in one command and none in another`);
    if (!seen) table.set(s.name, s);
  }
  return table;
}

export interface Parsed {
  command: Command | undefined;
  /** The command word as typed (undefined for the interview). */
  word: string | undefined;
  args: Args;
  help: boolean;
  version: boolean;
  flags: string[];
}

/** Reads argv against the records: the first word that is not a flag or a flag's value is the command. */
export function parse(argv: string[], commands: Command[], runAs: () => RunAs): Parsed {
  const table = flagTable(commands);
  const single = new Map<string, string>();
  const lists = new Map<string, string[]>();
  const given: string[] = [];
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const shape = table.get(name);
    if (shape?.value !== undefined) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      if (shape.repeat) lists.set(name, [...(lists.get(name) ?? []), value]);
      else if (single.has(name)) throw new UsageError(`${name} given twice`);
      else single.set(name, value);
      given.push(name);
    } else if (shape && eq < 0) given.push(name);
    else if (arg.startsWith('-') && arg !== '-')
      throw new UsageError(`unknown option ${visible(arg)} (see '${runAs().me} --help')`);
    else words.push(arg);
  }
  const word = words[0];
  const command = commands.find((c) =>
    word === undefined ? c.name === IMPLICIT : c.name === word && word !== IMPLICIT,
  );
  const has = (f: string) => given.includes(f);
  return {
    command,
    word,
    help: has('--help') || has('-h'),
    version: has('--version') || has('-V'),
    flags: [...new Set(given)],
    args: {
      operands: words.slice(1),
      value: (f) => single.get(f),
      values: (f) => lists.get(f) ?? [],
      has,
    },
  };
}

/** A parsed command line holds only what its command takes. */
export function check(p: Parsed, runAs: () => RunAs): Command {
  const c = p.command;
  if (!c) throw new UsageError(`unknown command '${visible(p.word ?? '')}' (see '${runAs().me} --help')`);
  const own = new Set(c.flags.map((f) => shapeOf(f).name));
  const who = c.name === IMPLICIT ? 'the interview' : `'${c.name}'`;
  for (const f of p.flags)
    if (!own.has(f)) throw new UsageError(`${f} does not apply to ${who} (see '${runAs().me} help ${c.name}')`);
  if (p.args.operands.length > c.operands)
    throw new UsageError(`unexpected argument ${visible(p.args.operands[c.operands]!)}`);
  return c;
}

// Rendering. The terminal gets plain text wrapped to 80 columns with the commands as this process was started;
// docs/cli.md gets Markdown with the commands as they read once qemu-harden is installed.

const WIDTH = 80;

/** A usage line's words, with each (…) and […] group kept whole, so that it never breaks inside an alternative. */
function groups(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === ' ' && depth === 0) {
      if (cur) out.push(cur);
      cur = '';
      continue;
    }
    if (ch === '(' || ch === '[') depth++;
    if (ch === ')' || ch === ']') depth = Math.max(0, depth - 1);
    cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

/** Words filled into lines of at most WIDTH columns: the first begins with `lead`, the others with `indent` spaces. */
function fill(words: string[], indent: number, lead = ' '.repeat(indent)): string {
  const lines: string[] = [];
  let line = lead;
  let empty = true;
  for (const w of words) {
    if (!empty && line.length + 1 + w.length > WIDTH) {
      lines.push(line);
      line = ' '.repeat(indent) + w;
    } else line += (empty ? '' : ' ') + w;
    empty = false;
  }
  lines.push(line);
  return lines.join('\n');
}

const prose = (text: string, indent: number, lead?: string) =>
  fill(
    text
      .replace(/`([^`]+)`/g, '$1')
      .split(' ')
      .filter(Boolean),
    indent,
    lead,
  );

/** Each usage line in full. A flag named in none of the command's lines is appended to every line, in brackets. */
export function usageLines(c: Command): string[] {
  const named = new Set(c.usage.flatMap((u) => u.match(/--?[A-Za-z][\w-]*/g) ?? []));
  const placed = (f: Flag) => named.has(shapeOf(f).name);
  const rest = c.flags.filter((f) => !placed(f)).map((f) => `[${f.flag}]`);
  return c.usage.map((u) => [...(c.name === IMPLICIT ? [] : [c.name]), ...(u ? [u] : []), ...rest].join(' '));
}

const exitsOf = (c: Command): [number, string][] =>
  [
    ...c.exits,
    [EXIT.internal, 'internal error: a bug in qemu-harden, never bad input (please report it)'] as [number, string],
  ].sort(([a], [b]) => a - b);

/** Two columns: a key, and its text wrapped beside it (under it when the key is longer than the column). */
function columns(rows: [string, string][], indent: number): string[] {
  const w = Math.min(20, Math.max(...rows.map(([k]) => k.length)));
  const pad = ' '.repeat(indent);
  return rows.map(([k, v]) =>
    k.length > w ? `${pad}${k}\n${prose(v, indent + w + 2)}` : prose(v, indent + w + 2, `${pad}${k.padEnd(w)}  `),
  );
}

const usage = (u: string, me: string) => fill(groups(`${me} ${u}`), 6, '  ');

const withDefault = (f: Flag) => `${f.help}${f.default ? ` (default: ${f.default})` : ''}`;

/** `COMMAND --help` and `help COMMAND`. */
export function commandHelp(c: Command, r: RunAs): string {
  const out = [
    prose(`qemu-harden ${c.name === IMPLICIT ? '(no command)' : c.name}: ${c.summary}`, 2, ''),
    '',
    'Usage:',
  ];
  out.push(...usageLines(c).map((u) => usage(u, r.me)));
  for (const p of c.about) out.push('', prose(p, 0));
  if (c.flags.length)
    out.push(
      '',
      'Options:',
      ...columns(
        c.flags.map((f) => [f.flag, withDefault(f)]),
        2,
      ),
    );
  out.push(
    '',
    'Exit status:',
    ...columns(
      exitsOf(c).map(([s, w]) => [String(s), w]),
      2,
    ),
  );
  // The example is one line however long: a command broken by a newline runs without its end when pasted.
  out.push('', 'Example:', `  ${c.example.asRoot ? r.sudo : r.me} ${c.example.args}`, prose(c.example.says, 4));
  if (c.manual) out.push('', `More in ${c.manual} of the qemu-harden repository.`);
  return out.join('\n') + '\n';
}

/** `--help` and `help` alone. */
export function globalHelp(commands: Command[], r: RunAs, version: string): string {
  const out = [`qemu-harden ${version}: a hardened deployment bundle for QEMU guests`, '', 'Usage:'];
  out.push(...commands.flatMap((c) => usageLines(c).map((u) => usage(u, r.me))));
  out.push(usage('--help | --version', r.me), '', 'Commands:');
  out.push(
    ...columns(
      commands.map((c) => [c.name === IMPLICIT ? '(none)' : c.name, c.summary]),
      2,
    ),
  );
  out.push(
    '',
    'Options of every command:',
    ...columns(
      GLOBAL_FLAGS.map((f) => [f.flag, f.help]),
      2,
    ),
  );
  out.push(
    '',
    'A command’s options with their defaults, its exit statuses and an example:',
    `  ${r.me} help COMMAND`,
    `  ${r.me} COMMAND --help`,
    '',
    prose(
      'Exit status: 0 ok, 1 findings, 2 invalid usage or input, 70 internal error (a bug: please report it), 130 cancelled.',
      0,
    ),
  );
  return out.join('\n') + '\n';
}

/** docs/cli.md, before prettier lays out its tables. */
export function reference(commands: Command[]): string {
  const out: string[] = [
    '# Command-line reference',
    '',
    '<!-- Generated by `npm run docs` from the command records in src/commands.ts; test/cli.test.ts fails when this file differs from them. Edit the records, not this file. -->',
    '',
    'Every command here is written as it reads once qemu-harden is installed (`qemu-harden`). From a clone it is `npm start --`, and as root node and the script by absolute path (root need not have npm); qemu-harden itself prints every command it suggests the way it was started, so that it can be pasted. `qemu-harden help COMMAND` prints the same records on the terminal.',
    '',
    '| command | what it does |',
    '| --- | --- |',
    ...commands.map((c) => `| [\`${c.name === IMPLICIT ? 'qemu-harden' : c.name}\`](#${c.name}) | ${c.summary} |`),
    '',
    '```',
    ...commands.flatMap((c) => usageLines(c).map((u) => `qemu-harden ${u}`)),
    'qemu-harden --help | --version',
    '```',
    '',
    'Exit status: **0** ok, **1** findings, **2** invalid usage or input (the message names the field, key or argument and the reason), **70** internal error (a bug in qemu-harden: the message says which command failed and how to report it, never a stack trace), **130** cancelled. Each command below lists the statuses it uses.',
    '',
  ];
  for (const c of commands) {
    out.push(`## ${c.name}`, '', '```', ...usageLines(c).map((u) => `qemu-harden ${u}`), '```', '');
    for (const p of c.about) out.push(p, '');
    if (c.flags.length) {
      out.push('| option | default | what it does |', '| --- | --- | --- |');
      for (const f of c.flags) out.push(`| \`${f.flag}\` | ${f.default ?? ''} | ${f.help.replace(/\|/g, '\\|')} |`);
      out.push('');
    }
    out.push('| exit status | when |', '| --- | --- |');
    for (const [s, w] of exitsOf(c)) out.push(`| ${s} | ${w} |`);
    out.push('', 'Example:', '', '```sh', `${c.example.asRoot ? 'sudo ' : ''}qemu-harden ${c.example.args}`, '```', '');
    out.push(c.example.says, '');
    if (c.manual) out.push(`More: [${c.manual.replace(/^docs\//, '')}](${c.manual.replace(/^docs\//, '')}).`, '');
  }
  return out.join('\n');
}
