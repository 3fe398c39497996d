// The interview, in order: one step per file in this directory.
import { disks } from './disks.js';
import { display } from './display.js';
import { done } from './done.js';
import { guests } from './guests.js';
import { host } from './host.js';
import { isolation } from './isolation.js';
import { limits } from './limits.js';
import { network } from './network.js';
import { passthrough } from './passthrough.js';
import { remote } from './remote.js';
import { review } from './review.js';
import { usecase } from './usecase.js';

export const STEPS = [
  host,
  usecase,
  guests,
  disks,
  network,
  display,
  passthrough,
  remote,
  limits,
  isolation,
  review,
  done,
];

/**
 * Fields of the answers that no step asks for, each with the reason. Every other field of the model is asked by
 * a step: test/wizard-coverage.test.ts walks the answers schema and fails on a field that is neither asked nor
 * listed here. Paths as in the answers, with `*` for any entry of a list.
 */
export const NOT_ASKED: Record<string, string> = {
  schemaVersion: 'the version of the answers format: qemu-harden writes it, nobody chooses it',
  'acceptedRisks.*.risk':
    'an acceptance is added for each risk the other answers take (and dropped with it); only its reason is asked',
  'acceptedRisks.*.guest': 'the guest whose answers take the risk, set with the acceptance itself',
  'guests.*.isolation.selinuxCategories':
    'qemu-harden derives each guest’s SELinux pair from its name; a pair is named by hand only where apply finds the derived one held by a process of the host the bundle does not run',
  'guests.*.acpi':
    'ACPI stays on for a guest made here; only an imported guest that ran with -no-acpi (or without <acpi/> in libvirt) turns it off',
  'guests.*.hpet':
    'the HPET stays on for a guest made here; only an imported guest that ran with -no-hpet (or libvirt’s HPET timer off) turns it off',
};
