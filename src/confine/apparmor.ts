// AppArmor: one profile per guest attached by its unit, a generated rules file per guest, one shared abstraction.
// Their text is in src/gen/apparmor.ts; this record says where they go, how they are checked and loaded.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runStep } from '../activation.js';
import * as G from '../guest.js';
import type { HelperKind } from '../helpers/helper.js';
import { helpersOf } from '../helpers/index.js';
import * as N from '../names.js';
import type { Answers, Guest } from '../model.js';
import { run } from '../tools.js';
import type { ConfinementBackend } from './backend.js';
import { plural } from '../words.js';

const PROFILE_DIR = 'etc/apparmor.d';
const profilePath = (guest: string) => `${PROFILE_DIR}/${N.profileName(guest)}`;
const rulesPath = (guest: string) => `${PROFILE_DIR}/qemu-harden.d/${guest}`;
const helperProfilePath = (guest: string, kind: N.HelperKind) => `${PROFILE_DIR}/${N.helperProfileName(guest, kind)}`;
const helperRulesPath = (guest: string, kind: N.HelperKind) => `${PROFILE_DIR}/qemu-harden.d/${guest}-${kind}`;
const ABSTRACTION_PATH = `${PROFILE_DIR}/abstractions/qemu-harden`;
const confines = (g: Guest) => g.isolation.apparmor;

/** What src/gen/apparmor.ts writes; plan.ts hands that module to `files`. */
interface Text {
  abstraction(): string;
  profile(a: Answers, g: Guest): string;
  guestRules(a: Answers, g: Guest): string;
  helperProfile(g: Guest, h: HelperKind): string;
  helperRules(g: Guest, h: HelperKind): string;
}

export const apparmor: ConfinementBackend<Text> = {
  name: 'AppArmor',
  confines,

  files: (a) => {
    const guests = a.guests.filter(confines);
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

  check: {
    name: 'apparmor_parser',
    tool: 'apparmor_parser',
    debianPackage: 'apparmor',
    nothingToCheck: (b) => (b.answers.guests.some(confines) ? undefined : 'no profiles in this bundle'),
    async run(b, tools) {
      const profiles = b.answers.guests
        .filter(confines)
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
  loads: (hostPath) => /^\/etc\/apparmor\.d\/qemu-harden-[^/]+$/.test(hostPath),
  enforcing: () => {
    try {
      return readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
    } catch {
      return false;
    }
  },
  async activate(files) {
    const step = this.activationStep;
    if (files.length === 0) return { step, status: 'skipped', detail: 'the bundle has no profiles' };
    if (!this.enforcing())
      return {
        step,
        status: 'skipped',
        detail: 'AppArmor is not enabled in this kernel: the profiles are installed but not enforced',
      };
    return runStep(step, 'apparmor_parser', ['-r', '-W', ...files], 'apparmor');
  },
  async unload(files) {
    const step = 'unload removed AppArmor profiles';
    if (!this.enforcing())
      return { step, status: 'skipped', detail: 'AppArmor is not enabled in this kernel: nothing is loaded' };
    return runStep(step, 'apparmor_parser', ['-R', ...files], 'apparmor');
  },
};
