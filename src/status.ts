// `qemu-harden status`: for every guest of the installed bundle (the record's `current`), whether its QEMU runs
// and how it is confined — read from the live process in /proc: uid/gid, CapEff, NoNewPrivs, Seccomp of every
// thread, AppArmor label and mode, cgroup and its limits, listening sockets — and whether the installed files
// still match the record. A guest running weaker than its installed unit says, or a drifted file, is a finding.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from './errors.js';
import { hostFiles, readRecord, recover, RECORD_DIR } from './record.js';

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

interface Drift {
  path: string;
  problem: 'missing' | 'changed' | 'mode' | 'not a regular file';
}

interface GuestStatus {
  name: string;
  unit: string;
  running: boolean;
  process: ProcessView | null;
  expected: { user: string; uid: number | null; memoryMax: string | null; apparmorProfile: string | null; seccomp: boolean; noNewPrivs: boolean; noCapabilities: boolean };
  /** How the live process is weaker than the installed unit says; empty when it is not (or does not run). */
  weaker: string[];
  drift: Drift[];
}

export interface StatusReport {
  root: string;
  installed: { manifest: string; previous: string | null } | null;
  interrupted: { action: string; from: string | null; to: string; started: string } | null;
  guests: GuestStatus[];
  /** Drift of installed files that belong to no single guest (the slice, users, directories, udev, the abstraction). */
  drift: Drift[];
  ok: boolean;
}

const field = (status: string, k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim();
const read = (p: string) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
};

/** The QEMU of a guest: a process in the guest's service cgroup running qemu-system-*. */
function findQemu(unit: string): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cg = read(`/proc/${e}/cgroup`);
    if (!cg || !cg.split('\n').some((l) => l.endsWith(`/${unit}`))) continue;
    const argv0 = (read(`/proc/${e}/cmdline`) ?? '').split('\0')[0] ?? '';
    if (/qemu-system-/.test(argv0)) return Number(e);
  }
  return undefined;
}

/** Socket inodes this process holds open. */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      continue;
    }
  }
  return out;
}

function inetAddress(hex: string, v6: boolean): string {
  const [a, p] = hex.split(':') as [string, string];
  const port = parseInt(p, 16);
  if (!v6) return `${[3, 2, 1, 0].map((i) => parseInt(a.slice(i * 2, i * 2 + 2), 16)).join('.')}:${port}`;
  const words: string[] = [];
  for (let w = 0; w < 4; w++) {
    const le = a.slice(w * 8, w * 8 + 8);
    const be = le.match(/../g)!.reverse().join('');
    words.push(be.slice(0, 4), be.slice(4));
  }
  return `[${words.map((x) => parseInt(x, 16).toString(16)).join(':')}]:${port}`;
}

/** Listening sockets of a process: its socket inodes looked up in its own network namespace's tables. */
function listeners(pid: number): Listener[] {
  const inodes = socketInodes(pid);
  const out: Listener[] = [];
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
    for (const line of (read(`/proc/${pid}/net/${proto}`) ?? '').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9]!)) continue;
      // TCP state 0A is LISTEN; a bound UDP socket (state 07) is what listening means for UDP.
      if ((proto.startsWith('tcp') && f[3] === '0A') || (proto.startsWith('udp') && f[3] === '07')) out.push({ proto, address: inetAddress(f[1]!, proto.endsWith('6')) });
    }
  }
  for (const line of (read(`/proc/${pid}/net/unix`) ?? '').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Flags 00010000 is __SO_ACCEPTCON: the socket listens.
    if (f.length >= 7 && inodes.has(f[6]!) && (parseInt(f[3]!, 16) & 0x10000) !== 0) out.push({ proto: 'unix', address: f[7] ?? '(unnamed)' });
  }
  return out.sort((x, y) => (x.proto + x.address < y.proto + y.address ? -1 : 1));
}

function cgroupOf(pid: number): string | null {
  const lines = (read(`/proc/${pid}/cgroup`) ?? '').split('\n');
  // The unified hierarchy's line; on a hybrid host, where the unified hierarchy holds no service, systemd's own.
  const line = lines.find((l) => l.startsWith('0::') && l !== '0::/') ?? lines.find((l) => l.includes(':name=systemd:'));
  return line ? line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1) : null;
}

