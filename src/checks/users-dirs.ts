// sysusers.d and tmpfiles.d applied to a throwaway root: the real parsers, and nothing on this host changes. The
// root holds a stand-in (root:root 0644) for every file the guests use and every firmware template, so each
// tmpfiles line really runs; afterwards no system file may have changed owner or mode.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import * as G from '../guest.js';
import { readPasswd } from '../passwd.js';
import { isSystemFile } from '../places.js';
import { run } from '../tools.js';
import type { BundleUnderCheck, Check, Outcome } from './check.js';
import { plural } from '../words.js';

const SYSUSERS = 'root/etc/sysusers.d/qemu-harden.conf';
const TMPFILES = 'root/etc/tmpfiles.d/qemu-harden.conf';

export const usersAndDirs: Check<BundleUnderCheck> = {
  name: 'sysusers/tmpfiles',
  tool: ['systemd-sysusers', 'systemd-tmpfiles'],
  debianPackage: 'systemd',
  async run(b, tools) {
    const scratch = mkdtempSync(join(tmpdir(), 'qemu-harden-verify-'));
    try {
      for (const [src, dst] of [
        [SYSUSERS, 'etc/sysusers.d'],
        [TMPFILES, 'etc/tmpfiles.d'],
      ] as const) {
        mkdirSync(join(scratch, dst), { recursive: true });
        copyFileSync(join(b.dir, src), join(scratch, dst, basename(src)));
      }
      const standIns = new Set<string>();
      for (const g of b.answers.guests) {
        for (const f of G.filesOf(g)) if (f.path !== G.uefiVars(g)) standIns.add(f.path);
        if (g.firmware.type === 'uefi') standIns.add(g.firmware.varsTemplate);
      }
      for (const p of standIns) {
        mkdirSync(join(scratch, dirname(p)), { recursive: true, mode: 0o755 });
        writeFileSync(join(scratch, p), '', { mode: 0o644 });
      }
      const findings: Outcome['findings'] = [];
      let bad = 0;
      const su = await run(tools['systemd-sysusers']!, [`--root=${scratch}`]);
      for (const l of su.stderr.split('\n').filter((x) => x.trim() && !/^Creating (user|group) /.test(x))) {
        bad++;
        findings.push({ message: l, file: SYSUSERS });
      }
      if (su.exitCode !== 0) bad++;
      // ACL entries name the guest's user; systemd-tmpfiles resolves names on this host, so they are given as the
      // uids sysusers just made in the throwaway root.
      const uids = new Map(readPasswd(scratch).map((u) => [u.name, u.uid]));
      const conf = join(scratch, 'etc/tmpfiles.d', basename(TMPFILES));
      writeFileSync(
        conf,
        readFileSync(conf, 'utf8').replace(/\bu:([a-z_][a-z0-9_-]*):/g, (m, name: string) =>
          uids.has(name) ? `u:${uids.get(name)}:` : m,
        ),
      );
      const tf = await run(tools['systemd-tmpfiles']!, [`--root=${scratch}`, '--create']);
      for (const l of tf.stderr.split('\n').filter((x) => x.trim())) {
        bad++;
        findings.push({ message: l.replaceAll(scratch, ''), file: TMPFILES });
      }
      if (tf.exitCode !== 0 && !tf.stderr.trim()) {
        bad++;
        findings.push({ message: `systemd-tmpfiles exited ${tf.exitCode}`, file: TMPFILES });
      }
      for (const p of [...standIns].filter(isSystemFile)) {
        const st = statSync(join(scratch, p));
        if (st.uid !== 0 || st.gid !== 0 || (st.mode & 0o7777) !== 0o644) {
          bad++;
          findings.push({
            message: `changes the system file ${p} (now ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)})`,
            file: TMPFILES,
          });
        }
      }
      return {
        status: bad ? 'failed' : 'passed',
        detail: `applied to a throwaway root holding ${plural(standIns.size, 'stand-in file')}`,
        findings,
      };
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  },
};
