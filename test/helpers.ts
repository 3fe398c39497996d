import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = join(REPO, 'dist', 'qemu-harden.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the built binary as a user would, without a terminal. */
export function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A temporary directory removed when the calling test (or suite) ends. */
export function tempDir(t: { after(fn: () => void): void }, prefix = 'qh-test-'): string {
  const path = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(path, { recursive: true, force: true }));
  return path;
}

/**
 * A temporary directory for guest files (disk images, kernels) that answers may name: not under /tmp, /var/tmp or
 * /home, which every guest unit hides from QEMU (PrivateTmp=, ProtectHome=) and the schema therefore refuses.
 */
export function guestFilesDir(t: { after(fn: () => void): void }, prefix = 'qh-test-'): string {
  const path = mkdtempSync(join('/var/lib', prefix));
  t.after(() => rmSync(path, { recursive: true, force: true }));
  return path;
}

/** Fails the test with the Debian package to install when a required program is missing. */
export function requireTool(name: string, pkg: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${name} || ls /usr/sbin/${name} /sbin/${name} 2>/dev/null | head -1`], { encoding: 'utf8' }).trim() ||
      fail(name, pkg);
  } catch {
    return fail(name, pkg);
  }
}

function fail(name: string, pkg: string): never {
  throw new Error(`${name} is required for this test and was not found: install the Debian package ${pkg} (bash scripts/install-test-deps.sh)`);
}
