// A confinement backend: one record saying everything qemu-harden does with one mandatory access control system,
// after libvirt's security drivers (src/security/security_driver.h), where AppArmor, SELinux and DAC each fill the
// same struct. A second backend is one more record beside src/confine/apparmor.ts, listed in src/confine/index.ts;
// the text of the files it emits comes from its generator in src/gen/, like every emitted file.
import type { StepResult } from '../activation.js';
import type { BundleUnderCheck, Check } from '../checks/check.js';
import type { Answers, Guest } from '../model.js';
import type { HelperKind } from '../names.js';

interface ConfinementFile<Text> {
  /** Relative to the bundle directory; under root/ it installs at the same path under /. */
  path: string;
  why: string;
  /** The file's text, from the backend's generator module. */
  text(generator: Text): string;
}

export interface ConfinementBackend<Text = never> {
  name: string;
  /** Whether the answers put this guest under this backend. */
  confines(g: Guest): boolean;
  /** What it adds to a bundle. */
  files(a: Answers): ConfinementFile<Text>[];
  /** The host paths of the files it installs for one guest, by the guest's name, its helpers' among them. */
  guestFiles(guest: string): string[];
  /** The host paths of the files it installs once, for all the guests it confines. */
  sharedFiles: string[];
  /** The unit lines that put a confined guest's QEMU under it: a comment, then the settings. */
  unitLines(g: Guest): [comment: string, ...settings: string[]];
  /** The same for one of the guest's helper units (src/helpers/): each helper has a policy of its own. */
  helperUnitLines(g: Guest, kind: HelperKind): [comment: string, ...settings: string[]];
  /** How `verify` checks its files: read by the backend's own tool. */
  check: Check<BundleUnderCheck>;
  /** The name of its step in `apply`'s activation. */
  activationStep: string;
  /** Whether a file installed at this host path is one it loads when activating. */
  loads(hostPath: string): boolean;
  /** Whether the running kernel enforces it. */
  enforcing(): boolean;
  /** Load the installed files (absolute paths on the running host) so that guests started next are confined. */
  activate(files: string[]): Promise<StepResult>;
  /** Unload the policy of files about to be removed (absolute paths on the running host, still present). */
  unload(files: string[]): Promise<StepResult>;
}
