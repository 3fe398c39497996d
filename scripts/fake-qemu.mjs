// A stand-in for qemu-system-x86_64 that the audit tests and benchmark start with any command line they like: a
// 137-byte static x86-64 ELF program that ignores its arguments and waits for a signal (pause(2) in a loop), or,
// built with "exit", ends at once. It opens nothing, so a hostile command line (a FIFO or /dev/watchdog as a disk,
// a kernel the user cannot read) costs nothing to start and proves only what the audit does with it.
// Usage: node scripts/fake-qemu.mjs OUT [exit]   writes OUT (mode 0755); the test and the bench import fakeQemu.
import { chmodSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BASE = 0x400000;
const HEADERS = 64 + 56;

/** The program: `mov eax, 34 (pause); syscall; jmp back`, or `mov eax, 60 (exit); xor edi, edi; syscall`. */
const CODE = {
  wait: [0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7],
  exit: [0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05],
};

/** The ELF image: the file header, one loadable segment (the whole file, read and execute), then the code. */
export function fakeQemu(kind = 'wait') {
  const code = Buffer.from(CODE[kind]);
  const size = HEADERS + code.length;
  const elf = Buffer.alloc(size);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(elf, 0);
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // x86-64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(BigInt(BASE + HEADERS), 24); // entry
  elf.writeBigUInt64LE(64n, 32); // program headers right after this header
  elf.writeUInt16LE(64, 52);
  elf.writeUInt16LE(56, 54);
  elf.writeUInt16LE(1, 56);
  elf.writeUInt32LE(1, 64); // PT_LOAD
  elf.writeUInt32LE(5, 68); // R + X
  elf.writeBigUInt64LE(0n, 72);
  elf.writeBigUInt64LE(BigInt(BASE), 80);
  elf.writeBigUInt64LE(BigInt(BASE), 88);
  elf.writeBigUInt64LE(BigInt(size), 96);
  elf.writeBigUInt64LE(BigInt(size), 104);
  elf.writeBigUInt64LE(0x1000n, 112);
  code.copy(elf, HEADERS);
  return elf;
}

export function writeFakeQemu(path, kind = 'wait') {
  writeFileSync(path, fakeQemu(kind));
  chmodSync(path, 0o755);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [out, kind = 'wait'] = process.argv.slice(2);
  if (!out || !(kind in CODE)) {
    console.error('usage: node scripts/fake-qemu.mjs OUT [wait|exit]');
    process.exit(2);
  }
  writeFakeQemu(out, kind);
}
