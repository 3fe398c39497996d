// sysusers.d and tmpfiles.d applied to a throwaway root: the real parsers, and nothing on this host changes.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { run } from '../tools.js';
import type { BundleUnderCheck, Check, Outcome } from './check.js';

const SYSUSERS = 'root/etc/sysusers.d/qemu-harden.conf';
const TMPFILES = 'root/etc/tmpfiles.d/qemu-harden.conf';

export const usersAndDirs: Check<BundleUnderCheck> = {
  name: 'sysusers/tmpfiles',
  tool: ['systemd-sysusers', 'systemd-tmpfiles'],
  debianPackage: 'systemd',
  async run(b, tools) {
    const scratch = mkdtempSync(join(tmpdir(), 'qemu-harden-verify-'));
    try {
      for (const [src, dst] of [[SYSUSERS, 'etc/sysusers.d'], [TMPFILES, 'etc/tmpfiles.d']] as const) {
        mkdirSync(join(scratch, dst), { recursive: true });
        copyFileSync(join(b.dir, src), join(scratch, dst, basename(src)));
      }
      const findings: Outcome['findings'] = [];
      let bad = 0;
      const su = await run(tools['systemd-sysusers']!, [`--root=${scratch}`]);
      for (const l of su.stderr.split('\n').filter((x) => x.trim() && !/^Creating (user|group) /.test(x))) {
        bad++;
        findings.push({ message: l, file: SYSUSERS });
      }
      if (su.exitCode !== 0) bad++;
      const tf = await run(tools['systemd-tmpfiles']!, [`--root=${scratch}`, '--create']);
      for (const l of tf.stderr.split('\n').filter((x) => x.trim())) {
        if (/No such file or directory/.test(l) && /OVMF_VARS/.test(l)) continue;
        bad++;
        findings.push({ message: l.replace(scratch, ''), file: TMPFILES });
      }
      return { status: bad ? 'failed' : 'passed', detail: 'applied to a throwaway root', findings };
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  },
};
