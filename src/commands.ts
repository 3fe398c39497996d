// Every command of qemu-harden, one record each (the shape is in command.ts): the dispatch, `--help`, `help
// COMMAND` and docs/cli.md read them. A command's module is imported only when it runs, so that `--help` and
// `--version` load nothing else and the wizard's first frame waits for neither the answers model nor the
// generators. A new flag is one line in its command's `flags`; a new command is one record in COMMANDS.
import { commandHelp, EXIT, globalHelp, IMPLICIT, UsageError, type Args, type Command, type RunAs } from './command.js';
import { shellWord, visible } from './escape.js';
import type { Io } from './io.js';
import { VERSION } from './version.js';
import { plural } from './words.js';

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

const OUTCOME = { ok: EXIT.ok, findings: EXIT.findings, usage: EXIT.usage, cancelled: EXIT.cancelled } as const;

/** qemu-harden as the operator runs it again as root: as this process was started when it runs as root without sudo
 * (a root shell), under sudo otherwise. What `apply` and `rollback` print for the `start` that does what is left. */
const asRoot = (r: RunAs) => (process.getuid?.() === 0 && !process.env.SUDO_USER ? r.me : r.sudo);

const installOptions = (a: Args, r: RunAs) => ({
  dryRun: a.has('--dry-run'),
  yes: a.has('--yes'),
  start: a.has('--start'),
  again: asRoot(r),
});

/** With --json, stdout holds the one JSON document: everything else the command says goes to stderr, its question
 * too. */
const jsonIo = (io: Io): Io => ({ ...io, out: io.err, confirm: io.confirm && ((q) => io.confirm!(q, 'stderr')) });

/** --signers and --require-signatures, as every command that checks signatures takes them. */
const signingFlags = (signers: string) => [
  { flag: '--signers FILE', help: signers },
  {
    flag: '--require-signatures N',
    help: 'N distinct keys must have signed, counted in each trust file (the host’s and --signers)',
    default: '1',
  },
];
const signingOf = (a: Args) => ({ signersFile: a.value('--signers'), require: a.value('--require-signatures') });

const interview: Command = {
  name: IMPLICIT,
  summary: 'interview on a terminal, then write the bundle (or only the answers)',
  usage: [''],
  about: [
    'Twelve steps: host, use case, guests, disks, network, display, passthrough, remote protocols, limits, isolation, review, done. Each has a why panel (F1 or Ctrl+G) saying which untrusted entity its questions are about and what the bundle does about it. The host is probed in the background; Review shows the files, the accepted risks and what each guest can reach, and Enter writes the bundle or saves the answers only. Ctrl+C asks, then quits writing nothing.',
    'It needs a terminal on stdin and stdout; without one it exits 2 and points to `generate`.',
  ],
  flags: [
    {
      flag: '--answers FILE',
      help: 'open the interview prefilled from an answers file (JSON or YAML), e.g. a bundle’s answers.json',
      default: 'a new interview, guests sized from this host',
    },
  ],
  operands: 0,
  exits: [
    [EXIT.ok, 'the bundle or the answers were written'],
    [EXIT.usage, 'no terminal, or the answers file cannot be read'],
    [EXIT.cancelled, 'Ctrl+C, confirmed: nothing was written'],
  ],
  example: {
    args: '--answers qemu-harden-bundle/answers.json',
    says: 'The interview again, prefilled with the answers a bundle was written from.',
  },
  manual: 'docs/interview.md',
  async run(a, io, r) {
    if (!io.isTTY) {
      io.err(
        'qemu-harden: the interview needs a terminal on stdin and stdout.\n' +
          `Without one, use: ${r.me} generate --preset NAME --out DIR   (or --answers FILE)\n`,
      );
      return EXIT.usage;
    }
    // Ink draws only a final frame, and its colour detection turns colours off, when they believe they run in CI.
    // Here stdin and stdout are a terminal a person is typing into, so the interview is drawn live and in colour
    // (NO_COLOR still turns colour off) whatever CI variables the shell carries.
    for (const k of Object.keys(process.env))
      if (k === 'CI' || k === 'CONTINUOUS_INTEGRATION' || k.startsWith('CI_')) delete process.env[k];
    const { runWizard } = await import('./wizard.js');
    return runWizard({ answersFile: a.value('--answers') });
  },
};

