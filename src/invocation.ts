// How to run qemu-harden again, the way this process was started: the Done screen and `generate` suggest
// next commands with it. On PATH (installed with `npm install -g`) it is `qemu-harden`; from a clone, `npm start
// --`; through npx, `npx qemu-harden`; otherwise node and the script's own path.
import { realpathSync } from 'node:fs';
import { relative } from 'node:path';
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

const quote = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

export function invocation(
  p: Started = { script: process.argv[1] ?? 'qemu-harden', env: process.env, cwd: process.cwd() },
): string {
  const onPath = (p.which ?? which)('qemu-harden');
  if (onPath && real(onPath) === real(p.script)) return 'qemu-harden';
  if (p.env.npm_lifecycle_event === 'start' && p.env.npm_package_name === 'qemu-harden') {
    const pkg = p.env.npm_config_local_prefix ?? p.cwd;
    const from = p.env.INIT_CWD ?? p.cwd;
    return real(from) === real(pkg) ? 'npm start --' : `npm --prefix ${quote(pkg)} start --`;
  }
  if (p.env.npm_command === 'exec' && /[\\/]_npx[\\/]/.test(p.script)) return 'npx qemu-harden';
  const rel = relative(p.cwd, p.script);
  return `node ${quote(rel && !rel.startsWith('..') && rel.length < p.script.length ? rel : p.script)}`;
}

/** The same command under sudo: npm and npx are often not on root's PATH, so those become node and the script. */
export function sudoInvocation(
  p: Started = { script: process.argv[1] ?? 'qemu-harden', env: process.env, cwd: process.cwd() },
): string {
  const plain = invocation(p);
  if (plain === 'qemu-harden') return 'sudo qemu-harden';
  return `sudo ${quote(p.node ?? process.execPath)} ${quote(real(p.script))}`;
}
