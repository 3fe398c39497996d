#!/usr/bin/env node
// The command line. Each command imports what it uses when it runs: `--help` and `--version` load nothing
// else, the wizard's first frame waits for neither the answers model nor the generators, and React and Ink are
// imported only when the wizard is about to be shown.
import { InputError } from './errors.js';
import type { Io } from './io.js';
import { VERSION } from './version.js';

export const EXIT = { ok: 0, findings: 1, usage: 2, internal: 70, cancelled: 130 } as const;

/**
 * What the user sees when qemu-harden itself fails (a bug, not bad input): what failed, that nothing was half
 * written, and how to report it. Never a stack trace.
 */
export function internalErrorMessage(e: unknown, argv: string[]): string {
  const what = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message.split('\n')[0]}` : String(e);
  const command = argv.find((x) => !x.startsWith('-')) ?? 'the interview';
  return (
    `qemu-harden: internal error in '${command}': ${what}\n` +
    'qemu-harden: this is a bug in qemu-harden, not a problem with your input.\n' +
    `qemu-harden: please report it with qemu-harden --version, the command line and the answers file (exit status ${EXIT.internal}).\n`
  );
}

export class UsageError extends InputError {}

const HELP = `qemu-harden ${VERSION} — a hardened deployment bundle for QEMU guests

Usage:
  qemu-harden [--answers FILE]          interview on a terminal, then write a bundle
  qemu-harden generate (--preset NAME | --answers FILE) [--set PATH=VALUE ...] --out DIR
                       [--force] [--dry-run] [--json]
  qemu-harden presets [--json]
  qemu-harden verify DIR [--json]
  qemu-harden apply DIR [--root PATH] [--dry-run] [--yes] [--start]
  qemu-harden rollback [--root PATH] [--dry-run] [--yes] [--start]
  qemu-harden status [--root PATH] [--json]
  qemu-harden import libvirt (DOMAIN.xml... | --running) [--qemu-conf FILE] [--out FILE] [--force] [--json]
  qemu-harden import proxmox VMID.conf... [--storage-cfg FILE] [--out FILE] [--force] [--json]
  qemu-harden audit [--json] [--answers-out FILE]
  qemu-harden export ansible [BUNDLE ...] [--host NAME=BUNDLE ...] --out DIR [--force]
  qemu-harden --help | --version

Commands:
  generate   validate the answers and write the bundle to DIR (atomically: all or nothing)
  presets    list the shipped presets
  verify     check a bundle: manifest, answers, and every file read by the tool that will read it
  apply      install a bundle: show the changes against what is installed (files and guests), back up
             replaced and removed files, stop removed guests, create users and directories, reload udev,
             AppArmor and systemd, record what was installed
  rollback   install again the bundle installed before the current one, through the same steps
  status     per installed guest: running or not, its live confinement, and drift of the installed files
  import     turn libvirt domain XML or Proxmox VE guest configurations into one answers file; report per
             guest what was carried, changed to the secure default, or refused
  audit      judge the QEMU processes running on this host (read-only); as root it sees everything
  export     write an Ansible role, playbook and inventory that install each host's bundle (ansible: one
             bundle per host; a BUNDLE goes to the host named like its directory)

Options:
  --preset NAME      start from a shipped preset (see 'qemu-harden presets')
  --answers FILE     start from an answers file (JSON or YAML), e.g. a bundle's answers.json
  --set PATH=VALUE   change one field before validation, e.g. --set guests.0.disks.0.path=/srv/a.img
                     (VALUE is read as JSON when it parses as JSON, otherwise as a string)
  --out DIR          where to write the bundle; an existing non-empty DIR needs --force
  --force            replace an existing bundle directory
  --dry-run          print the files that would be written, write nothing
  --json             machine-readable output
  --root PATH        apply, rollback: install into this tree instead of / (only offline steps run);
                     status: read the record and files of this tree (no processes)
  --yes              apply, rollback: do not ask for confirmation
  --start            apply, rollback: enable and start new guests, restart guests whose unit or profile changed
  --qemu-conf FILE   import libvirt: read VNC/SPICE TLS settings from this qemu.conf
  --storage-cfg FILE import proxmox: resolve storage:volume names through this storage.cfg
  --running          import libvirt: read every running domain through 'virsh dumpxml'
  --answers-out FILE audit: write answers rebuilt from the running guests (a new file)
  --host NAME=BUNDLE export: the host of inventory hostname NAME gets BUNDLE

