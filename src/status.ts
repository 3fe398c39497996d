// `qemu-harden status`: for every guest of the installed bundle (the record's `current`), whether its QEMU runs
// and how it is confined — read from the live process in /proc: uid/gid, CapEff, NoNewPrivs, Seccomp of every
// thread, AppArmor label and mode, cgroup and its limits, listening sockets — whether the installed files still
// match the record, and who signed the installed bundle (its signatures, kept in the record, judged by ssh-keygen
// against the host's allowed_signers when the host is enrolled). A guest running weaker than its installed unit
// says, a drifted file, or an enrolled host running a bundle none of its allowed keys signed, is a finding.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { apparmor } from './confine/apparmor.js';
import { InputError } from './errors.js';
import { visible } from './escape.js';
import type { Bundle } from './install/bundle.js';
import { readInstalled, type Drift, type Installed } from './install/installed.js';
import { guestPart } from './install/paths.js';
import * as N from './names.js';
import { type PasswdEntry, uidOf } from './passwd.js';
import {
  apparmorLabel,
  cgroupPath,
  NetTables,
  openFds,
  PROC,
  readText,
  splitLabel,
  statusFields,
  threadSeccomp,
} from './procfs.js';
import { checkSigned, describeSigner, HOST_TRUST, signedBy, type Signer } from './sshsig.js';
import { listed, plural } from './words.js';

interface Listener {
  proto: 'tcp' | 'tcp6' | 'udp' | 'udp6' | 'unix';
  address: string;
}

interface ProcessView {
  pid: number;
  uid: number[];
  gid: number[];
  capEff: string;
  noNewPrivs: boolean;
  /** Seccomp mode of every thread (0 none, 1 strict, 2 filter), by thread id. */
  seccomp: Record<string, number>;
  apparmor: { label: string; mode: string | null } | null;
  cgroup: string | null;
  limits: { memoryMax: string | null; cpuMax: string | null; pidsMax: string | null };
  listening: Listener[];
}

interface GuestStatus {
  name: string;
  unit: string;
  /** Whether its QEMU runs; null in a tree (--root), where no process is looked at. */
  running: boolean | null;
  process: ProcessView | null;
  expected: {
    user: string;
    uid: number | null;
    memoryMax: string | null;
    apparmorProfile: string | null;
    seccomp: boolean;
    noNewPrivs: boolean;
    noCapabilities: boolean;
  };
  /** How the live process is weaker than the installed unit says; empty when it is not (or does not run). */
  weaker: string[];
  drift: Drift[];
}

interface SigningStatus {
  /** The enrolled host's allowed_signers as found (its path on this machine), or null: the host is not enrolled. */
  enrolled: string | null;
  /** Where the trust file of this host is, enrolled or not. */
  trustFile: string;
  /**
   * Who signed the installed bundle: on an enrolled host the principals and keys its trust file allows; on one
   * that is not, every key behind a good signature (no principal: nothing here names it).
   */
  signers: { principal: string | null; type: string; fingerprint: string; file: string }[];
  /** Signatures that do not count, and why; or why they could not be judged. */
  problems: { path: string; problem: string }[];
}

export interface StatusReport {
  root: string;
  installed: { manifest: string; previous: string | null } | null;
  signing: SigningStatus;
  interrupted: { action: string; from: string | null; to: string; started: string } | null;
  guests: GuestStatus[];
  /** Drift of installed files that belong to no single guest (the slice, users, directories, udev, the abstraction). */
  drift: Drift[];
  ok: boolean;
}

/** The QEMU of a guest: a process in the guest's service cgroup running qemu-system-*. */
function findQemu(unit: string): number | undefined {
  for (const e of readdirSync(PROC)) {
    if (!/^\d+$/.test(e)) continue;
    const cg = readText(`${PROC}/${e}/cgroup`);
    if (!cg || !cg.split('\n').some((l) => l.endsWith(`/${unit}`))) continue;
    const argv0 = (readText(`${PROC}/${e}/cmdline`) ?? '').split('\0')[0] ?? '';
    if (/qemu-system-/.test(argv0)) return Number(e);
  }
  return undefined;
}

