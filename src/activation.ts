// One activation step of `apply`: a program run on the host (or on a tree with --root), reported as done, failed
// or skipped, with the last lines it printed. A step whose program is missing is skipped and names its package.
// `input` is handed to the program on its standard input.
import { run, which } from './tools.js';

export interface StepResult {
  step: string;
  status: 'done' | 'skipped' | 'failed';
  detail: string;
}

export async function runStep(
  step: string,
  tool: string,
  args: string[],
  debianPackage: string,
  input?: string,
): Promise<StepResult> {
  const path = which(tool);
  if (!path) return { step, status: 'skipped', detail: `not installed (Debian package ${debianPackage})` };
  const r = await run(path, args, { timeoutMs: 60_000, input });
  // Tools end their lines with a full stop ("Creating group qemu-web with gid 999."); joined, they read as one
  // list without ".;" between its items.
  const detail = (r.stderr || r.stdout)
    .trim()
    .split('\n')
    .filter(Boolean)
    .slice(-3)
    .map((l) => l.replace(/\.$/, ''))
    .join('; ');
  return {
    step,
    status: r.exitCode === 0 ? 'done' : 'failed',
    detail: r.exitCode === 0 ? detail || 'ok' : `exit ${r.exitCode}: ${detail}`,
  };
}
