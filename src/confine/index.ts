// Every confinement backend qemu-harden knows, in the order `apply` activates them. Commands take them from here
// at the moment they run and name none of them; a test adds one with registerBackend and sees every command take
// it up. Each backend's generator module is loaded only where a bundle is written (plan.ts awaits loadGenerators).
import { apparmor } from './apparmor.js';
import type { ConfinementBackend } from './backend.js';
import { selinux } from './selinux.js';

const REGISTERED: ConfinementBackend[] = [apparmor, selinux];

export const CONFINEMENT: readonly ConfinementBackend[] = REGISTERED;

const generators = new Map<ConfinementBackend, unknown>();

/** Adds a backend after the built-in ones, its generator loaded: every command takes it up from then on. */
export async function registerBackend<Text>(b: ConfinementBackend<Text>): Promise<void> {
  if (REGISTERED.some((r) => r.id === b.id)) throw new Error(`a confinement backend "${b.id}" is registered already`);
  REGISTERED.push(b as ConfinementBackend);
  generators.set(b as ConfinementBackend, await b.generator());
}

/** Loads the generator module of every registered backend that has none loaded yet. */
export async function loadGenerators(): Promise<void> {
  for (const b of REGISTERED) if (!generators.has(b)) generators.set(b, await b.generator());
}

/** A backend's loaded generator module, for its files' text. */
export function generatorOf(b: ConfinementBackend): unknown {
  if (!generators.has(b)) throw new Error(`the generator of confinement backend "${b.id}" is not loaded`);
  return generators.get(b);
}
