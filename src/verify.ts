// `qemu-harden verify`: the manifest, the answers and their rules, then every file read by the program that will
// read it on the host. A check whose program is missing is reported as skipped, never as passed.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { InputError, parseAnswersText, validate } from './answers.js';
import { checkManifest } from './bundle.js';
import * as AA from './gen/apparmor.js';
import * as G from './guest.js';
import type { Answers } from './model.js';
import { ANSWERS, plan } from './plan.js';
import { LOGROTATE_SERVICE } from './names.js';
import { isSystemFile } from './rules.js';
import { run, which } from './tools.js';

export interface Finding {
  check: string;
  file?: string;
  message: string;
}

export interface CheckResult {
  check: string;
  status: 'passed' | 'failed' | 'skipped';
  detail?: string;
}

export interface Exposure {
  unit: string;
  score: number;
  target: number;
}

export interface Report {
  bundle: string;
  checks: CheckResult[];
  findings: Finding[];
  exposure: Exposure[];
}

/** The exposure a tap helper unit may have: it runs as root with CAP_NET_ADMIN in the host's network. */
export const TAP_UNIT_TARGET = 2.0;

/** The exposure the serial-log rotation may have: root that can only become the guests' users. */
export const LOGROTATE_TARGET = 2.0;

/** The exposure a guest unit may have: stricter without any network device. */
export function exposureTarget(g: Answers['guests'][number]): number {
  return G.hasNetwork(g) ? 1.5 : 1.0;
}

export async function exposureOf(unitFile: string): Promise<number | undefined> {
  const tool = which('systemd-analyze');
  if (!tool) return undefined;
  const r = await run(tool, ['security', '--offline=true', '--no-pager', unitFile]);
  const m = /Overall exposure level for .*?: ([0-9.]+)/.exec(r.stdout + r.stderr);
  return m ? Number(m[1]) : undefined;
}

export async function verifyBundle(dir: string): Promise<Report> {
  if (!existsSync(dir)) throw new InputError(`verify: ${dir} does not exist`);
  const report: Report = { bundle: dir, checks: [], findings: [], exposure: [] };
  const fail = (check: string, message: string, file?: string) => report.findings.push({ check, message, ...(file ? { file } : {}) });
  const result = (check: string, status: CheckResult['status'], detail?: string) => report.checks.push({ check, status, ...(detail ? { detail } : {}) });

  const manifest = checkManifest(dir);
  for (const p of manifest) fail('manifest', p.problem, p.path);
  result('manifest', manifest.length ? 'failed' : 'passed');

  let answers: Answers;
  try {
    answers = validate(parseAnswersText(readFileSync(join(dir, ANSWERS), 'utf8'), ANSWERS));
  } catch (e) {
    fail('answers', e instanceof InputError ? e.message : `cannot read ${ANSWERS}: ${(e as Error).message}`, ANSWERS);
    result('answers', 'failed');
    return report;
  }
  const expected = plan(answers);
  let drift = 0;
  for (const f of expected) {
    let actual: string | undefined;
    try {
      actual = readFileSync(join(dir, f.path), 'utf8');
    } catch {
      actual = undefined;
    }
    if (actual !== f.content) {
      drift++;
      fail('answers', actual === undefined ? 'missing, though answers.json produces it' : 'differs from what answers.json produces', f.path);
    }
  }
  result('answers', drift ? 'failed' : 'passed', `${expected.length} files regenerated from ${ANSWERS}`);

  const rootDir = join(dir, 'root');
  const unitDir = join(rootDir, 'etc/systemd/system');
  const units = expected.filter((f) => f.path.startsWith('root/etc/systemd/system/')).map((f) => join(dir, f.path));

  const analyze = which('systemd-analyze');
  if (!analyze) {
    result('systemd-analyze verify', 'skipped', 'systemd-analyze not found (Debian package systemd)');
    result('exposure', 'skipped', 'systemd-analyze not found (Debian package systemd)');
  } else {
    const r = await run(analyze, ['verify', ...units], { env: { SYSTEMD_UNIT_PATH: `${unitDir}:`, SYSTEMD_LOG_COLOR: '0' } });
    const lines = (r.stderr + r.stdout).split('\n').filter((l) => l.trim() !== '');
    for (const l of lines) fail('systemd-analyze verify', l);
    if (r.exitCode !== 0 && lines.length === 0) fail('systemd-analyze verify', `exited ${r.exitCode}`);
    result('systemd-analyze verify', r.exitCode === 0 && lines.length === 0 ? 'passed' : 'failed', `${units.length} units`);

    let over = 0;
    const scored = answers.guests.flatMap((g) => [
      { name: G.unitName(g), target: exposureTarget(g) },
      ...(g.network.mode === 'tap' ? [{ name: G.tapUnitName(g), target: TAP_UNIT_TARGET }] : []),
    ]);
    if (expected.some((f) => f.path === `root/etc/systemd/system/${LOGROTATE_SERVICE}`)) scored.push({ name: LOGROTATE_SERVICE, target: LOGROTATE_TARGET });
    for (const { name, target } of scored) {
      const score = await exposureOf(join(unitDir, name));
      if (score === undefined) {
        fail('exposure', 'systemd-analyze security gave no exposure level', `root/etc/systemd/system/${name}`);
        over++;
        continue;
      }
      report.exposure.push({ unit: name, score, target });
      if (score > target) {
        over++;
        fail('exposure', `exposure ${score} is above the target ${target}`, `root/etc/systemd/system/${name}`);
      }
    }
    result('exposure', over ? 'failed' : 'passed', report.exposure.map((e) => `${e.unit} ${e.score} (<= ${e.target})`).join(', '));
  }

  const profiles = answers.guests.filter((g) => g.isolation.apparmor);
  const parser = which('apparmor_parser');
  if (profiles.length === 0) result('apparmor_parser', 'passed', 'no profiles in this bundle');
  else if (!parser) result('apparmor_parser', 'skipped', 'apparmor_parser not found (Debian package apparmor)');
  else {
    let bad = 0;
    for (const g of profiles) {
      const file = join(rootDir, AA.profilePath(g));
      const r = await run(parser, ['-Q', '-K', '-I', join(rootDir, 'etc/apparmor.d'), file]);
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('Cache read/write disabled'));
      if (r.exitCode !== 0 || lines.length > 0) {
        bad++;
        fail('apparmor_parser', lines.join('; ') || `exited ${r.exitCode}`, `root/${AA.profilePath(g)}`);
      }
    }
    result('apparmor_parser', bad ? 'failed' : 'passed', `${profiles.length} profiles`);
  }

  await checkUsersAndDirs(dir, answers, fail, result);
  return report;
}