function processView(pid: number): ProcessView | null {
  const status = read(`/proc/${pid}/status`);
  if (!status) return null;
  const seccomp: Record<string, number> = {};
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    const s = read(`/proc/${pid}/task/${t}/status`);
    if (s) seccomp[t] = Number(field(s, 'Seccomp') ?? -1);
  }
  const label = (read(`/proc/${pid}/attr/apparmor/current`) ?? read(`/proc/${pid}/attr/current`))?.replace(/\0/g, '').trim();
  const m = label ? /^(.*?)(?: \((\w+)\))?$/.exec(label) : null;
  const cgroup = cgroupOf(pid);
  const cg = (f: string) => (cgroup ? read(join('/sys/fs/cgroup', cgroup, f))?.trim() ?? null : null);
  return {
    pid,
    uid: (field(status, 'Uid') ?? '').split(/\s+/).map(Number),
    gid: (field(status, 'Gid') ?? '').split(/\s+/).map(Number),
    capEff: field(status, 'CapEff') ?? '',
    noNewPrivs: field(status, 'NoNewPrivs') === '1',
    seccomp,
    apparmor: m ? { label: m[1]!, mode: m[2] ?? null } : null,
    cgroup,
    limits: { memoryMax: cg('memory.max'), cpuMax: cg('cpu.max'), pidsMax: cg('pids.max') },
    listening: listeners(pid),
  };
}

