// The one place qemu-harden runs other programs: resolved on PATH, never through a shell, always with a timeout.
// execa is imported on the first run, so that the wizard's first frame does not wait for it.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SBIN];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      continue;
    }
  }
  return undefined;
}

export async function run(
  file: string,
  args: string[],
  opts: { timeoutMs?: number; env?: Record<string, string>; cwd?: string; input?: string | Buffer } = {},
): Promise<ToolResult> {
  const { execa } = await import('execa');
  const r = await execa(file, args, {
    reject: false,
    timeout: opts.timeoutMs ?? 20_000,
    env: opts.env,
    cwd: opts.cwd,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    stripFinalNewline: false,
  });
  return {
    exitCode: r.exitCode ?? (r.timedOut ? 124 : 1),
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? ''),
    timedOut: !!r.timedOut,
  };
}

/** The same, for the few readers that must stay synchronous (the importers); a short timeout, never a shell. */
export function runSync(file: string, args: string[], timeoutMs = 5_000): ToolResult {
  const r = spawnSync(file, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  const timedOut = r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
  return { exitCode: r.status ?? (timedOut ? 124 : 1), stdout: r.stdout ?? '', stderr: r.stderr ?? '', timedOut };
}

/**
 * systemctl with its arguments, two minutes at most (a unit's start or stop waits for it): whether it succeeded, its
 * exit status, and what it said (its errors, else its output), or that it is not installed.
 */
export async function systemctl(
  args: string[],
): Promise<{ ok: boolean; code: number | null; text: string; stdout: string }> {
  const path = which('systemctl');
  if (!path) return { ok: false, code: null, text: 'systemctl is not installed (Debian package systemd)', stdout: '' };
  const r = await run(path, args, { timeoutMs: 120_000 });
  return { ok: r.exitCode === 0, code: r.exitCode, text: (r.stderr || r.stdout).trim(), stdout: r.stdout };
}
