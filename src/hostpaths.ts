// Checks of the answers against the files as they are on the machine that generates the bundle. A path that
// does not exist here is left alone (bundles are often generated away from their host); one that does exist
// must be the real file: systemd and AppArmor act on what a symlink points to, not on its name. What is at each
// disk path, and whether it holds this host's own storage, is target.ts's, asked about this machine.
import { realpathSync, statSync } from 'node:fs';
import { InputError } from './errors.js';
import type { Answers } from './model.js';
import { isSystemFile, SYSTEM_DIRS, underDir } from './places.js';
import { targetProblems } from './target.js';

/** Every path the answers name, with its field and whether a guest only reads it. */
function userPaths(a: Answers): [field: string, path: string, readOnly: boolean, blockDevice: boolean][] {
  const out: [string, string, boolean, boolean][] = [];
  a.guests.forEach((g, gi) => {
    const at = (...p: (string | number)[]) => ['guests', gi, ...p].join('.');
    g.disks.forEach((d, di) => out.push([at('disks', di, 'path'), d.path, d.readOnly, d.blockDevice]));
    g.shares.forEach((sh, si) => out.push([at('shares', si, 'path'), sh.path, sh.readOnly, false]));
    if (g.boot) {
      out.push([at('boot', 'kernel'), g.boot.kernel, true, false]);
      if (g.boot.initrd) out.push([at('boot', 'initrd'), g.boot.initrd, true, false]);
      if (g.boot.deviceTree) out.push([at('boot', 'deviceTree'), g.boot.deviceTree, true, false]);
    }
    if (g.firmware.type === 'uefi') {
      out.push([at('firmware', 'code'), g.firmware.code, true, false]);
      out.push([at('firmware', 'varsTemplate'), g.firmware.varsTemplate, true, false]);
    }
  });
  out.push(['host.qemuBinary', a.host.qemuBinary, true, false]);
  return out;
}

export function hostPathProblems(a: Answers): string[] {
  const problems: string[] = [];
  for (const [field, path, readOnly, blockDevice] of userPaths(a)) {
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      continue;
    }
    if (blockDevice && underDir(path, '/dev') && statSync(real).isBlockDevice()) continue;
    if (readOnly && isSystemFile(path) && field !== 'host.qemuBinary') {
      const mode = statSync(real).mode;
      if ((mode & 0o004) === 0)
        problems.push(
          `${field}: ${path} is not readable by other users (mode ${(mode & 0o7777).toString(8).padStart(4, '0')}); qemu-harden never changes a system file's owner or mode, so the guest could not read it: make it world-readable, or copy it under /srv`,
        );
    }
    if (real !== path) {
      const sys = SYSTEM_DIRS.find((s) => underDir(real, s));
      problems.push(
        `${field}: ${path} resolves through a symlink to ${real}${sys ? ` (under ${sys})` : ''}; give the real path, which is what systemd and AppArmor act on`,
      );
    }
  }
  return [...problems, ...targetProblems('/', a)];
}

export function assertHostPaths(a: Answers): void {
  const problems = hostPathProblems(a);
  if (problems.length) throw new InputError(problems.join('\n'));
}
