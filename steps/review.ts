import type { Step } from './fields.js';

export const review: Step = {
  id: 'review',
  title: 'Review',
  perGuest: false,
  why: [
    'Read what will be written before it is written. The exposure score is systemd’s own reading of each',
    'unit; the map lists exactly which files, devices and sockets each guest’s QEMU can reach — everything',
    'else on the host is out of its reach even if the guest takes QEMU over.',
  ],
  fields: () => [],
  screen: 'review',
};