/**
 * Apply sysusers.d and tmpfiles.d to a throwaway root: the real parsers, and nothing on this host changes. The root
 * holds a stand-in (root:root 0644) for every file the guests use and every firmware template, so each tmpfiles
 * line really runs; afterwards no system file may have changed owner or mode.
 */
async function checkUsersAndDirs(
  dir: string,
  answers: Answers,
  fail: (check: string, message: string, file?: string) => void,
  result: (check: string, status: CheckResult['status'], detail?: string) => void,
): Promise<void> {
  const sysusers = which('systemd-sysusers');
  const tmpfiles = which('systemd-tmpfiles');
  if (!sysusers || !tmpfiles) {
    result('sysusers/tmpfiles', 'skipped', 'systemd-sysusers or systemd-tmpfiles not found (Debian package systemd)');
    return;
  }
  const scratch = mkdtempSync(join(tmpdir(), 'qemu-harden-verify-'));
  try {
    const files: [string, string][] = [
      ['root/etc/sysusers.d/qemu-harden.conf', 'etc/sysusers.d'],
      ['root/etc/tmpfiles.d/qemu-harden.conf', 'etc/tmpfiles.d'],
    ];
    for (const [src, dst] of files) {
      mkdirSync(join(scratch, dst), { recursive: true });
      copyFileSync(join(dir, src), join(scratch, dst, basename(src)));
    }
    const standIns = new Set<string>();
    for (const g of answers.guests) {
      for (const f of G.filesOf(g)) if (f.path !== G.uefiVars(g)) standIns.add(f.path);
      if (g.firmware.type === 'uefi') standIns.add(g.firmware.varsTemplate);
    }
    for (const p of standIns) {
      mkdirSync(join(scratch, dirname(p)), { recursive: true, mode: 0o755 });
      writeFileSync(join(scratch, p), '', { mode: 0o644 });
    }
    let bad = 0;
    const su = await run(sysusers, [`--root=${scratch}`]);
    for (const l of su.stderr.split('\n').filter((x) => x.trim() && !/^Creating (user|group) /.test(x))) {
      bad++;
      fail('sysusers/tmpfiles', l, files[0]![0]);
    }
    if (su.exitCode !== 0) bad++;
    // ACL entries name the guest's user; systemd-tmpfiles resolves names on this host, so they are given as the
    // uids sysusers just made in the throwaway root.
    const uids = new Map<string, string>();
    for (const line of readFileSync(join(scratch, 'etc/passwd'), 'utf8').split('\n')) {
      const [name, , uid] = line.split(':');
      if (name && uid) uids.set(name, uid);
    }
    const conf = join(scratch, files[1]![1], 'qemu-harden.conf');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/\bu:([a-z_][a-z0-9_-]*):/g, (m, name: string) => (uids.has(name) ? `u:${uids.get(name)}:` : m)));
    const tf = await run(tmpfiles, [`--root=${scratch}`, '--create']);
    for (const l of tf.stderr.split('\n').filter((x) => x.trim())) {
      bad++;
      fail('sysusers/tmpfiles', l.replaceAll(scratch, ''), files[1]![0]);
    }
    if (tf.exitCode !== 0 && !tf.stderr.trim()) {
      bad++;
      fail('sysusers/tmpfiles', `systemd-tmpfiles exited ${tf.exitCode}`, files[1]![0]);
    }
    for (const p of [...standIns].filter(isSystemFile)) {
      const st = statSync(join(scratch, p));
      if (st.uid !== 0 || st.gid !== 0 || (st.mode & 0o7777) !== 0o644) {
        bad++;
        fail('sysusers/tmpfiles', `changes the system file ${p} (now ${st.uid}:${st.gid} ${(st.mode & 0o7777).toString(8)})`, files[1]![0]);
      }
    }
    result('sysusers/tmpfiles', bad ? 'failed' : 'passed', `applied to a throwaway root holding ${standIns.size} stand-in files`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function formatReport(r: Report): string {
  const out: string[] = [`Bundle ${r.bundle}`];
  for (const c of r.checks) out.push(`  ${c.status === 'passed' ? 'ok  ' : c.status === 'skipped' ? 'skip' : 'FAIL'}  ${c.check}${c.detail ? ` — ${c.detail}` : ''}`);
  if (r.findings.length) {
    out.push('', `${r.findings.length} finding${r.findings.length > 1 ? 's' : ''}:`);
    for (const f of r.findings) out.push(`  ${f.check}: ${f.file ? `${f.file}: ` : ''}${f.message}`);
  } else out.push('', 'No findings.');
  return out.join('\n') + '\n';
}