const generate: Command = {
  name: 'generate',
  summary: 'validate the answers and write the bundle to DIR (atomically: all or nothing)',
  usage: ['(--preset NAME | --answers FILE) --out DIR'],
  about: [
    'The answers go through the one schema and its rules; every bad field is named with the reason, and nothing is written. The bundle is written to a temporary directory beside DIR and renamed into place, so an error leaves nothing behind and a replaced bundle is either the old one or the new one.',
    'Then it prints the next commands (`verify`, `apply --dry-run`) the way it was itself started, so they can be pasted.',
  ],
  flags: [
    { flag: '--preset NAME', help: 'start from a shipped preset (the `presets` command lists them)' },
    { flag: '--answers FILE', help: 'start from an answers file (JSON or YAML), e.g. a bundle’s answers.json' },
    {
      flag: '--set PATH=VALUE ...',
      help: 'change one field before validation, e.g. `--set guests.0.disks.0.path=/srv/a.img`; VALUE is read as JSON when it parses as JSON, otherwise as a string; repeatable',
    },
    { flag: '--out DIR', help: 'where to write the bundle; required unless --dry-run' },
    {
      flag: '--target RELEASE',
      help: 'the release the bundle is for: debian-12, debian-13 or ubuntu-24.04; its QEMU, systemd and AppArmor decide what the files may say',
      default: 'the answers’ host.target, else this host’s release',
    },
    { flag: '--force', help: 'replace an existing non-empty DIR' },
    { flag: '--dry-run', help: 'print the files that would be written, write nothing' },
    {
      flag: '--json',
      help: 'print `{out, written, target: {target, how}, files: [{path, mode, why}]}` instead of text',
    },
  ],
  operands: 0,
  exits: [
    [EXIT.ok, 'the bundle was written (or, with --dry-run, listed)'],
    [EXIT.usage, 'invalid usage or answers (each bad field named), or DIR exists without --force: nothing was written'],
  ],
  example: {
    args: 'generate --preset kvm-headless --set guests.0.disks.0.path=/srv/vm/server.qcow2 --out qemu-harden-bundle',
    says: 'One KVM guest with no network and no display, its disk at /srv/vm/server.qcow2, written to qemu-harden-bundle/.',
  },
  manual: 'docs/bundle.md',
  async run(a, io, r) {
    const preset = a.value('--preset');
    const answersFile = a.value('--answers');
    const outDir = a.value('--out');
    const dryRun = a.has('--dry-run');
    if (!!preset === !!answersFile)
      throw new UsageError('generate needs exactly one of --preset NAME or --answers FILE');
    if (!outDir && !dryRun) throw new UsageError('generate needs --out DIR (or --dry-run)');
    const [
      { applySet, validate },
      { writeBundle },
      { assertHostPaths },
      { plan },
      { readAnswersFile },
      { loadPreset },
      { chooseTarget },
      { machineProblems },
      { describeTarget },
    ] = await Promise.all([
      import('./answers.js'),
      import('./bundle.js'),
      import('./hostpaths.js'),
      import('./plan.js'),
      import('./sources/file.js'),
      import('./sources/preset.js'),
      import('./probe.js'),
      import('./rules.js'),
      import('./releases.js'),
    ]);
    let doc = preset ? loadPreset(preset).answers : readAnswersFile(answersFile!);
    for (const s of a.values('--set')) doc = applySet(doc, s);
    const chosen = chooseTarget(doc, a.value('--target'));
    const answers = validate(chosen.doc);
    assertHostPaths(answers);
    const files = plan(answers, { runAs: r.anywhere });
    const machines = machineProblems(answers);
    for (const w of [...machines.missing, ...machines.deprecated]) io.err(`qemu-harden: warning: ${w}\n`);
    const target = { target: answers.host.target, how: chosen.how };
    const listed = files.map(({ path, mode, why }) => ({ path, mode: mode.toString(8), why }));
    if (dryRun) {
      if (a.has('--json')) io.out(json({ out: outDir ?? null, written: false, target, files: listed }));
      else io.out(files.map((f) => `would write ${f.path}  (${f.why})`).join('\n') + '\n');
      return EXIT.ok;
    }
    writeBundle(outDir!, files, a.has('--force'));
    if (a.has('--json')) io.out(json({ out: outDir, written: true, target, files: listed }));
    else
      io.out(
        `Wrote ${plural(files.length, 'file')} to ${visible(outDir!)} for ${plural(answers.guests.length, 'guest')}.\n` +
          `For ${describeTarget(answers.host.target)}: ${visible(chosen.how)}.\n` +
          `Next: ${r.me} verify ${shellWord(outDir!)}   then   ${r.me} apply ${shellWord(outDir!)} --dry-run\n`,
      );
    return EXIT.ok;
  },
};

