// Every confinement backend qemu-harden knows, in the order `apply` activates them.
import { apparmor } from './apparmor.js';
import type { ConfinementBackend } from './backend.js';

export const CONFINEMENT: readonly ConfinementBackend[] = [apparmor];
