// A guest that proves it booted: a boot sector that prints "OK" on COM1 and then asks QEMU to exit through the
// isa-debug-exit device (status (0x10 << 1) | 1 = 33). Where there is no such device it halts with interrupts off
// (cli; hlt): a guest left running then wakes for nothing. Under TCG in the proof VMs, an idle guest that still took
// the timer's interrupts cost about 1.2 s of CPU every 30 s; halted with them off, 0.4 s.
// Padded to 1 MiB: SeaBIOS does not boot a virtio disk of a single sector.
import { writeFileSync } from 'node:fs';

const CODE = [
  0xba, 0xf8, 0x03, 0xb0, 0x4f, 0xee, 0xb0, 0x4b, 0xee, 0xb0, 0x0a, 0xee, 0xba, 0xf4, 0x00, 0xb0, 0x10, 0xee, 0xfa,
  0xf4, 0xeb, 0xfd,
];

export const BOOT_MARKER = 'OK';
export const DEBUG_EXIT_DEVICE = 'isa-debug-exit,iobase=0xf4,iosize=0x04';
export const DEBUG_EXIT_STATUS = 33;

export function writeBootDisk(path: string): string {
  const img = Buffer.alloc(1024 * 1024);
  Buffer.from(CODE).copy(img, 0);
  img[510] = 0x55;
  img[511] = 0xaa;
  writeFileSync(path, img);
  return path;
}
