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
