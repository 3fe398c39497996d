// How to run qemu-harden again, the way this process was started: every command qemu-harden prints for the
// operator to run next (the Done screen, `generate`, `import` and `audit`, each command's help) is written with
// it, so that it can be pasted. On PATH (installed with `npm install -g`) it is `qemu-harden`; from a clone, `npm
// start --`; through npx, `npx qemu-harden`; otherwise node and the script's own path.
import { realpathSync } from 'node:fs';
import { relative } from 'node:path';
import { shellWord } from './escape.js';
import { which } from './tools.js';

export interface Started {
  /** process.argv[1]: the script node was given. */
  script: string;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Resolves a command name on PATH. */
  which?: (name: string) => string | undefined;
  /** The node binary (process.execPath). */
  node?: string;
}

const real = (p: string) => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

export function invocation(
  p: Started = { script: process.argv[1] ?? 'qemu-harden', env: process.env, cwd: process.cwd() },
): string {
  const onPath = (p.which ?? which)('qemu-harden');
  if (onPath && real(onPath) === real(p.script)) return 'qemu-harden';
  if (p.env.npm_lifecycle_event === 'start' && p.env.npm_package_name === 'qemu-harden') {
    const pkg = p.env.npm_config_local_prefix ?? p.cwd;
    const from = p.env.INIT_CWD ?? p.cwd;
    return real(from) === real(pkg) ? 'npm start --' : `npm --prefix ${shellWord(pkg)} start --`;
  }
  if (p.env.npm_command === 'exec' && /[\\/]_npx[\\/]/.test(p.script)) return 'npx qemu-harden';
  const rel = relative(p.cwd, p.script);
  return `node ${shellWord(rel && !rel.startsWith('..') && rel.length < p.script.length ? rel : p.script)}`;
}

/**
 * The same command from any directory and for any user, for files read later (a bundle's README, an answers
 * file's header): `npm start --` runs in the clone and a relative script path holds only here, so anything but
 * `qemu-harden` on PATH becomes node and the script, both by absolute path.
 */
export function invocationAnywhere(
  p: Started = { script: process.argv[1] ?? 'qemu-harden', env: process.env, cwd: process.cwd() },
): string {
  if (invocation(p) === 'qemu-harden') return 'qemu-harden';
  return `${shellWord(p.node ?? process.execPath)} ${shellWord(real(p.script))}`;
}

/** The same command under sudo: npm and npx are often not on root's PATH, so those become node and the script. */
export function sudoInvocation(
  p: Started = { script: process.argv[1] ?? 'qemu-harden', env: process.env, cwd: process.cwd() },
): string {
  return `sudo ${invocationAnywhere(p)}`;
}