/** Listening sockets of a process: its socket inodes looked up in its own network namespace's tables. */
function listeners(pid: number, net: NetTables): Listener[] {
  let sockets: number[];
  try {
    sockets = openFds(PROC, pid).sockets;
  } catch {
    return [];
  }
  const inet = net.listeners(pid);
  const unix = net.unixSockets(pid);
  const out: Listener[] = [];
  for (const inode of sockets) {
    const l = inet?.get(inode);
    if (l) out.push({ proto: l.proto, address: `${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}` });
    const u = unix.get(inode);
    if (u?.listening) out.push({ proto: 'unix', address: u.path ?? '(unnamed)' });
  }
  return out.sort((x, y) => (x.proto + x.address < y.proto + y.address ? -1 : 1));
}

function processView(pid: number, net: NetTables): ProcessView | null {
  const text = readText(`${PROC}/${pid}/status`);
  if (!text) return null;
  const status = statusFields(text);
  const seccomp: Record<string, number> = {};
  try {
    for (const [tid, mode] of threadSeccomp(PROC, pid)) seccomp[tid] = Number(mode);
  } catch {
    // The process ended while it was read: no threads to list.
  }
  let label: string | undefined;
  try {
    label = apparmorLabel(PROC, pid);
  } catch {
    label = undefined;
  }
  const cgroup = cgroupPath((readText(`${PROC}/${pid}/cgroup`) ?? '').split('\n'));
  const cg = (f: string) => (cgroup ? (readText(join('/sys/fs/cgroup', cgroup, f))?.trim() ?? null) : null);
  return {
    pid,
    uid: (status.get('Uid') ?? '').split(/\s+/).map(Number),
    gid: (status.get('Gid') ?? '').split(/\s+/).map(Number),
    capEff: status.get('CapEff') ?? '',
    noNewPrivs: status.get('NoNewPrivs') === '1',
    seccomp,
    apparmor: label ? splitLabel(label) : null,
    cgroup,
    limits: { memoryMax: cg('memory.max'), cpuMax: cg('cpu.max'), pidsMax: cg('pids.max') },
    listening: listeners(pid, net),
  };
}