const presets: Command = {
  name: 'presets',
  summary: 'list the shipped presets',
  usage: [''],
  about: [
    'Each preset is presets/NAME.json: a one-line description, notes on what the operator must know or do beyond the answers (the drivers a guest needs, files to put in place), and a complete answers document, a starting point for `generate --preset NAME`.',
  ],
  flags: [{ flag: '--json', help: 'print `[{name, description, notes}]` instead of text' }],
  operands: 0,
  exits: [
    [EXIT.ok, 'listed'],
    [EXIT.usage, 'invalid usage'],
  ],
  example: { args: 'presets', says: 'One line per preset: its name and what it is, then its notes, indented.' },
  manual: 'docs/answers.md',
  async run(a, io) {
    const all = (await import('./sources/preset.js')).listPresets();
    if (a.has('--json')) io.out(json(all.map(({ name, description, notes }) => ({ name, description, notes }))));
    else {
      const w = Math.max(...all.map((x) => x.name.length));
      io.out(
        all
          .flatMap((x) => [`${x.name.padEnd(w)}  ${x.description}`, ...x.notes.map((n) => `${' '.repeat(w)}    ${n}`)])
          .join('\n') + '\n',
      );
    }
    return EXIT.ok;
  },
};

const sign: Command = {
  name: 'sign',
  summary: 'sign the bundle’s manifest with an SSH key (ssh-keygen -Y sign): the signature covers every file',
  usage: ['DIR --key KEYFILE'],
  about: [
    'The bundle is read once and must match its manifest; the manifest bytes read are signed with `ssh-keygen -Y sign -n qemu-harden`, the format git uses for signed commits with `gpg.format=ssh`. The signature is written atomically to DIR/signatures/, one file per key: signing with a second key adds a second signature (two-person review), and the same key signing again replaces its own.',
  ],
  flags: [
    {
      flag: '--key KEYFILE',
      help: 'the SSH private key, or the public key of one an ssh-agent holds',
    },
  ],
  operands: 1,
  exits: [
    [EXIT.ok, 'signed'],
    [
      EXIT.usage,
      'invalid usage, a bundle that does not match its manifest, or a key ssh-keygen cannot sign with: nothing was written',
    ],
  ],
  example: {
    args: 'sign qemu-harden-bundle --key ~/.ssh/id_ed25519',
    says: 'A signature by that key over qemu-harden-bundle/MANIFEST.sha256, written to qemu-harden-bundle/signatures/.',
  },
  manual: 'docs/signing.md',
  async run(a, io, r) {
    const dir = a.operands[0];
    const key = a.value('--key');
    if (!dir || !key) throw new UsageError(`sign needs the bundle directory and a key: ${r.me} sign DIR --key KEYFILE`);
    const { signBundle, formatSigned } = await import('./sign.js');
    io.out(formatSigned(await signBundle(dir, key)));
    return EXIT.ok;
  },
};

