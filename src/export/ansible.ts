// `qemu-harden export ansible`: an Ansible role, an example playbook and inventory, and a copy of each host's
// bundle, written to one directory. Ansible then moves the bundles; the role installs each host's bundle with
// Ansible's own modules and keeps the same install record as `apply`, so the two can take turns on a host. With
// --signers, each bundle must be signed as that allowed_signers file requires (checked here first, and again by each
// host with its own ssh-keygen), the export carries the signatures and the file, and the role enrolls every host.
import { statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { DirFile } from '../atomic.js';
import { MANIFEST } from '../bundle-layout.js';
import { writeBundle } from '../bundle.js';
import { InputError } from '../errors.js';
import { visible } from '../escape.js';
import { admit, APPLY_ADMISSION, describeRefusals } from '../install/admit.js';
import { readBundleDir, type Bundle } from '../install/bundle.js';
import { checkSigned, readSignersFile, requiredSigners, type Trust } from '../sshsig.js';
import { CONFINEMENT } from '../confine/index.js';
import { listed } from '../words.js';
import { roleFiles } from './ansible-role.js';

const ROLE_DIR = 'roles/qemu_harden';
const BUNDLES_DIR = 'bundles';

interface HostBundle {
  /** Inventory hostname: the role installs bundles/<host>/ on the host of that name. */
  host: string;
  /** The bundle directory given on the command line. */
  bundle: string;
  guests: string[];
  /** Its files as read and admitted: what the export copies. */
  read: Bundle;
}

/** A name the INI inventory, the YAML inventory and a directory name all take as it is. */
const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Pair each bundle with the host that gets it: `--host NAME=BUNDLE` names the host; a bare BUNDLE goes to the
 * host named like its directory (bundles/web1 → web1).
 */
function pairHosts(positional: string[], hostFlags: string[]): { host: string; bundle: string; arg: string }[] {
  const pairs = [
    ...positional.map((b) => ({ host: basename(resolve(b)), bundle: b, arg: b })),
    ...hostFlags.map((h) => {
      const eq = h.indexOf('=');
      if (eq <= 0 || eq === h.length - 1)
        throw new InputError(`--host ${h}: expected NAME=BUNDLE, e.g. --host web1=./bundles/web1`);
      return { host: h.slice(0, eq), bundle: h.slice(eq + 1), arg: `--host ${h}` };
    }),
  ];
  if (pairs.length === 0)
    throw new InputError('export ansible needs at least one bundle: BUNDLE... or --host NAME=BUNDLE');
  const seen = new Map<string, string>();
  for (const p of pairs) {
    if (!HOST_NAME.test(p.host))
      throw new InputError(
        `${p.arg}: "${p.host}" is not a usable inventory hostname (letters, digits, ".", "_", "-"; name it with --host NAME=BUNDLE)`,
      );
    const other = seen.get(p.host);
    if (other !== undefined)
      throw new InputError(`${p.arg}: host ${p.host} already gets ${other}; each host gets one bundle`);
    seen.set(p.host, p.bundle);
  }
  return pairs;
}

/**
 * Read a host's bundle and admit it as apply does (its manifest, only paths qemu-harden installs, every file
 * regenerated from its answers.json): the role checks the manifest and the paths again on the controller when it
 * runs, but cannot regenerate the files.
 */
async function readHostBundle(
  p: { host: string; bundle: string; arg: string },
  signing: { trust: Trust; required: number } | undefined,
): Promise<HostBundle> {
  let isDir: boolean;
  try {
    isDir = statSync(p.bundle).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new InputError(`${p.arg}: ${p.bundle} is not a directory`);
  const read = readBundleDir(p.bundle);
  if (signing) {
    const { problems } = await checkSigned(read, [signing.trust], signing.required);
    if (problems.length)
      throw new InputError(
        `${visible(p.arg)}: ${visible(p.bundle)} does not pass the signature check against ${visible(signing.trust.shown)}; nothing was written:\n${problems.map((x) => `  ${visible(x.path)}: ${visible(x.problem)}`).join('\n')}`,
      );
  }
  const { refusals } = await admit(read, APPLY_ADMISSION);
  if (refusals.length > 0)
    throw new InputError(
      refusals[0]!.check.name === 'manifest'
        ? `${p.arg}: ${p.bundle} does not match its manifest; nothing was written:\n${refusals[0]!.problems.map((x) => `  ${x.path}: ${x.problem}`).join('\n')}`
        : `${p.arg}: ${p.bundle} is refused; nothing was written: ${describeRefusals(refusals)}`,
    );
  return { host: p.host, bundle: p.bundle, guests: read.guests.map((g) => g.name), read };
}

function inventory(hosts: HostBundle[]): string {
  return [
    '# The hosts that get a qemu-harden bundle. The role installs bundles/<inventory hostname>/ on each, so a',
    "# host's name here is the name of its bundle directory. Say how Ansible reaches each host on its line",
    '# (ansible_host=, ansible_user=, ...) as in any inventory; the role needs root on the host (connect as root,',
    '# or set ansible_become=true).',
    '[qemu_harden]',
    ...hosts.map((h) => h.host),
    '',
  ].join('\n');
}

const playbook = (required: number | undefined) => `---
# Install each host's qemu-harden bundle: ansible-playbook -i inventory.ini site.yml --check --diff, then without --check.
- name: Install each host's qemu-harden bundle
  hosts: qemu_harden
  gather_facts: false
  # Activation steps still run on a host whose install stopped after its files changed.
  force_handlers: true
  roles:
    - role: qemu_harden
${
  required === undefined
    ? ''
    : `      vars:
        # Distinct keys allowed_signers allows that must have signed each host's bundle.
        qemu_harden_require_signatures: ${required}
`
}`;

function readme(hosts: HostBundle[], signed: boolean): string {
  return [
    '# qemu-harden bundles for Ansible',
    '',
    'Written by `qemu-harden export ansible`. Each host installs its own bundle, chosen by inventory hostname:',
    '',
    '| host | bundle | guests |',
    '| --- | --- | --- |',
    ...hosts.map(
      (h) =>
        `| \`${h.host}\` | \`${BUNDLES_DIR}/${h.host}/\` (from \`${h.bundle}\`) | ${h.guests.map((g) => `\`${g}\``).join(', ')} |`,
    ),
    '',
    '```sh',
    'ansible-playbook -i inventory.ini site.yml --check --diff   # what would change on each host; changes nothing',
    'ansible-playbook -i inventory.ini site.yml                  # install',
    '```',
    '',
    'For each host the role (`roles/qemu_harden`):',
    '',
    "1. checks every file of the host's bundle against its `MANIFEST.sha256` on the controller; a bundle that",
    '   does not match fails that host before anything on it changes, and the other hosts go on;',
    ...(signed
      ? [
          "   then, on the host, with the host's own `ssh-keygen`, that the manifest is signed by keys `allowed_signers`",
          '   allows (and, on a host enrolled already, keys its own `/etc/qemu-harden/allowed_signers` allows), and',
          '   installs `allowed_signers` there: the host is enrolled, and `qemu-harden apply` on it checks signatures too;',
        ]
      : []),
    '2. copies the bundle into the install record, `/var/lib/qemu-harden/.installed/` (the same record',
    "   `qemu-harden apply` keeps), and writes the record's journal before the first host file changes;",
    '3. installs the files under `root/` that differ, `root:root 0644`; stops and disables the units of guests that',
    '   left the bundle and removes their files; replaced and removed files are kept under',
    '   `/var/backups/qemu-harden/<UTC time>/<path>`;',
    '4. moves the record (`current` becomes `previous`, the new bundle becomes `current`) and closes the journal;',
    '5. runs only the activation steps whose files changed: `systemd-sysusers`, `systemd-tmpfiles --create`, udev',
    `   reload and trigger (when udev runs), ${CONFINEMENT.map((b) => `${b.readme.byHand}, `).join('')}\`daemon-reload\`;`,
    `6. restarts the guests whose ${listed(['unit', 'tap unit', ...CONFINEMENT.map((b) => `${b.name} ${b.noun}`)], 'or')} changed, and enables and starts every guest.`,
    '',
    'A second run changes nothing. Role variables (`roles/qemu_harden/defaults/main.yml`): `qemu_harden_bundle`',
    '(another bundle directory for a host), `qemu_harden_start: false` (install and activate, but leave starting',
    'and restarting guests to you: the play names the guests that need a restart).',
    '',
    'To roll out a new bundle for a host, replace `bundles/<host>/` with it (or export again with `--force`).',
    '',
  ].join('\n');
}

interface ExportResult {
  out: string;
  hosts: HostBundle[];
  files: number;
  /** The --signers file every host is enrolled in, as printed; absent without one. */
  trust?: string;
}

export async function exportAnsible(
  positional: string[],
  hostFlags: string[],
  outDir: string,
  force: boolean,
  signingOptions: { signersFile?: string; require?: string } = {},
): Promise<ExportResult> {
  const signing =
    signingOptions.signersFile === undefined
      ? undefined
      : { trust: readSignersFile(signingOptions.signersFile), required: requiredSigners(signingOptions.require) };
  const hosts: HostBundle[] = [];
  for (const p of pairHosts(positional, hostFlags)) hosts.push(await readHostBundle(p, signing));
  const files: (DirFile & { why: string })[] = [
    { path: 'README.md', mode: 0o644, content: readme(hosts, !!signing), why: 'how to run the playbook' },
    { path: 'site.yml', mode: 0o644, content: playbook(signing?.required), why: 'the example playbook' },
    ...(signing
      ? [
          {
            path: 'allowed_signers',
            mode: 0o644,
            content: signing.trust.text,
            why: 'the team’s trust file, installed on every host',
          },
        ]
      : []),
    { path: 'inventory.ini', mode: 0o644, content: inventory(hosts), why: 'the example inventory' },
    ...Object.entries(roleFiles()).map(([path, content]) => ({
      path: `${ROLE_DIR}/${path}`,
      mode: 0o644,
      content,
      why: 'the role',
    })),
  ];
  for (const h of hosts)
    for (const [rel, content] of [...h.read.files, ...h.read.signatures, [MANIFEST, h.read.manifest] as const])
      files.push({ path: `${BUNDLES_DIR}/${h.host}/${rel}`, mode: 0o644, content, why: `${h.host}'s bundle` });
  writeBundle(outDir, files, force);
  return { out: outDir, hosts, files: files.length, trust: signing && visible(signing.trust.shown) };
}