/** The settings of an installed unit file that status holds the live process to. */
function expectations(unitText: string | undefined, users: PasswdEntry[], name: string): GuestStatus['expected'] {
  const setting = (k: string) => {
    const all = [...(unitText ?? '').matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
    return all.at(-1);
  };
  const user = setting('User') ?? N.userName(name);
  const mem = setting('MemoryMax');
  const mib = mem && /^(\d+)M$/.exec(mem);
  return {
    user,
    uid: uidOf(users, user) ?? null,
    memoryMax: mib ? String(Number(mib[1]) * 1024 * 1024) : (mem ?? null),
    apparmorProfile: setting('AppArmorProfile') ?? null,
    seccomp: !!setting('SystemCallFilter') || /-sandbox on/.test(unitText ?? ''),
    noNewPrivs: setting('NoNewPrivileges') === 'yes',
    noCapabilities: setting('CapabilityBoundingSet') === '',
  };
}

function weaknesses(e: GuestStatus['expected'], p: ProcessView, apparmorEnabled: boolean): string[] {
  const out: string[] = [];
  if (p.uid.some((u) => u === 0)) out.push('runs as root');
  else if (e.uid !== null && p.uid.some((u) => u !== e.uid))
    out.push(`runs as uid ${p.uid.join('/')}, not ${e.user} (${e.uid})`);
  if (e.noCapabilities && !/^0+$/.test(p.capEff)) out.push(`holds capabilities (CapEff ${p.capEff})`);
  if (e.noNewPrivs && !p.noNewPrivs) out.push('NoNewPrivs is off');
  if (e.seccomp) {
    const loose = Object.entries(p.seccomp).filter(([, m]) => m !== 2);
    if (loose.length) out.push(`threads without a seccomp filter: ${loose.map(([t]) => t).join(', ')}`);
  }
  if (e.apparmorProfile && apparmorEnabled) {
    if (p.apparmor?.label !== e.apparmorProfile)
      out.push(`AppArmor label ${p.apparmor?.label ?? 'none'}, not ${e.apparmorProfile}`);
    else if (p.apparmor.mode !== 'enforce')
      out.push(`AppArmor profile ${e.apparmorProfile} in ${p.apparmor.mode ?? 'unknown'} mode, not enforce`);
  }
  if (e.memoryMax && p.limits.memoryMax !== null && p.limits.memoryMax !== e.memoryMax)
    out.push(`memory.max is ${p.limits.memoryMax}, not ${e.memoryMax}`);
  return out;
}

/** The signatures kept with the installed bundle, judged by ssh-keygen against the host's trust file when there is one. */
async function signing(root: string, current: Bundle, trust: Installed['trust']): Promise<SigningStatus> {
  const shown = root === '/' ? HOST_TRUST : `${root}${HOST_TRUST}`;
  const enrolled = trust === undefined ? null : shown;
  const out: SigningStatus = { enrolled, trustFile: shown, signers: [], problems: [] };
  const row = (s: Signer) => ({
    principal: s.principal ?? null,
    type: s.type,
    fingerprint: s.fingerprint,
    file: s.path,
  });
  if (typeof trust === 'string') {
    out.problems.push({ path: shown, problem: trust });
    return out;
  }
  try {
    if (trust) {
      // Only the signatures are judged here: the files' drift from the record is reported on its own.
      const r = await checkSigned({ ...current, problems: [] }, [trust], 1);
      out.signers = r.signers[0]!.map(row);
      out.problems = r.problems.filter((p) => p.path !== trust.shown);
    } else if (current.signatures.size) {
      const r = await signedBy(current);
      out.signers = r.signers.map(row);
      out.problems = r.problems;
    }
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    out.problems.push({ path: 'signatures/', problem: `not checked: ${e.message}` });
  }
  return out;
}

export async function status(rootArg: string): Promise<StatusReport> {
  // The record, the drift of the installed files, the root's users and trust file, read inside the root
  // (install/installed.ts).
  const { root, current, previous, journal: j, drift, users, trust } = readInstalled(rootArg);
  const live = root === '/';
  const apparmorEnabled = apparmor.enforcing();

  const net = new NetTables();
  const guests: GuestStatus[] = current.guests.map(({ name }) => {
    const unit = N.unitName(name);
    const expected = expectations(current.files.get(`root/etc/systemd/system/${unit}`)?.toString('utf8'), users, name);
    const pid = live ? findQemu(unit) : undefined;
    const proc = pid ? processView(pid, net) : null;
    return {
      name,
      unit,
      running: live ? !!proc : null,
      process: proc,
      expected,
      weaker: proc ? weaknesses(expected, proc, apparmorEnabled) : [],
      drift: drift.filter((d) => guestPart(d.path, name) !== undefined),
    };
  });
  const shared = drift.filter((d) => !guests.some((g) => g.drift.includes(d)));
  const signed = await signing(root, current, trust);
  return {
    root,
    installed: { manifest: current.manifestHash, previous: previous?.manifestHash || null },
    signing: signed,
    interrupted: j ? { action: j.action, from: j.from, to: j.to, started: j.started } : null,
    guests,
    drift: shared,
    ok:
      !j &&
      drift.length === 0 &&
      guests.every((g) => g.weaker.length === 0) &&
      (signed.enrolled === null || signed.signers.length > 0),
  };
}

export function formatStatus(r: StatusReport): string {
  const out: string[] = [
    `Installed under ${r.root}: bundle ${r.installed!.manifest.slice(0, 12)}${r.installed!.previous ? `; previous bundle ${r.installed!.previous.slice(0, 12)}, restorable with rollback` : ''}`,
  ];
  if (r.interrupted)
    out.push(
      `INTERRUPTED: a ${r.interrupted.action} started ${r.interrupted.started} did not finish; run apply (or rollback) to complete it`,
    );
  out.push(...formatSigning(r.signing));
  if (r.root !== '/') out.push(`(${r.root} is a tree: processes are not looked at, only the files)`);
  for (const g of r.guests) {
    const p = g.process;
    out.push(
      '',
      `${g.name}  ${g.unit}  ${p ? `running, pid ${p.pid}` : g.running === null ? 'not looked at (a tree)' : 'not running'}`,
    );
    if (p) {
      const modes = [...new Set(Object.values(p.seccomp))].join(',');
      out.push(
        `  uid ${p.uid.join('/')}  gid ${p.gid.join('/')}  CapEff ${p.capEff}  NoNewPrivs ${p.noNewPrivs ? 1 : 0}  Seccomp ${modes} (${plural(Object.keys(p.seccomp).length, 'thread')})`,
        `  AppArmor ${p.apparmor ? `${p.apparmor.label}${p.apparmor.mode ? ` (${p.apparmor.mode})` : ''}` : 'not available'}`,
        `  cgroup ${p.cgroup ?? '?'}  memory.max ${p.limits.memoryMax ?? 'n/a'}  cpu.max ${p.limits.cpuMax ?? 'n/a'}  pids.max ${p.limits.pidsMax ?? 'n/a'}`,
        `  listening: ${p.listening.length ? p.listening.map((l) => `${l.proto} ${l.address}`).join(', ') : 'nothing'}`,
      );
    }
    for (const w of g.weaker) out.push(`  WEAKER: ${w}`);
    for (const d of g.drift) out.push(`  DRIFT: ${d.path} ${d.problem} since it was installed`);
  }
  for (const d of r.drift) out.push(`DRIFT: ${d.path} ${d.problem} since it was installed`);
  out.push(
    '',
    r.ok
      ? r.root === '/'
        ? 'OK: every running guest is confined as installed, and the files match the record.'
        : 'OK: the files match the record (in a tree no process is looked at).'
      : `FINDINGS: see ${listed([
          ...(r.signing.enrolled !== null && r.signing.signers.length === 0 ? ['UNSIGNED'] : []),
          ...(r.guests.some((g) => g.weaker.length) ? ['WEAKER'] : []),
          ...(r.drift.length || r.guests.some((g) => g.drift.length) ? ['DRIFT'] : []),
          ...(r.interrupted ? ['INTERRUPTED'] : []),
        ])} above.`,
  );
  return out.join('\n') + '\n';
}

function formatSigning(s: SigningStatus): string[] {
  const who = (x: SigningStatus['signers'][number]) =>
    visible(
      describeSigner({ path: x.file, principal: x.principal ?? undefined, type: x.type, fingerprint: x.fingerprint }),
    );
  const why = s.problems.map((p) => `  ${visible(p.path)}: ${visible(p.problem)}`);
  if (s.enrolled === null)
    return [
      `Not enrolled: ${visible(s.trustFile)} is absent, so apply and rollback here accept unsigned bundles.`,
      s.signers.length
        ? `Signed with ${s.signers.map(who).join(', ')}; no trust file here names the signer.`
        : 'The installed bundle carries no signature.',
      ...why,
    ];
  if (s.signers.length)
    return [`Signed by ${s.signers.map(who).join(', ')}, allowed by ${visible(s.enrolled)}.`, ...why];
  return [`UNSIGNED: no key ${visible(s.enrolled)} allows signed the installed bundle:`, ...why];
}