const verify: Command = {
  name: 'verify',
  summary: 'check a bundle: manifest, answers, and every file read by the tool that will read it',
  usage: ['DIR'],
  about: [
    'Checks the manifest, regenerates every file from answers.json and compares, then reads every file with the real tool where it is installed: `systemd-analyze verify`, `systemd-analyze security --offline` against the exposure targets, `apparmor_parser`, `systemd-sysusers` and `systemd-tmpfiles` on a throwaway root, and the bundle’s QEMU binary’s own machine types and CPU models. A tool that is missing shows as skip, never as passed.',
  ],
  flags: [
    ...signingFlags(
      'first of all, the bundle must be signed by a key this allowed_signers file (OpenSSH’s format) allows; otherwise exit 2 and no other check runs',
    ),
    { flag: '--json', help: 'print the report as JSON instead of text' },
  ],
  operands: 1,
  exits: [
    [EXIT.ok, 'no findings'],
    [EXIT.findings, 'findings, each naming its file (or answers field) and the check that found it'],
    [EXIT.usage, 'no DIR given, DIR does not exist, or (with --signers) the bundle is not signed as required'],
  ],
  example: {
    args: 'verify qemu-harden-bundle',
    says: 'Checks the bundle `generate` wrote to qemu-harden-bundle/.',
  },
  manual: 'docs/bundle.md',
  async run(a, io, r) {
    const dir = a.operands[0];
    if (!dir) throw new UsageError(`verify needs the bundle directory: ${r.me} verify DIR`);
    const s = signingOf(a);
    if (s.require !== undefined && s.signersFile === undefined)
      throw new UsageError('--require-signatures needs --signers FILE to count signers in');
    const { verifyBundle, formatReport } = await import('./verify.js');
    const report = await verifyBundle(dir, s.signersFile === undefined ? undefined : s);
    io.out(a.has('--json') ? json(report) : formatReport(report));
    return report.findings.length > 0 ? EXIT.findings : EXIT.ok;
  },
};

const START_HELP =
  'every guest of the installed bundle brought to running its installed unit and profile, whether or not this run changed a file: a stopped guest is enabled and started (one an operator stopped on purpose too, as `systemctl start` starts it), a guest running an older unit or profile is restarted, a running guest not enabled is enabled, and each started guest must stay running; on a tree (--root) each guest is enabled there, nothing is started';

const installFlags = (what: string) => [
  {
    flag: '--root PATH',
    help: `${what} the tree at PATH instead of /; it must exist (with --dry-run too), and only the steps that work offline run (the others are named as skipped)`,
    default: '/',
  },
  { flag: '--dry-run', help: 'show what would change, change nothing' },
  { flag: '--yes', help: 'do not ask for confirmation (without a terminal nothing is changed without it)' },
  {
    flag: '--start',
    help: `then what \`start\` does: ${START_HELP}`,
    default: 'the guests left as they are; what is left to do is named, with the one command that does it',
  },
  {
    flag: '--json',
    help: 'print the plan and the outcome as one JSON document on stdout (docs/install.md has its shape); everything else goes to stderr',
  },
  ...signingFlags(
    'the bundle must also be signed by a key this allowed_signers file allows, checked before anything else; on an enrolled host (/etc/qemu-harden/allowed_signers exists on the target) that file is always checked, and --signers adds a second one, never replaces it',
  ),
];

const installExits = (nothing: string): [number, string][] => [
  [EXIT.ok, 'installed, nothing to change, or a dry run'],
  [
    EXIT.findings,
    'a step failed (the install stays unfinished: run it again), a guest did not start, a secret (TLS key, SPICE password file) has the wrong owner or mode, or the bundle does not match its manifest (nothing changed)',
  ],
  [
    EXIT.usage,
    `invalid usage, ${nothing}not root for /, a bundle not signed as the host or --signers requires, or no terminal and no --yes: nothing changed (and with --json nothing on stdout)`,
  ],
  [EXIT.cancelled, 'the confirmation was answered no: nothing changed'],
];

