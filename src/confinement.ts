// The mandatory access control a host's guests run under, as the answers choose it (host.confinement): a
// confinement backend's id (src/confine/), or "none", an accepted risk. Here and not in model.ts because the
// backends and the commands that read bundles ask it too, and they load no schema.
export const CONFINEMENTS = ['apparmor', 'selinux', 'none'] as const;
export type Confinement = (typeof CONFINEMENTS)[number];

/** What an answers file without host.confinement means: bundles made before the field existed used AppArmor. */
export const DEFAULT_CONFINEMENT: Confinement = 'apparmor';

/** The answers' choice, or the default where they make none. */
export const confinementOf = (a: { host: { confinement?: Confinement } }): Confinement =>
  a.host.confinement ?? DEFAULT_CONFINEMENT;
