// The only paths a bundle installs: qemu-harden's own units, the files of each confinement backend, its users,
// directories and udev rules, and its logrotate configuration. `apply`, `rollback` and the Ansible role refuse a
// bundle with any other file under root/, and leave alone any other path an install record lists, whatever the
// manifest says: a manifest is recomputed by whoever edits a bundle, so it cannot say which paths are allowed.
import { CONFINEMENT } from '../confine/index.js';
import * as N from '../names.js';

/** Where apply keeps the files it replaces and removes, one directory per install named by its UTC time. */
export const BACKUPS = 'var/backups/qemu-harden';

/** The files at the top of every bundle, beside root/. */
export const BUNDLE_TOP = ['MANIFEST.sha256', 'README.md', 'answers.json'];

/** Where the bundle's units are installed. */
export const UNITS = '/etc/systemd/system';

/** Installed once per host, whatever the guests (the confinement backends as registered when asked). */
const shared = () => [
  `${UNITS}/${N.SLICE}`,
  `${UNITS}/${N.LOGROTATE_SERVICE}`,
  `${UNITS}/${N.LOGROTATE_TIMER}`,
  '/etc/qemu-harden/logrotate.conf',
  '/etc/sysusers.d/qemu-harden.conf',
  '/etc/tmpfiles.d/qemu-harden.conf',
  '/etc/udev/rules.d/65-qemu-harden.rules',
  ...CONFINEMENT.flatMap((b) => b.sharedFiles),
];

/** A guest's helper units (src/helpers/: its TPM's service and socket, ...), whichever its answers turn on. */
const helperUnits = (g: string) => N.helperUnitFiles(g).map((u) => `${UNITS}/${u}`);

/** Installed for one guest, by its name. */
const perGuest = (g: string) => [
  `${UNITS}/${N.unitName(g)}`,
  `${UNITS}/${N.tapUnitName(g)}`,
  `${UNITS}/${N.incomingUnitName(g)}`,
  ...helperUnits(g),
  ...CONFINEMENT.flatMap((b) => b.guestFiles(g)),
];

/** Every host path a bundle with these guests may install. Names that are not guest names get no paths. */
export function installable(guests: readonly string[]): Set<string> {
  return new Set([...shared(), ...guests.filter((g) => N.GUEST_NAME.test(g)).flatMap(perGuest)]);
}

/**
 * Which of guest g's own files an installed host path is: one of its units (its helpers' among them: a changed
 * helper unit restarts the guest as a changed QEMU unit does), or a file of its confinement.
 */
export function guestPart(hostPath: string, g: string): 'unit' | 'profile' | undefined {
  if (
    hostPath === `${UNITS}/${N.unitName(g)}` ||
    hostPath === `${UNITS}/${N.tapUnitName(g)}` ||
    helperUnits(g).includes(hostPath)
  )
    return 'unit';
  if (CONFINEMENT.some((b) => b.guestFiles(g).includes(hostPath))) return 'profile';
  return undefined;
}

/** The same for the Ansible role, which expands it for the guests of the bundle it reads: GUEST stands for a name. */
export const GUEST_PLACEHOLDER = '@GUEST@';
export const installableTemplate = () => ({ shared: shared(), guest: perGuest(GUEST_PLACEHOLDER) });

/**
 * Regular expressions (Python's and JavaScript's, unanchored) that together match these paths, GUEST_PLACEHOLDER
 * in a path standing for any guest name: by default every path a bundle may install.
 */
export function installablePatterns(paths = installableTemplate()): string[] {
  const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const guest = `(?:${N.GUEST_NAME.source.replace(/\^|\$/g, '')})`;
  return [...paths.shared.map(literal), ...paths.guest.map((p) => literal(p).split(GUEST_PLACEHOLDER).join(guest))];
}