Exit status: 0 ok, 1 findings (verify, audit, status; a failed step or start in apply or rollback) or guests
imported with secure defaults (import), 2 invalid usage or input or a guest refused (import), 70 internal error
(a bug: please report it), 130 cancelled.
`;

interface Parsed {
  command: string | undefined;
  positional: string[];
  flags: Map<string, string | true>;
  sets: string[];
  hosts: string[];
}

const VALUE_FLAGS = new Set([
  '--preset',
  '--answers',
  '--set',
  '--out',
  '--root',
  '--qemu-conf',
  '--storage-cfg',
  '--answers-out',
  '--host',
]);
const BOOL_FLAGS = new Set([
  '--force',
  '--dry-run',
  '--json',
  '--yes',
  '--start',
  '--running',
  '--help',
  '--version',
  '-h',
  '-V',
]);

export function parseArgs(argv: string[]): Parsed {
  const out: Parsed = { command: undefined, positional: [], flags: new Map(), sets: [], hosts: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (VALUE_FLAGS.has(name)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      if (name === '--set') out.sets.push(value);
      else if (name === '--host') out.hosts.push(value);
      else if (out.flags.has(name)) throw new UsageError(`${name} given twice`);
      else out.flags.set(name, value);
    } else if (BOOL_FLAGS.has(arg)) out.flags.set(arg, true);
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg} (see qemu-harden --help)`);
    else if (out.command === undefined) out.command = arg;
    else out.positional.push(arg);
  }
  return out;
}

function allow(p: Parsed, allowed: string[], maxPositional: number): void {
  for (const k of p.flags.keys())
    if (!allowed.includes(k)) throw new UsageError(`${k} does not apply to '${p.command ?? 'the wizard'}'`);
  if (p.sets.length && !allowed.includes('--set'))
    throw new UsageError(`--set does not apply to '${p.command ?? 'the wizard'}'`);
  if (p.hosts.length && !allowed.includes('--host'))
    throw new UsageError(`--host does not apply to '${p.command ?? 'the wizard'}'`);
  if (p.positional.length > maxPositional) throw new UsageError(`unexpected argument ${p.positional[maxPositional]}`);
}

async function generate(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--preset', '--answers', '--set', '--out', '--force', '--dry-run', '--json'], 0);
  const preset = p.flags.get('--preset') as string | undefined;
  const answersFile = p.flags.get('--answers') as string | undefined;
  const outDir = p.flags.get('--out') as string | undefined;
  if (!!preset === !!answersFile) throw new UsageError('generate needs exactly one of --preset NAME or --answers FILE');
  if (!outDir && !p.flags.has('--dry-run')) throw new UsageError('generate needs --out DIR (or --dry-run)');
  const [{ applySet, validate }, { writeBundle }, { assertHostPaths }, { plan }, { readAnswersFile }, { loadPreset }] =
    await Promise.all([
      import('./answers.js'),
      import('./bundle.js'),
      import('./hostpaths.js'),
      import('./plan.js'),
      import('./sources/file.js'),
      import('./sources/preset.js'),
    ]);
  let doc = preset ? loadPreset(preset).answers : readAnswersFile(answersFile!);
  for (const s of p.sets) doc = applySet(doc, s);
  const answers = validate(doc);
  assertHostPaths(answers);
  const files = plan(answers);
  if (p.flags.has('--dry-run')) {
    if (p.flags.has('--json'))
      io.out(
        JSON.stringify(
          {
            out: outDir ?? null,
            written: false,
            files: files.map(({ path, mode, why }) => ({ path, mode: mode.toString(8), why })),
          },
          null,
          2,
        ) + '\n',
      );
    else io.out(files.map((f) => `would write ${f.path}  (${f.why})`).join('\n') + '\n');
    return EXIT.ok;
  }
  writeBundle(outDir!, files, p.flags.has('--force'));
  const me = (await import('./invocation.js')).invocation();
  if (p.flags.has('--json'))
    io.out(
      JSON.stringify(
        {
          out: outDir,
          written: true,
          files: files.map(({ path, mode, why }) => ({ path, mode: mode.toString(8), why })),
        },
        null,
        2,
      ) + '\n',
    );
  else
    io.out(
      `Wrote ${files.length} files to ${outDir} for ${answers.guests.length} guest${answers.guests.length > 1 ? 's' : ''}.\n` +
        `Next: ${me} verify ${outDir}   then   ${me} apply ${outDir} --dry-run\n`,
    );
  return EXIT.ok;
}