/** apply and rollback: the walk, then its report as JSON with --json. */
async function install(
  a: Args,
  io: Io,
  walk: (io: Io) => Promise<import('./install/run.js').Installed>,
): Promise<number> {
  const asJson = a.has('--json');
  const { outcome, report } = await walk(asJson ? jsonIo(io) : io);
  if (asJson && outcome !== 'usage') io.out(json(report));
  return OUTCOME[outcome];
}

const apply: Command = {
  name: 'apply',
  summary: 'install a bundle on this host (or into a tree), with a plan, backups and an install record',
  usage: ['DIR'],
  about: [
    'Checks the manifest first, then shows the plan against what is installed: every new file, a diff of every changed one, every file of the installed bundle this one lacks, and per guest new, changed, removed or unchanged. On a terminal it asks before changing anything. Then removed guests are stopped and disabled, files installed `root:root 0644` (replaced and removed files backed up under /var/backups/qemu-harden/), users and directories created, udev and systemd reloaded, the AppArmor profiles or SELinux modules loaded (and the guests’ files relabelled), and the install record moved. A second run reports nothing to change.',
    'Without --start it names each guest that does not yet run its installed unit and profile (stopped, running an older one, or not enabled), as systemd reports it, and prints the one command that brings them there: `start` on this host, `systemctl --root=PATH enable …` for a tree, where nothing runs.',
  ],
  flags: installFlags('install into'),
  operands: 1,
  exits: installExits(''),
  example: {
    args: 'apply qemu-harden-bundle --dry-run',
    says: 'Every file that would change, with its diff, and what would happen to each guest; nothing is changed.',
  },
  manual: 'docs/install.md',
  async run(a, io, r) {
    const dir = a.operands[0];
    if (!dir) throw new UsageError(`apply needs the bundle directory: ${r.me} apply DIR`);
    const { apply } = await import('./install/apply.js');
    return install(a, io, (out) => apply(dir, a.value('--root') ?? '/', installOptions(a, r), out, signingOf(a)));
  },
};

const rollback: Command = {
  name: 'rollback',
  summary: 'install again the bundle installed before the current one, through the same steps',
  usage: [''],
  about: [
    'The install record keeps the bundle installed before the current one; rollback installs it again byte for byte (files the later bundle removed come back, files it added go), with the same plan, backups and steps as apply. Afterwards the bundle rolled back from is the previous one, so a second rollback returns to it. After an interrupted apply it restores the bundle installed completely before it; an interrupted rollback it completes.',
    'Without --start it names the guests that do not yet run their installed unit and profile and prints the one command that brings them there (`start`: a second rollback would return to the other bundle).',
  ],
  flags: installFlags('roll back'),
  operands: 0,
  exits: installExits('nothing to roll back to, '),
  example: {
    args: 'rollback --start',
    says: 'The previous bundle installed again, and every guest brought to running its unit and profile as installed now.',
    asRoot: true,
  },
  manual: 'docs/install.md',
  async run(a, io, r) {
    const { rollback } = await import('./install/rollback.js');
    return install(a, io, (out) => rollback(a.value('--root') ?? '/', installOptions(a, r), out, signingOf(a)));
  },
};

