// A confinement backend: one record saying everything qemu-harden does with one mandatory access control system,
// after libvirt's security drivers (src/security/security_driver.h), where AppArmor, SELinux and DAC each fill the
// same struct and the security manager asks each the same questions. Here the questions are the bundle's (which
// guests it confines, its files and unit lines, its part of the README, its verify check), the install's (which
// files it loads, how it loads and unloads them, the Ansible role's handler for that), and the live host's (does
// the kernel enforce it, what label a QEMU process carries and what label it should, the audit checks that judge
// it). Every command asks them through the registry, src/confine/index.ts, and names no backend: a second
// backend is one more record beside src/confine/apparmor.ts, one line there, the text of its files in its own
// generator in src/gen/ like every emitted file, and its id among the answers' values (src/confinement.ts) with
// its label on the Host step (steps/host.ts).
import type { StepResult } from '../activation.js';
import type { AuditCheck, Probe } from '../audit/types.js';
import type { BundleUnderCheck, Check } from '../checks/check.js';
import type { Answers, Guest } from '../model.js';
import type { HelperKind } from '../names.js';
import type { Release } from '../releases.js';

export type { Probe };

export interface ConfinementFile<Text> {
  /** Relative to the bundle directory; under root/ it installs at the same path under /. */
  path: string;
  why: string;
  /** The file's text, from the backend's generator module. */
  text(generator: Text): string;
}

/** A process's label as its backend reads it: the label, and the mode it is in where it has one ("enforce"). */
export interface Label {
  label: string;
  mode: string | null;
}

/** The backend's words in the bundle README (src/gen/readme.ts), which says the rest. */
export interface ReadmeWords {
  /** What each confined guest gets, in the README's first paragraph: "an AppArmor profile". */
  gives: string;
  /** How its files are loaded by hand, among the steps after copying root/ onto /. */
  byHand: string;
  /** Its bullet under "How the isolation is built". */
  isolation: string;
  /** What the bundle's target release decides of its files: "its profiles declare AppArmor’s `abi/3.0`". */
  release(r: Release): string;
  /** What the host needs before installing a bundle where it confines a guest ("Before you install"). */
  requires: string;
  /** Lines of "Checking the host afterwards" that show it at work, aligned like the README's other commands. */
  checking: string[];
  /**
   * What confines one of guest g's helpers, in its paragraph: "its own AppArmor profile (qemu-harden-web-net)"; for
   * a shared folder's, what keeps it to that folder.
   */
  helper(g: Guest, kind: HelperKind, a: Answers): string;
}

/** Its part of the Ansible role (src/export/ansible-role.ts), which derives the rest from the record. */
export interface AnsibleWords {
  /**
   * The handler tasks (YAML list items) that load the installed files: `files` names the role variable holding
   * the host paths of the files it loads (those `loads` matches), and every task listens to `listen`.
   */
  handlers(v: { files: string; listen: string }): string;
  /**
   * The tasks (YAML list items) that unload what the files of guests that left had loaded, as `unload` does for
   * apply, while those files are still in place: `files` is a Jinja expression for their host paths.
   */
  unload(v: { files: string }): string;
}

export interface ConfinementBackend<Text = unknown> {
  /** Its value of the answers' host.confinement, and its key wherever a report lists backends ("apparmor"). */
  id: string;
  /** Its name in sentences ("AppArmor"). */
  name: string;
  /** What it puts a guest's QEMU in, in sentences: "profile" (AppArmor), "context" (SELinux). */
  noun: string;

  /** Whether the answers choose it for the host (host.confinement). */
  chosen(a: Answers): boolean;
  /** Whether the answers put this guest under it: it is chosen, and the guest does not go without it. */
  confines(a: Answers, g: Guest): boolean;
  /** The label the bundle gives guest g's QEMU (its profile's name, its context), among the answers' guests. */
  guestLabel(g: Guest, a: Answers): string;

  /** The text of its files, src/gen/NAME.ts: loaded only where a bundle is written (apply never loads it). */
  generator(): Promise<Text>;
  /** What it adds to a bundle. */
  files(a: Answers): ConfinementFile<Text>[];
  /** The host paths of the files it installs for one guest, by the guest's name, its helpers' among them. */
  guestFiles(guest: string): string[];
  /** The host paths of the files it installs once, for all the guests it confines. */
  sharedFiles: string[];
  /** The unit lines that put a confined guest's QEMU under it: a comment, then the settings. */
  unitLines(g: Guest, a: Answers): [comment: string, ...settings: string[]];
  /** The same for one of the guest's helper units (src/helpers/): each helper has a policy of its own. */
  helperUnitLines(g: Guest, kind: HelperKind, a: Answers): [comment: string, ...settings: string[]];
  /** Its words in the bundle README. */
  readme: ReadmeWords;
  /** What holds only while it enforces, in guest g's reach map; for a guest it does not confine, what that leaves open. */
  reach(a: Answers, g: Guest): string[];
  /** How `verify` checks its files: read by the backend's own tool. */
  check: Check<BundleUnderCheck>;

  /** The name of its step in `apply`'s activation. */
  activationStep: string;
  /** The installed host paths it loads when activating (a pattern JavaScript and Python read alike). */
  loads: RegExp;
  /**
   * Load the installed files (absolute paths on the running host) so that guests started next are confined. `gone`
   * holds the files it loads that the bundle before had and this one does not (host path → the text installed),
   * for a backend whose policy outlives a reboot to take out in the same step.
   */
  activate(files: string[], gone: ReadonlyMap<string, string>): Promise<StepResult>;
  /**
   * Unload the policy of files about to be removed (absolute paths on the running host, still present), before
   * they go. A backend without it takes that policy out in `activate`, from `gone`.
   */
  unload?(files: string[]): Promise<StepResult>;

  /** The one read of whether the running kernel enforces it. */
  probe(): Probe;
  /** A live process's raw label, from its /proc directory; undefined where this backend gives none (not active). */
  processLabel(procDir: string): string | undefined;
  /** How a raw label reads: "qemu-harden-web (enforce)" is profile qemu-harden-web in enforce mode. */
  parseLabel(raw: string): Label;
  /** Whether a raw label keeps its process confined: a label of its own, enforced (not unconfined, not only logged). */
  enforces(raw: string): boolean;
  /**
   * The label a guest's QEMU is expected to carry as its installed unit says it, read through `setting` (the
   * unit's last value of a key); null when the unit puts it under no label of this backend.
   */
  expectedLabel(setting: (key: string) => string | undefined): string | null;
  /** The checks `audit` and `status` run on the live host for it (src/audit/types.ts). */
  auditChecks: AuditCheck[];

  /** Its part of the Ansible role. */
  ansible: AnsibleWords;
}
