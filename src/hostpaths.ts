// Checks of the answers against the files as they are on the machine that generates the bundle. A path that
// does not exist here is left alone (bundles are often generated away from their host); one that does exist
// must be the real file: systemd and AppArmor act on what a symlink points to, not on its name.
import { lstatSync, realpathSync } from 'node:fs';
import { InputError } from './errors.js';
import type { Answers } from './model.js';
import { SYSTEM_DIRS, underDir } from './rules.js';

function userPaths(a: Answers): [string, string][] {
  const out: [string, string][] = [];
  a.guests.forEach((g, gi) => {
    const at = (...p: (string | number)[]) => ['guests', gi, ...p].join('.');
    g.disks.forEach((d, di) => out.push([at('disks', di, 'path'), d.path]));
    if (g.boot) {
      out.push([at('boot', 'kernel'), g.boot.kernel]);
      if (g.boot.initrd) out.push([at('boot', 'initrd'), g.boot.initrd]);
      if (g.boot.deviceTree) out.push([at('boot', 'deviceTree'), g.boot.deviceTree]);
    }
    if (g.firmware.type === 'uefi') {
      out.push([at('firmware', 'code'), g.firmware.code]);
      out.push([at('firmware', 'varsTemplate'), g.firmware.varsTemplate]);
    }
  });
  out.push(['host.qemuBinary', a.host.qemuBinary]);
  return out;
}

export function hostPathProblems(a: Answers): string[] {
  const problems: string[] = [];
  for (const [field, path] of userPaths(a)) {
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      continue;
    }
    if (real !== path) {
      const sys = SYSTEM_DIRS.find((s) => underDir(real, s));
      problems.push(`${field}: ${path} resolves through a symlink to ${real}${sys ? ` (under ${sys})` : ''}; give the real path, which is what systemd and AppArmor act on`);
    }
  }
  a.guests.forEach((g, gi) =>
    g.disks.forEach((d, di) => {
      let st;
      try {
        st = lstatSync(d.path);
      } catch {
        return;
      }
      const field = `guests.${gi}.disks.${di}`;
      if (st.isBlockDevice() && !d.blockDevice) problems.push(`${field}.blockDevice: ${d.path} is a block device here; set blockDevice to true to pass it deliberately`);
      if (!st.isBlockDevice() && d.blockDevice && !st.isSymbolicLink()) problems.push(`${field}.blockDevice: ${d.path} is not a block device here`);
      if (st.isDirectory()) problems.push(`${field}.path: ${d.path} is a directory, not a disk image`);
    }),
  );
  return problems;
}

export function assertHostPaths(a: Answers): void {
  const problems = hostPathProblems(a);
  if (problems.length) throw new InputError(problems.join('\n'));
}