const start: Command = {
  name: 'start',
  summary: 'bring every installed guest to running its installed unit and profile (what apply --start does)',
  usage: [''],
  about: [
    `For the bundle the install record holds as installed: ${START_HELP}. It changes no file.`,
    'A running guest runs an older unit when its unit file (or its tap unit’s) was written after that unit’s process started, or systemd has not read the file since it changed (NeedDaemonReload); an older profile when a file of its AppArmor profile was written after QEMU started, on a host where AppArmor is enabled. A guest whose installed unit or profile differs from the record is left alone and named (apply the bundle again, or rollback). A second run changes nothing.',
  ],
  flags: [
    {
      flag: '--root PATH',
      help: 'enable the guests in the tree at PATH instead (it must exist, with --dry-run too); nothing runs in a tree, so nothing is started',
      default: '/',
    },
    { flag: '--dry-run', help: 'name what would be started, restarted or enabled, and change nothing' },
    {
      flag: '--json',
      help: 'print the guests and what was done as one JSON document on stdout (docs/install.md has its shape); everything else goes to stderr',
    },
  ],
  operands: 0,
  exits: [
    [EXIT.ok, 'every guest runs its installed unit and profile and is enabled (or, with --dry-run, was looked at)'],
    [
      EXIT.findings,
      'a guest did not start or stay running, a guest was left alone because its files differ from the record, or the last install stopped midway (run it again first)',
    ],
    [EXIT.usage, 'invalid usage, nothing installed there, or not root for /'],
  ],
  example: {
    args: 'start',
    says: 'Every guest of the installed bundle started, restarted or enabled as needed; a second run changes nothing.',
    asRoot: true,
  },
  manual: 'docs/install.md',
  async run(a, io, r) {
    const asJson = a.has('--json');
    const { start } = await import('./install/start.js');
    const report = await start(
      a.value('--root') ?? '/',
      { act: !a.has('--dry-run'), again: asRoot(r) },
      asJson ? jsonIo(io) : io,
    );
    if (report === 'interrupted') return EXIT.findings;
    if (asJson) io.out(json(report));
    return report.ok ? EXIT.ok : EXIT.findings;
  },
};

const status: Command = {
  name: 'status',
  summary: 'per installed guest: running or not, its live confinement, and drift of the installed files',
  usage: [''],
  about: [
    'For every guest of the installed bundle, its QEMU process as the kernel sees it (user, capabilities, NoNewPrivs, seccomp on every thread, AppArmor label and mode or SELinux context, cgroup limits, listening sockets) against what its installed unit says, and every installed file against the install record. A guest that is not running is reported, not a finding.',
  ],
  flags: [
    {
      flag: '--root PATH',
      help: 'read the record and files of the tree at PATH instead (it must exist); no process is looked at there, and each guest is said to be "not looked at" (`running: null` in --json)',
      default: '/',
    },
    { flag: '--json', help: 'print the report as JSON (docs/install.md has its shape)' },
  ],
  operands: 0,
  exits: [
    [EXIT.ok, 'every running guest is confined as installed, and the files match the record'],
    [EXIT.findings, 'a guest runs weaker than its unit says, an installed file drifted, or an install was interrupted'],
    [EXIT.usage, 'invalid usage, or nothing is installed there'],
  ],
  example: { args: 'status', says: 'Each installed guest as it runs now, and any drift of the files.' },
  manual: 'docs/install.md',
  async run(a, io) {
    const { status, formatStatus } = await import('./status.js');
    const report = await status(a.value('--root') ?? '/');
    io.out(a.has('--json') ? json(report) : formatStatus(report));
    return report.ok ? EXIT.ok : EXIT.findings;
  },
};

