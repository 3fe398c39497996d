// EFI programs for the Secure Boot proofs: an EFI system partition holding one program as the default boot
// program, made into a FAT image by QEMU's own vvfat driver, and Debian's snakeoil key (ovmf package, for tests
// only) to sign a program that the snakeoil variables template trusts.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from './helpers.js';

/** Debian's test key pair; the key's passphrase is "snakeoil" (ovmf's README.Debian). */
export const SNAKEOIL_KEY = '/usr/share/ovmf/PkKek-1-snakeoil.key';
export const SNAKEOIL_CERT = '/usr/share/ovmf/PkKek-1-snakeoil.pem';
/** The variables template with the snakeoil key as PK, KEK and db, and Secure Boot on. */
export const SNAKEOIL_VARS = '/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd';
export const SECBOOT_CODE = '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd';

/** A raw FAT image at `img` holding `program` as \EFI\BOOT\BOOTX64.EFI, readable by everyone. */
export function writeEsp(program: string, img: string): string {
  requireTool('qemu-img', 'qemu-utils');
  const esp = mkdtempSync(join(tmpdir(), 'qh-esp-'));
  try {
    mkdirSync(join(esp, 'EFI', 'BOOT'), { recursive: true });
    copyFileSync(program, join(esp, 'EFI', 'BOOT', 'BOOTX64.EFI'));
    const conv = spawnSync('qemu-img', ['convert', '-f', 'vvfat', '-O', 'raw', `fat:ro:${esp}`, img], {
      encoding: 'utf8',
    });
    assert.equal(conv.status, 0, conv.stderr);
  } finally {
    rmSync(esp, { recursive: true, force: true });
  }
  chmodSync(img, 0o644);
  return img;
}

/** `program` signed with the snakeoil key into `out` (a second signature beside any it already has). */
export function signWithSnakeoil(program: string, out: string): string {
  requireTool('sbsign', 'sbsigntool');
  requireTool('openssl', 'openssl');
  const work = mkdtempSync(join(tmpdir(), 'qh-sign-'));
  try {
    const key = join(work, 'snakeoil.key');
    execFileSync('openssl', ['pkey', '-in', SNAKEOIL_KEY, '-passin', 'pass:snakeoil', '-out', key]);
    execFileSync('sbsign', ['--key', key, '--cert', SNAKEOIL_CERT, '--output', out, program], { stdio: 'pipe' });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