async function presets(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--json'], 0);
  const all = (await import('./sources/preset.js')).listPresets();
  if (p.flags.has('--json'))
    io.out(
      JSON.stringify(
        all.map(({ name, description, notes }) => ({ name, description, notes })),
        null,
        2,
      ) + '\n',
    );
  else {
    const w = Math.max(...all.map((x) => x.name.length));
    io.out(
      all
        .flatMap((x) => [`${x.name.padEnd(w)}  ${x.description}`, ...x.notes.map((n) => `${' '.repeat(w)}    ${n}`)])
        .join('\n') + '\n',
    );
  }
  return EXIT.ok;
}

async function verifyCmd(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--json'], 1);
  const dir = p.positional[0];
  if (!dir) throw new UsageError('verify needs the bundle directory: qemu-harden verify DIR');
  const { verifyBundle, formatReport } = await import('./verify.js');
  const report = await verifyBundle(dir);
  io.out(p.flags.has('--json') ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
  return report.findings.length > 0 ? EXIT.findings : EXIT.ok;
}

const OUTCOME = { ok: EXIT.ok, findings: EXIT.findings, usage: EXIT.usage, cancelled: EXIT.cancelled } as const;

async function applyCmd(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--root', '--dry-run', '--yes', '--start'], 1);
  const dir = p.positional[0];
  if (!dir) throw new UsageError('apply needs the bundle directory: qemu-harden apply DIR');
  const root = (p.flags.get('--root') as string | undefined) ?? '/';
  const { runInstall } = await import('./lifecycle.js');
  const opts = { dryRun: p.flags.has('--dry-run'), yes: p.flags.has('--yes'), start: p.flags.has('--start') };
  return OUTCOME[await runInstall('apply', dir, root, opts, io)];
}

async function rollbackCmd(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--root', '--dry-run', '--yes', '--start'], 0);
  const { rollback } = await import('./rollback.js');
  const opts = { dryRun: p.flags.has('--dry-run'), yes: p.flags.has('--yes'), start: p.flags.has('--start') };
  return OUTCOME[await rollback((p.flags.get('--root') as string | undefined) ?? '/', opts, io)];
}

async function statusCmd(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--root', '--json'], 0);
  const { status, formatStatus } = await import('./status.js');
  const report = status((p.flags.get('--root') as string | undefined) ?? '/');
  io.out(p.flags.has('--json') ? JSON.stringify(report, null, 2) + '\n' : formatStatus(report));
  return report.ok ? EXIT.ok : EXIT.findings;
}

async function importCmd(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--qemu-conf', '--storage-cfg', '--running', '--out', '--force', '--json'], Infinity);
  const { importCommand } = await import('./importcmd.js');
  const str = (k: string) => p.flags.get(k) as string | undefined;
  return importCommand(
    {
      kind: p.positional[0],
      files: p.positional.slice(1),
      qemuConf: str('--qemu-conf'),
      storageCfg: str('--storage-cfg'),
      running: p.flags.has('--running'),
      out: str('--out'),
      force: p.flags.has('--force'),
      json: p.flags.has('--json'),
    },
    io,
  );
}

async function auditCmd(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--json', '--answers-out'], 0);
  const { audit, counts, formatAudit } = await import('./audit/command.js');
  const { readHost } = await import('./audit/proc.js');
  const view = readHost();
  const report = audit(view);
  const answersOut = p.flags.get('--answers-out') as string | undefined;
  if (answersOut)
    report.answersOut = {
      file: answersOut,
      ...(await import('./audit/answers-out.js')).writeAnswersOut(answersOut, view),
    };
  io.out(p.flags.has('--json') ? JSON.stringify(report, null, 2) + '\n' : formatAudit(report));
  return counts(report) > 0 ? EXIT.findings : EXIT.ok;
}

async function exportCmd(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--host', '--out', '--force'], Infinity);
  const [format, ...bundles] = p.positional;
  if (format !== 'ansible')
    throw new UsageError(
      `export needs a format: qemu-harden export ansible BUNDLE... --out DIR${format ? ` ('${format}' is not one)` : ''}`,
    );
  const outDir = p.flags.get('--out') as string | undefined;
  if (!outDir) throw new UsageError('export ansible needs --out DIR');
  const { exportAnsible } = await import('./export/ansible.js');
  const r = exportAnsible(bundles, p.hosts, outDir, p.flags.has('--force'));
  io.out(
    `Wrote an Ansible role and ${r.hosts.length} bundle${r.hosts.length > 1 ? 's' : ''} to ${r.out}:\n` +
      r.hosts.map((h) => `  ${h.host}  ${h.bundle}  (${h.guests.join(', ')})\n`).join('') +
      `Next: cd ${r.out} && ansible-playbook -i inventory.ini site.yml --check --diff\n`,
  );
  return EXIT.ok;
}

async function wizard(p: Parsed, io: Io): Promise<number> {
  allow(p, ['--answers'], 0);
  if (!io.isTTY) {
    io.err(
      'qemu-harden: the interview needs a terminal on stdin and stdout.\n' +
        'Without one, use: qemu-harden generate --preset NAME --out DIR   (or --answers FILE)\n',
    );
    return EXIT.usage;
  }
  // Ink draws only a final frame, and its colour detection turns colours off, when they believe they run in CI.
  // Here stdin and stdout are a terminal a person is typing into, so the interview is drawn live and in colour
  // (NO_COLOR still turns colour off) whatever CI variables the shell carries.
  for (const k of Object.keys(process.env))
    if (k === 'CI' || k === 'CONTINUOUS_INTEGRATION' || k.startsWith('CI_')) delete process.env[k];
  const { runWizard } = await import('./wizard.js');
  return runWizard({ answersFile: p.flags.get('--answers') as string | undefined });
}

export async function main(argv: string[], io: Io): Promise<number> {
  try {
    const p = parseArgs(argv);
    if (p.flags.has('--help') || p.flags.has('-h')) {
      io.out(HELP);
      return EXIT.ok;
    }
    if (p.flags.has('--version') || p.flags.has('-V')) {
      io.out(`${VERSION}\n`);
      return EXIT.ok;
    }
    switch (p.command) {
      case undefined:
        return await wizard(p, io);
      case 'generate':
        return await generate(p, io);
      case 'presets':
        return await presets(p, io);
      case 'verify':
        return await verifyCmd(p, io);
      case 'apply':
        return await applyCmd(p, io);
      case 'import':
        return await importCmd(p, io);
      case 'audit':
        return await auditCmd(p, io);
      case 'export':
        return await exportCmd(p, io);
      case 'rollback':
        return await rollbackCmd(p, io);
      case 'status':
        return await statusCmd(p, io);
      default:
        throw new UsageError(`unknown command '${p.command}' (see qemu-harden --help)`);
    }
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`qemu-harden: ${e.message.split('\n').join('\nqemu-harden: ')}\n`);
      return EXIT.usage;
    }
    throw e;
  }
}