/** The settings of an installed unit file that status holds the live process to. */
function expectations(unitText: string | undefined, passwd: string | undefined, name: string): GuestStatus['expected'] {
  const setting = (k: string) => {
    const all = [...(unitText ?? '').matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
    return all.at(-1);
  };
  const user = setting('User') ?? `qemu-${name}`;
  const uidLine = (passwd ?? '').split('\n').find((l) => l.startsWith(`${user}:`));
  const mem = setting('MemoryMax');
  const mib = mem && /^(\d+)M$/.exec(mem);
  return {
    user,
    uid: uidLine ? Number(uidLine.split(':')[2]) : null,
    memoryMax: mib ? String(Number(mib[1]) * 1024 * 1024) : mem ?? null,
    apparmorProfile: setting('AppArmorProfile') ?? null,
    seccomp: !!setting('SystemCallFilter') || /-sandbox on/.test(unitText ?? ''),
    noNewPrivs: setting('NoNewPrivileges') === 'yes',
    noCapabilities: setting('CapabilityBoundingSet') === '',
  };
}

function weaknesses(e: GuestStatus['expected'], p: ProcessView, apparmorEnabled: boolean): string[] {
  const out: string[] = [];
  if (p.uid.some((u) => u === 0)) out.push('runs as root');
  else if (e.uid !== null && p.uid.some((u) => u !== e.uid)) out.push(`runs as uid ${p.uid.join('/')}, not ${e.user} (${e.uid})`);
  if (e.noCapabilities && !/^0+$/.test(p.capEff)) out.push(`holds capabilities (CapEff ${p.capEff})`);
  if (e.noNewPrivs && !p.noNewPrivs) out.push('NoNewPrivs is off');
  if (e.seccomp) {
    const loose = Object.entries(p.seccomp).filter(([, m]) => m !== 2);
    if (loose.length) out.push(`threads without a seccomp filter: ${loose.map(([t]) => t).join(', ')}`);
  }
  if (e.apparmorProfile && apparmorEnabled) {
    if (p.apparmor?.label !== e.apparmorProfile) out.push(`AppArmor label ${p.apparmor?.label ?? 'none'}, not ${e.apparmorProfile}`);
    else if (p.apparmor.mode !== 'enforce') out.push(`AppArmor profile ${e.apparmorProfile} in ${p.apparmor.mode ?? 'unknown'} mode, not enforce`);
  }
  if (e.memoryMax && p.limits.memoryMax !== null && p.limits.memoryMax !== e.memoryMax) out.push(`memory.max is ${p.limits.memoryMax}, not ${e.memoryMax}`);
  return out;
}

export function status(rootArg: string): StatusReport {
  if (!existsSync(rootArg)) throw new InputError(`--root: ${rootArg} does not exist`);
  const root = realpathSync(resolve(rootArg));
  const rec = readRecord(root);
  const j = rec.journal;
  recover(rec, true);
  if (!rec.current)
    throw new InputError(
      j
        ? `nothing is installed under ${root} yet: the first ${j.action} (started ${j.started}) did not complete; run apply again`
        : `nothing is installed under ${root}: ${join(root, RECORD_DIR)} holds no current bundle (run apply first)`,
    );
  const live = root === '/';
  const apparmorEnabled = read('/sys/module/apparmor/parameters/enabled')?.trim() === 'Y';
  const passwd = read(join(root, 'etc/passwd'));

  const drift: Drift[] = [];
  for (const [hostPath, hash] of hostFiles(rec.current)) {
    const p = join(root, hostPath);
    try {
      const st = lstatSync(p);
      if (!st.isFile()) drift.push({ path: hostPath, problem: 'not a regular file' });
      else if (createHash('sha256').update(readFileSync(p)).digest('hex') !== hash) drift.push({ path: hostPath, problem: 'changed' });
      else if ((st.mode & 0o7777) !== 0o644) drift.push({ path: hostPath, problem: 'mode' });
    } catch {
      drift.push({ path: hostPath, problem: 'missing' });
    }
  }
  const owns = (g: string, h: string) =>
    [`/etc/systemd/system/qemu-${g}.service`, `/etc/systemd/system/qemu-${g}-tap.service`, `/etc/apparmor.d/qemu-harden-${g}`, `/etc/apparmor.d/qemu-harden.d/${g}`].includes(h);

  const guests: GuestStatus[] = rec.current.guests.map((name) => {
    const unit = `qemu-${name}.service`;
    const expected = expectations(read(join(rec.current!.dir, 'root/etc/systemd/system', unit)), passwd, name);
    const pid = live ? findQemu(unit) : undefined;
    const proc = pid ? processView(pid) : null;
    return { name, unit, running: !!proc, process: proc, expected, weaker: proc ? weaknesses(expected, proc, apparmorEnabled) : [], drift: drift.filter((d) => owns(name, d.path)) };
  });
  const shared = drift.filter((d) => !guests.some((g) => g.drift.includes(d)));
  return {
    root,
    installed: { manifest: rec.current.manifestHash, previous: rec.previous?.manifestHash ?? null },
    interrupted: j ? { action: j.action, from: j.from, to: j.to, started: j.started } : null,
    guests,
    drift: shared,
    ok: !j && drift.length === 0 && guests.every((g) => g.weaker.length === 0),
  };
}

export function formatStatus(r: StatusReport): string {
  const out: string[] = [`Installed under ${r.root}: bundle ${r.installed!.manifest.slice(0, 12)}${r.installed!.previous ? ` (rollback to ${r.installed!.previous.slice(0, 12)})` : ''}`];
  if (r.interrupted) out.push(`INTERRUPTED: a ${r.interrupted.action} started ${r.interrupted.started} did not finish; run apply (or rollback) to complete it`);
  if (r.root !== '/') out.push(`(${r.root} is a tree: processes are not looked at, only the files)`);
  for (const g of r.guests) {
    const p = g.process;
    out.push('', `${g.name}  ${g.unit}  ${p ? `running, pid ${p.pid}` : 'not running'}`);
    if (p) {
      const modes = [...new Set(Object.values(p.seccomp))].join(',');
      out.push(
        `  uid ${p.uid.join('/')}  gid ${p.gid.join('/')}  CapEff ${p.capEff}  NoNewPrivs ${p.noNewPrivs ? 1 : 0}  Seccomp ${modes} (${Object.keys(p.seccomp).length} threads)`,
        `  AppArmor ${p.apparmor ? `${p.apparmor.label}${p.apparmor.mode ? ` (${p.apparmor.mode})` : ''}` : 'not available'}`,
        `  cgroup ${p.cgroup ?? '?'}  memory.max ${p.limits.memoryMax ?? 'n/a'}  cpu.max ${p.limits.cpuMax ?? 'n/a'}  pids.max ${p.limits.pidsMax ?? 'n/a'}`,
        `  listening: ${p.listening.length ? p.listening.map((l) => `${l.proto} ${l.address}`).join(', ') : 'nothing'}`,
      );
    }
    for (const w of g.weaker) out.push(`  WEAKER: ${w}`);
    for (const d of g.drift) out.push(`  DRIFT: ${d.path} ${d.problem} since it was installed`);
  }
  for (const d of r.drift) out.push(`DRIFT: ${d.path} ${d.problem} since it was installed`);
  out.push('', r.ok ? 'OK: every running guest is confined as installed, and the files match the record.' : 'FINDINGS: see WEAKER, DRIFT and INTERRUPTED above.');
  return out.join('\n') + '\n';
}
