// Whether the bundle was made for the release this host runs. A bundle says only what its target's systemd,
// AppArmor and QEMU read (answers: host.target); on an older release systemd ignores the settings it does not
// know and the AppArmor parser refuses a newer abi, on a newer one the bundle leaves out what the host offers.
// The guests' machine types are judged against the target's QEMU here too: one it lacks fails the check, one it
// deprecates is named without failing it.
import { ANSWERS } from '../bundle-layout.js';
import { describeRelease, readOsRelease, RELEASES, releaseOfOs, type Release } from '../releases.js';
import { machineProblems } from '../rules.js';
import type { BundleUnderCheck, Check } from './check.js';

/** The root whose os-release says what this host is; a test points it at a tree of its own. */
export const TARGET_CHECK = { root: '/' };

function thisHost(): { name: string; release: Release | undefined } | undefined {
  const os = readOsRelease(TARGET_CHECK.root);
  return os && { name: os.prettyName, release: releaseOfOs(os) };
}

export const target: Check<BundleUnderCheck> = {
  name: 'target release',
  unavailable: () => {
    const here = thisHost();
    if (!here) return 'this host has no os-release to say which release it runs';
    if (!here.release) return `this host runs ${here.name}, which is not a release qemu-harden knows by name`;
    return undefined;
  },
  async run(b) {
    const made = RELEASES[b.answers.host.target];
    const here = thisHost()!.release!;
    if (here.target !== made.target) {
      const older = here.systemd < made.systemd;
      return {
        status: 'failed',
        detail: `made for ${made.name}, this host runs ${here.name}`,
        findings: [
          {
            file: ANSWERS,
            message:
              `made for ${describeRelease(made)}, but this host runs ${describeRelease(here)}: ` +
              (older
                ? 'its systemd ignores the unit settings it does not know and its AppArmor parser may refuse the profiles’ abi'
                : 'the bundle leaves out settings this host’s systemd and AppArmor offer') +
              `; generate the bundle again on this host, or with --target ${here.target}`,
          },
        ],
      };
    }
    const machines = machineProblems(b.answers);
    return {
      status: machines.missing.length ? 'failed' : 'passed',
      detail: [`made for ${describeRelease(made)}, which this host runs`, ...machines.deprecated].join('; '),
      findings: machines.missing.map((message) => ({ file: ANSWERS, message })),
    };
  },
};
