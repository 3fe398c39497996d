// AppArmor: one profile per guest attached by its unit, a generated rules file per guest, one shared abstraction.
// Their text is in src/gen/apparmor.ts; this record says where they go, how they are checked and loaded, how the
// kernel says it enforces them, how a live QEMU's profile reads, and what audit and status judge of it.
import { join } from 'node:path';
import { runStep } from '../activation.js';
import { denialFindings, type Denial } from '../audit/denials.js';
import { eachProcess, finding, type AuditCheck } from '../audit/types.js';
import * as G from '../guest.js';
import type { HelperKind } from '../helpers/helper.js';
import { helpersOf } from '../helpers/index.js';
import * as N from '../names.js';
import { confinementOf } from '../confinement.js';
import type { Answers, Guest } from '../model.js';
import { procAttr, readSmall } from '../procfs.js';
import { run } from '../tools.js';
import type { ConfinementBackend, Label, Probe } from './backend.js';
import { plural } from '../words.js';

const PROFILE_DIR = 'etc/apparmor.d';
const profilePath = (guest: string) => `${PROFILE_DIR}/${N.profileName(guest)}`;
const rulesPath = (guest: string) => `${PROFILE_DIR}/qemu-harden.d/${guest}`;
const helperProfilePath = (guest: string, kind: N.HelperKind) => `${PROFILE_DIR}/${N.helperProfileName(guest, kind)}`;
const helperRulesPath = (guest: string, kind: N.HelperKind) => `${PROFILE_DIR}/qemu-harden.d/${guest}-${kind}`;
const ABSTRACTION_PATH = `${PROFILE_DIR}/abstractions/qemu-harden`;
/** The kernel's own word on whether AppArmor is enabled: "Y" or "N", absent where AppArmor is not built in. */
const ENABLED = '/sys/module/apparmor/parameters/enabled';

/** What src/gen/apparmor.ts writes; plan.ts loads that module through `generator`. */
interface Text {
  abstraction(): string;
  profile(a: Answers, g: Guest): string;
  guestRules(a: Answers, g: Guest): string;
  helperProfile(g: Guest, h: HelperKind): string;
  helperRules(g: Guest, h: HelperKind): string;
}

const chosen = (a: Answers) => confinementOf(a) === 'apparmor';
const confines = (a: Answers, g: Guest) => chosen(a) && g.isolation.apparmor;

/** "qemu-harden-web (enforce)": the profile, and its mode in parentheses (none for "unconfined"). */
function parseLabel(raw: string): Label {
  const m = /^(.*?)(?: \((\w+)\))?$/.exec(raw)!;
  return { label: m[1]!, mode: m[2] ?? null };
}

/** A kernel log line of an AppArmor denial for a QEMU (or libvirt) profile or process. */
export function parseDenial(line: string): Denial | undefined {
  if (!line.includes('apparmor="DENIED"')) return undefined;
  const field = (k: string) =>
    new RegExp(`\\b${k}="([^"]*)"`).exec(line)?.[1] ?? new RegExp(`\\b${k}=(\\S+)`).exec(line)?.[1] ?? '';
  const label = field('profile');
  const comm = field('comm');
  if (!/qemu|libvirt/.test(label) && !/qemu|kvm/.test(comm)) return undefined;
  return {
    line,
    label,
    operation: field('operation'),
    name: field('name'),
    mask: field('denied_mask') || field('requested_mask'),
  };
}

/** The process's profile: enforced, and the one its unit names when it names one. */
const processCheck = eachProcess(
  'process.apparmor',
  'medium',
  'process',
  (p, want) => {
    const wanted = want.label('apparmor');
    if (wanted === undefined) return undefined;
    const raw = p.labels.apparmor;
    const evidence = `/proc/${p.pid}/attr/current: ${raw ?? '(unreadable)'}`;
    const { label: name, mode } = parseLabel(raw ?? '');
    if (wanted !== null) {
      if (name !== wanted) return { summary: `AppArmor label ${name || 'none'}, not ${wanted}`, evidence };
      if (mode !== 'enforce')
        return { summary: `AppArmor profile ${wanted} in ${mode ?? 'unknown'} mode, not enforce`, evidence };
      return undefined;
    }
    if (raw === 'unconfined') return { summary: 'not confined by AppArmor', evidence };
    if (mode === 'complain') return { summary: `AppArmor profile ${name} in complain mode`, evidence };
    return undefined;
  },
  (p, want) =>
    p.labels.apparmor === 'unconfined' && want.label('apparmor') === null
      ? 'Mandatory access control is what keeps a compromised QEMU away from host files and other guests’ images that plain file permissions leave open.'
      : /\(complain\)$/.test(p.labels.apparmor ?? '')
        ? 'A profile in complain mode only logs: it keeps nothing from a compromised QEMU.'
        : 'The installed unit puts QEMU in its own enforced profile; in any other it reaches what that profile allows, or everything.',
  'Each guest gets its own enforced AppArmor profile that allows only its own disks, sockets and devices.',
  'guests.N.isolation.apparmor',
);