const importer: Command = {
  name: 'import',
  summary: 'turn libvirt domain XML or Proxmox VE guest configurations into one answers file',
  usage: ['libvirt (DOMAIN.xml... | --running) [--qemu-conf FILE]', 'proxmox VMID.conf... [--storage-cfg FILE]'],
  about: [
    'Reports per guest what was carried, changed to the secure default, or refused, each named by the element or key it came from. Several files become several guests in one answers file; the file is written only when every guest imports and the guests fit together.',
  ],
  flags: [
    { flag: '--running', help: 'libvirt: read every running domain through `virsh dumpxml` (no passwords)' },
    {
      flag: '--qemu-conf FILE',
      help: 'libvirt: read the VNC/SPICE TLS and migration settings from this qemu.conf',
      default: '/etc/libvirt/qemu.conf when it exists',
    },
    {
      flag: '--storage-cfg FILE',
      help: 'proxmox: resolve `storage:volume` names through this storage.cfg',
      default: '/etc/pve/storage.cfg when it exists',
    },
    { flag: '--out FILE', help: 'write the answers (JSON) to FILE', default: 'the report only' },
    { flag: '--force', help: 'replace an existing --out FILE' },
    { flag: '--json', help: 'print the report as JSON (docs/import.md has its shape)' },
  ],
  operands: Infinity,
  exits: [
    [EXIT.ok, 'every guest imported'],
    [EXIT.findings, 'imported, with items changed to the secure default'],
    [EXIT.usage, 'a guest refused, or invalid usage: nothing was written'],
  ],
  example: {
    args: 'import libvirt web.xml --out web.json',
    says: 'What was carried over from the domain web.xml, changed or refused, and web.json written when nothing was refused.',
  },
  manual: 'docs/import.md',
  async run(a, io, r) {
    const { importCommand, SOURCE_FLAGS } = await import('./importcmd.js');
    const sourceFlags = new Map<string, string | true>();
    for (const flag of SOURCE_FLAGS) {
      const v = a.value(flag);
      if (v !== undefined) sourceFlags.set(flag, v);
      else if (a.has(flag)) sourceFlags.set(flag, true);
    }
    return importCommand(
      {
        kind: a.operands[0],
        files: a.operands.slice(1),
        sourceFlags,
        out: a.value('--out'),
        force: a.has('--force'),
        json: a.has('--json'),
      },
      io,
      r.me,
    );
  },
};

const audit: Command = {
  name: 'audit',
  summary: 'judge the QEMU processes running on this host (read-only); as root it sees everything',
  usage: [''],
  about: [
    'Every QEMU process, whatever started it (libvirt, Proxmox, a script, a bundle), judged against QEMU’s security documentation from /proc, /sys, the files its command line names and the kernel log. It changes nothing on the host (--answers-out writes only its own new file). Each finding names the guest, the exact line read, why it matters, what a bundle does instead and the answers field that decides it. As a normal user it lists what it could not see and judges the rest.',
  ],
  flags: [
    { flag: '--json', help: 'print the report as JSON (docs/audit.md has its shape)' },
    {
      flag: '--answers-out FILE',
      help: 'also write answers rebuilt from the running guests to FILE (JSON when it ends in .json, YAML otherwise; it must not exist yet); a QEMU an ordinary user started is left out, and listed',
    },
    { flag: '--force', help: 'with --answers-out: replace FILE when it exists' },
    {
      flag: '--include-user-process PID|NAME ...',
      help: 'with --answers-out: carry that ordinary user’s QEMU all the same, keeping only the disks, kernel, firmware and TLS files that user can open (checked as the user; needs root); repeatable',
    },
  ],
  operands: 0,
  exits: [
    [EXIT.ok, 'nothing found but informational notes'],
    [EXIT.findings, 'findings'],
    [EXIT.usage, 'invalid usage, or --answers-out cannot be written'],
  ],
  example: {
    args: 'audit',
    says: 'Every QEMU process on this host judged, with what a bundle would do instead.',
    asRoot: true,
  },
  manual: 'docs/audit.md',
  async run(a, io, r) {
    const answersOut = a.value('--answers-out');
    const include = a.values('--include-user-process');
    if (include.length && !answersOut)
      throw new UsageError('--include-user-process only applies with --answers-out FILE');
    if (a.has('--force') && !answersOut) throw new UsageError('--force only applies with --answers-out FILE');
    const { audit, counts, formatAudit } = await import('./audit/command.js');
    const { readHost } = await import('./audit/live.js');
    const view = await readHost();
    const report = audit(view);
    if (answersOut)
      report.answersOut = {
        file: answersOut,
        ...(await import('./audit/answers-out.js')).writeAnswersOut(
          answersOut,
          view,
          include,
          r.anywhere,
          a.has('--force'),
        ),
      };
    io.out(a.has('--json') ? json(report) : formatAudit(report, r.me));
    return counts(report) > 0 ? EXIT.findings : EXIT.ok;
  },
};

