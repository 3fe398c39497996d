import { implications } from '../src/implications.js';
import type { Step } from './fields.js';

export const host: Step = {
  id: 'host',
  title: 'Host',
  perGuest: false,
  why: [
    'Everything the guest can reach through QEMU is decided on the host: who owns /dev/kvm and /dev/net/tun,',
    'whether AppArmor can confine QEMU, whether cgroups can hold it to its budget. This step only looks;',
    'nothing on the host changes until you run `qemu-harden apply`.',
  ],
  notes: (ctx) => (ctx.host ? implications(ctx.host) : ['Probing this host in the background…']),
  fields: () => [],
  tip: 'Press F1 (or Ctrl+G) on any step, in any field, for why it matters.',
};
