// The answers the SELinux tests on any machine share: two guests whose disks, read-only media, kernel, TLS
// directory and firmware give every kind of path the backend labels.
import type { AnswersInput } from '../src/model.js';

export const TLS = '/etc/pki/qemu/web';
export const DOC: AnswersInput = {
  schemaVersion: 1,
  useCase: 'emulation',
  host: { confinement: 'selinux' },
  acceptedRisks: [
    { risk: 'emulation', reason: 'TCG on a host without KVM, for these tests' },
    { risk: 'selinux-execmem', reason: 'TCG writes the code it runs, for these tests' },
  ],
  guests: [
    {
      name: 'web',
      memoryMiB: 64,
      disks: [
        { path: '/srv/qemu/web/disk "one" 100%.img', format: 'raw' },
        { path: '/srv/iso/shared.iso', format: 'raw', readOnly: true },
        { path: '/srv/qemu/web/seed.iso', format: 'raw', readOnly: true },
      ],
      boot: { kernel: '/srv/boot/vmlinuz', initrd: '/srv/boot/initrd.img' },
      display: { mode: 'vnc-tls', listen: '192.0.2.1', port: 5901, tlsDir: TLS },
    },
    {
      name: 'db',
      memoryMiB: 64,
      disks: [
        { path: '/srv/qemu/db/disk.qcow2', format: 'qcow2' },
        { path: '/srv/iso/shared.iso', format: 'raw', readOnly: true },
      ],
      firmware: { type: 'uefi' },
    },
  ],
};

/**
 * The same, with a TPM for db (its swtpm in a helper unit of its own) and a tap, passt as web's user-mode network (in
 * a helper unit of its own), and a folder QEMU's 9p shares into each guest: read-only into web, writable into db.
 */
export const WITH_DEVICES: AnswersInput = {
  ...DOC,
  acceptedRisks: [
    ...DOC.acceptedRisks!,
    { risk: 'share-writable', guest: 'db', reason: 'db writes its dumps there, for these tests' },
  ],
  guests: DOC.guests.map((g) =>
    g.name === 'db'
      ? {
          ...g,
          tpm: 'tpm2',
          network: { mode: 'tap' },
          shares: [{ path: '/srv/shares/db dumps', tag: 'dumps', readOnly: false }],
        }
      : { ...g, network: { mode: 'user', backend: 'passt' }, shares: [{ path: '/srv/shares/web', tag: 'docs' }] },
  ),
};