/** AppArmor off in the kernel, where no other backend the host was read for is enforced either. */
const enabledCheck: AuditCheck = {
  name: 'host.apparmor',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: (view) => {
    const own = view.confinement.get('apparmor');
    if (!own || own.enforced || [...view.confinement.values()].some((p) => p.enforced)) return [];
    return [
      finding(
        'host.apparmor',
        'medium',
        null,
        'AppArmor is not enabled',
        own.evidence,
        'Without a mandatory access control system only file permissions stand between a compromised QEMU and the host’s files and other guests’ images.',
        'Each guest has its own AppArmor profile; boot with apparmor=1 security=apparmor (Debian’s default) so that it is enforced.',
        null,
      ),
    ];
  },
};

const deniedCheck: AuditCheck = {
  name: 'host.apparmor-denied',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: (view) =>
    denialFindings(view, {
      check: 'host.apparmor-denied',
      name: 'AppArmor',
      noun: 'profile',
      parse: parseDenial,
      labelOf: (p) => p.labels.apparmor?.split(' ')[0],
    }),
};

export const apparmor: ConfinementBackend<Text> = {
  id: 'apparmor',
  name: 'AppArmor',
  noun: 'profile',

  chosen,
  confines,
  guestLabel: (g) => G.profileName(g),

  generator: () => import('../gen/apparmor.js'),
  files: (a) => {
    const guests = a.guests.filter((g) => confines(a, g));
    return [
      ...guests.flatMap((g) => [
        {
          path: `root/${profilePath(g.name)}`,
          why: `AppArmor profile ${G.profileName(g)} for guest ${g.name}`,
          text: (t: Text) => t.profile(a, g),
        },
        {
          path: `root/${rulesPath(g.name)}`,
          why: `the paths guest ${g.name}'s profile allows`,
          text: (t: Text) => t.guestRules(a, g),
        },
        ...helpersOf(a, g).flatMap((h) => [
          {
            path: `root/${helperProfilePath(g.name, h.kind)}`,
            why: `AppArmor profile ${G.helperProfileName(g, h.kind)} for guest ${g.name}'s ${h.title}`,
            text: (t: Text) => t.helperProfile(g, h),
          },
          {
            path: `root/${helperRulesPath(g.name, h.kind)}`,
            why: `the paths guest ${g.name}'s ${h.title} may touch`,
            text: (t: Text) => t.helperRules(g, h),
          },
        ]),
      ]),
      ...(guests.length
        ? [
            {
              path: `root/${ABSTRACTION_PATH}`,
              why: 'what every guest profile allows in common',
              text: (t: Text) => t.abstraction(),
            },
          ]
        : []),
    ];
  },
  guestFiles: (guest) => [
    `/${profilePath(guest)}`,
    `/${rulesPath(guest)}`,
    ...N.HELPER_KINDS.flatMap((k) => [`/${helperProfilePath(guest, k)}`, `/${helperRulesPath(guest, k)}`]),
  ],
  sharedFiles: [`/${ABSTRACTION_PATH}`],
  unitLines: (g) => [
    'Confined by this guest’s AppArmor profile when AppArmor is enabled on the host.',
    `AppArmorProfile=${G.profileName(g)}`,
  ],
  helperUnitLines: (g, kind) => [
    'Confined by a profile of its own when AppArmor is enabled on the host, set here rather than attached by path.',
    `AppArmorProfile=${G.helperProfileName(g, kind)}`,
  ],
  readme: {
    gives: 'an AppArmor profile',
    byHand: '`apparmor_parser -r` each profile (when AppArmor is enabled)',
    isolation:
      '- **AppArmor.** Each guest’s profile lists its own disks, firmware, sockets and devices, and nothing else.',
    release: (r) => `its profiles declare AppArmor’s \`abi/${r.apparmorAbi}\``,
    requires: `- AppArmor enabled in the kernel (\`cat ${ENABLED}\` says \`Y\`) and \`apparmor_parser\` installed: without it the profiles are written but nothing enforces them, and what the reach section marks “only while AppArmor enforces” does not hold.`,
    checking: ['aa-status | grep qemu-harden            # every profile loaded in enforce mode'],
    helper: (g, kind) =>
      `its own AppArmor profile (${G.helperProfileName(g, kind)})` +
      (N.isShareKind(kind)
        ? ", which admits this folder and nothing else of the host's files but its own program and libraries"
        : ''),
  },
  reach: (a, g) =>
    confines(a, g)
      ? [
          `reading the rest of the file system (/usr, /etc, …): profile ${G.profileName(g)} allows only the files above and what every QEMU loads; without AppArmor enforcing, QEMU can read any file its user may read`,
        ]
      : ['no AppArmor profile: QEMU can read any file on the host its user may read (/usr, /etc, …)'],
  check: {
    name: 'apparmor_parser',
    tool: 'apparmor_parser',
    debianPackage: 'apparmor',
    nothingToCheck: (b) =>
      b.answers.guests.some((g) => confines(b.answers, g)) ? undefined : 'no profiles in this bundle',
    async run(b, tools) {
      const profiles = b.answers.guests
        .filter((g) => confines(b.answers, g))
        .flatMap((g) => [
          profilePath(g.name),
          ...helpersOf(b.answers, g).map((h) => helperProfilePath(g.name, h.kind)),
        ]);
      const findings = [];
      for (const profile of profiles) {
        const r = await run(tools.apparmor_parser!, [
          '-Q',
          '-K',
          '-I',
          join(b.dir, 'root', PROFILE_DIR),
          join(b.dir, 'root', profile),
        ]);
        const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('Cache read/write disabled'));
        if (r.exitCode !== 0 || lines.length > 0)
          findings.push({ message: lines.join('; ') || `exited ${r.exitCode}`, file: `root/${profile}` });
      }
      return { status: findings.length ? 'failed' : 'passed', detail: plural(profiles.length, 'profile'), findings };
    },
  },

  activationStep: 'load AppArmor profiles',
  // The profiles themselves (G.profileName: qemu-harden-NAME, and each helper's qemu-harden-NAME-KIND); the
  // abstraction and rules files come in through them.
  loads: /^\/etc\/apparmor\.d\/qemu-harden-[^/]+$/,
  async activate(files) {
    const step = this.activationStep;
    if (files.length === 0) return { step, status: 'skipped', detail: 'the bundle has no profiles' };
    if (!this.probe().enforced)
      return {
        step,
        status: 'skipped',
        detail: 'AppArmor is not enabled in this kernel: the profiles are installed but not enforced',
      };
    return runStep(step, 'apparmor_parser', ['-r', '-W', ...files], 'apparmor');
  },
  async unload(files) {
    const step = 'unload removed AppArmor profiles';
    if (!this.probe().enforced)
      return { step, status: 'skipped', detail: 'AppArmor is not enabled in this kernel: nothing is loaded' };
    return runStep(step, 'apparmor_parser', ['-R', ...files], 'apparmor');
  },

  probe(): Probe {
    const v = readSmall(ENABLED)?.text.trim();
    return {
      enforced: v === 'Y',
      evidence: v === undefined ? `${ENABLED}: does not exist (AppArmor is not in this kernel)` : `${ENABLED}: ${v}`,
    };
  },
  // AppArmor's own attribute file where the kernel has one (it answers EINVAL when AppArmor is not the module
  // in force); the LSM-wide one only on a kernel without per-module files.
  processLabel(dir) {
    const own = procAttr(`${dir}/attr/apparmor/current`);
    return (own === undefined ? procAttr(`${dir}/attr/current`) : own) ?? undefined;
  },
  parseLabel,
  enforces: (raw) => raw !== '' && raw !== 'unconfined' && !/\(complain\)$/.test(raw),
  expectedLabel: (setting) => setting('AppArmorProfile')?.replace(/^-/, '') || null,
  auditChecks: [processCheck, enabledCheck, deniedCheck],

  ansible: {
    handlers: ({ files, listen }) => `- name: Ask the kernel whether AppArmor is enabled
  ansible.builtin.slurp:
    src: ${ENABLED}
  register: qemu_harden_apparmor
  failed_when: false
  listen: ${listen}

- name: Load the guests' AppArmor profiles (apparmor_parser -r)
  ansible.builtin.command:
    argv: "{{ ['apparmor_parser', '-r', '-W'] + ${files} }}"
  changed_when: true
  when: (qemu_harden_apparmor.content | default('') | b64decode | trim) == 'Y' and ${files} | length > 0
  listen: ${listen}
`,
    unload: ({ files }) => `- name: Ask the kernel whether AppArmor is enabled, for the profiles of guests that left
  ansible.builtin.slurp:
    src: ${ENABLED}
  register: qemu_harden_apparmor_unload
  failed_when: false
  when: ${files} | length > 0

- name: Unload the AppArmor profiles of guests that left (apparmor_parser -R)
  ansible.builtin.command:
    argv: "{{ ['apparmor_parser', '-R'] + ${files} }}"
  changed_when: true
  when: ${files} | length > 0 and (qemu_harden_apparmor_unload.content | default('') | b64decode | trim) == 'Y'
`,
  },
};