const exporter: Command = {
  name: 'export',
  summary: 'write an Ansible role, playbook and inventory that install each host’s bundle',
  usage: ['ansible [BUNDLE ...] --out DIR'],
  about: [
    'Each host gets one bundle, by inventory hostname: a bare BUNDLE goes to the host named like its directory (bundles/web1 to web1). The role installs it the way apply does and keeps the same install record. DIR is written atomically, like a bundle.',
  ],
  flags: [
    { flag: '--host NAME=BUNDLE ...', help: 'the host of inventory hostname NAME gets BUNDLE; repeatable' },
    { flag: '--out DIR', help: 'where to write the role, site.yml, inventory.ini and the bundles' },
    { flag: '--force', help: 'replace an existing non-empty DIR' },
    ...signingFlags(
      'every bundle must be signed by a key this allowed_signers file allows; the role installs FILE on every host as /etc/qemu-harden/allowed_signers, and each host checks the signatures itself before anything changes',
    ),
  ],
  operands: Infinity,
  exits: [
    [EXIT.ok, 'written'],
    [
      EXIT.usage,
      'invalid usage, a bundle that does not match its manifest, a host name an inventory cannot hold, or two bundles for one host: nothing was written',
    ],
  ],
  example: {
    args: 'export ansible bundles/web1 bundles/db1 --out fleet',
    says: 'fleet/ with the role, site.yml and an inventory listing web1 and db1, each with its own bundle.',
  },
  manual: 'docs/ansible.md',
  async run(a, io, r) {
    const [format, ...bundles] = a.operands;
    if (format !== 'ansible')
      throw new UsageError(
        `export needs a format: ${r.me} export ansible BUNDLE... --out DIR${format ? ` ('${visible(format)}' is not one)` : ''}`,
      );
    const outDir = a.value('--out');
    if (!outDir) throw new UsageError('export ansible needs --out DIR');
    const { exportAnsible } = await import('./export/ansible.js');
    const s = signingOf(a);
    if (s.require !== undefined && s.signersFile === undefined)
      throw new UsageError('--require-signatures needs --signers FILE, the trust file the role installs on every host');
    const x = await exportAnsible(bundles, a.values('--host'), outDir, a.has('--force'), s);
    io.out(
      `Wrote an Ansible role and ${plural(x.hosts.length, 'bundle')} to ${visible(x.out)}:\n` +
        x.hosts.map((h) => `  ${visible(h.host)}  ${visible(h.bundle)}  (${h.guests.join(', ')})\n`).join('') +
        (x.trust === undefined
          ? ''
          : `Signed as ${visible(x.trust)} requires; each host checks the signatures itself and is enrolled in it.\n`) +
        `Next: cd ${shellWord(x.out)} && ansible-playbook -i inventory.ini site.yml --check --diff\n`,
    );
    return EXIT.ok;
  },
};

const help: Command = {
  name: 'help',
  summary: 'a command’s usage, options with their defaults, exit statuses and an example',
  usage: ['[COMMAND]'],
  about: ['Alone, the list of commands. `help interview` is the interview’s, which runs when no command is given.'],
  flags: [],
  operands: 2,
  exits: [
    [EXIT.ok, 'shown'],
    [EXIT.usage, 'no such command'],
  ],
  example: { args: 'help apply', says: 'apply’s usage, options, exit statuses and example.' },
  async run(a, io, r) {
    const [name, sub] = a.operands;
    if (name === undefined) {
      io.out(globalHelp(COMMANDS, r, VERSION));
      return EXIT.ok;
    }
    const c = COMMANDS.find((x) => x.name === name);
    if (!c) throw new UsageError(`no command '${visible(name)}' (see '${r.me} --help')`);
    if (sub !== undefined && !c.usage.some((u) => u.split(' ')[0] === sub))
      throw new UsageError(`unexpected argument ${visible(sub)}`);
    io.out(commandHelp(c, r));
    return EXIT.ok;
  },
};

export const COMMANDS: Command[] = [
  interview,
  generate,
  presets,
  sign,
  verify,
  apply,
  rollback,
  start,
  status,
  importer,
  audit,
  exporter,
  help,
];
