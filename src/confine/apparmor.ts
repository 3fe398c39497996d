// AppArmor: one profile per guest attached by its unit, a generated rules file per guest, one shared abstraction.
// Their text is in src/gen/apparmor.ts; this record says where they go, how they are checked and loaded.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runStep } from '../activation.js';
import * as G from '../guest.js';
import * as N from '../names.js';
import type { Answers, Guest } from '../model.js';
import { run } from '../tools.js';
import type { ConfinementBackend } from './backend.js';
import { plural } from '../words.js';

const PROFILE_DIR = 'etc/apparmor.d';
const profilePath = (guest: string) => `${PROFILE_DIR}/${N.profileName(guest)}`;
const rulesPath = (guest: string) => `${PROFILE_DIR}/qemu-harden.d/${guest}`;
const ABSTRACTION_PATH = `${PROFILE_DIR}/abstractions/qemu-harden`;
const confines = (g: Guest) => g.isolation.apparmor;

/** What src/gen/apparmor.ts writes; plan.ts hands that module to `files`. */
interface Text {
  abstraction(): string;
  profile(a: Answers, g: Guest): string;
  guestRules(a: Answers, g: Guest): string;
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

  guestFiles: (guest) => [`/${profilePath(guest)}`, `/${rulesPath(guest)}`],
  sharedFiles: [`/${ABSTRACTION_PATH}`],

  unitLines: (g) => [
    'Confined by this guest’s AppArmor profile when AppArmor is enabled on the host.',
    `AppArmorProfile=${G.profileName(g)}`,
  ],

  check: {
    name: 'apparmor_parser',
    tool: 'apparmor_parser',
    debianPackage: 'apparmor',
    nothingToCheck: (b) => (b.answers.guests.some(confines) ? undefined : 'no profiles in this bundle'),
    async run(b, tools) {
      const guests = b.answers.guests.filter(confines);
      const findings = [];
      for (const g of guests) {
        const r = await run(tools.apparmor_parser!, [
          '-Q',
          '-K',
          '-I',
          join(b.dir, 'root', PROFILE_DIR),
          join(b.dir, 'root', profilePath(g.name)),
        ]);
        const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('Cache read/write disabled'));
        if (r.exitCode !== 0 || lines.length > 0)
          findings.push({ message: lines.join('; ') || `exited ${r.exitCode}`, file: `root/${profilePath(g.name)}` });
      }
      return { status: findings.length ? 'failed' : 'passed', detail: plural(guests.length, 'profile'), findings };
    },
  },

  activationStep: 'load AppArmor profiles',
  // The profiles themselves (G.profileName: qemu-harden-NAME); the abstraction and rules files come in through them.
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
