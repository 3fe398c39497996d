// `qemu-harden status`: for every guest of the installed bundle (the record's `current`), whether its QEMU runs
// and how it is confined, and so for each of its helper units (its TPM's swtpm), whether the installed files still
// match the record, and who signed the installed bundle.
// The live side is audit's: one reader of live QEMU processes (audit/live.ts: uid/gid, CapEff, NoNewPrivs,
// Seccomp of every thread, its label from each confinement backend, cgroup and its limits, sockets, the files the command line names) and
// one assessor table (audit/assess.ts), run here with each guest's installed unit as its expectation instead of
// QEMU's security documentation. What the live process does that its unit does not ask for is reported as
// weaker; a drifted file, or an enrolled host running a bundle none of its allowed keys signed (its signatures,
// kept in the record, judged by ssh-keygen against the host's allowed_signers), is a finding too.
import { assess } from './audit/assess.js';
import { parseCommandLine } from './audit/cmdline.js';
import { fromUnit, POLICY, type Expectation, type UnitSettings } from './audit/expect.js';
import { readHost } from './audit/live.js';
import {
  commandLineOnly,
  viewOf,
  type HelperProcess,
  type LiveProcess,
  type QemuProcess,
  type Unseen,
} from './audit/types.js';
import type { ConfinementBackend, Label } from './confine/backend.js';
import { CONFINEMENT } from './confine/index.js';
import { InputError } from './errors.js';
import { visible } from './escape.js';
import type { Bundle } from './install/bundle.js';
import { readInstalled, type Drift, type Installed } from './install/installed.js';
import { guestPart } from './install/paths.js';
import { wayOn, type Journal } from './install/record.js';
import { HELPERS } from './helpers/index.js';
import * as N from './names.js';
import { checkSigned, describeSigner, HOST_TRUST, signedBy, type Signer } from './sshsig.js';
import { listed, plural } from './words.js';

interface Listener {
  proto: 'tcp' | 'tcp6' | 'udp' | 'udp6' | 'unix';
  address: string;
}

/**
 * The process as status --json shows it: after seccomp, its label from each registered confinement backend under
 * the backend's id ("apparmor"), null where it carries none.
 */
type ProcessView = {
  pid: number;
  uid: number[];
  gid: number[];
  capEff: string;
  noNewPrivs: boolean;
  /** Seccomp mode of every thread (0 none, 1 strict, 2 filter), by thread id. */
  seccomp: Record<string, number>;
  cgroup: string | null;
  limits: { memoryMax: string | null; cpuMax: string | null; pidsMax: string | null };
  listening: Listener[];
} & { [backend: string]: unknown };

/** A backend's key in status --json's `expected`: its id and its noun, "apparmorProfile". */
const expectedKey = (b: ConfinementBackend) => `${b.id}${b.noun[0]!.toUpperCase()}${b.noun.slice(1)}`;

/** One of a guest's helper units (src/helpers/), as installed and as it runs. */
interface HelperStatus {
  kind: string;
  /** What it is: "TPM 2.0 emulator (swtpm)". */
  title: string;
  unit: string;
  /** Null when a process in its unit did not answer in time. */
  running: boolean | null;
  process: ProcessView | null;
  expected: UnitSettings;
  weaker: string[];
}

interface GuestStatus {
  name: string;
  unit: string;
  /** Whether its QEMU runs; null when that is not known: in a tree (--root), where no process is looked at, or
   * when a process in its unit did not answer in time. */
  running: boolean | null;
  process: ProcessView | null;
  /** What the installed unit says of the process. */
  expected: UnitSettings;
  /** How the live process is weaker than the installed unit says (the findings' summaries); empty when it is
   * not (or does not run). */
  weaker: string[];
  /** Its helper units as the installed bundle has them, each judged against its own unit. */
  helpers: HelperStatus[];
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
  interrupted: { action: Journal['action']; from: string | null; to: string; started: string } | null;
  guests: GuestStatus[];
  /** Drift of installed files that belong to no single guest (the slice, users, directories, udev, the abstraction). */
  drift: Drift[];
  /** What of the live processes could not be read (always empty for a tree). */
  unseen: Unseen[];
  ok: boolean;
}

/** A QEMU's listening sockets as status shows them. */
function listening(q: QemuProcess): Listener[] {
  const inet = (q.listeners ?? []).map((l) => ({
    proto: l.proto,
    address: `${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`,
  }));
  const unix = q.unixSockets
    .filter((u) => u.listening)
    .map((u) => ({ proto: 'unix' as const, address: u.path ?? '(unnamed)' }));
  return [...inet, ...unix].sort((x, y) => (x.proto + x.address < y.proto + y.address ? -1 : 1));
}

/** The process as status --json shows it, from the one live model; a helper's sockets come from systemd. */
function processView(q: LiveProcess, listens: Listener[] = []): ProcessView {
  return {
    pid: q.pid,
    uid: q.owner.uids,
    gid: q.owner.gids,
    capEff: q.status.get('CapEff') ?? '',
    noNewPrivs: q.status.get('NoNewPrivs') === '1',
    seccomp: Object.fromEntries(q.threadSeccomp.map(([tid, mode]) => [String(tid), Number(mode)])),
    ...Object.fromEntries(
      CONFINEMENT.map((b) => {
        const raw = q.labels[b.id];
        return [b.id, raw ? b.parseLabel(raw) : null];
      }),
    ),
    cgroup: q.cgroup?.path ?? null,
    limits: q.cgroup?.own ?? { memoryMax: null, cpuMax: null, pidsMax: null },
    listening: listens,
  };
}

/**
 * The command-line checks the unit's own ExecStart= triggers: what the answers chose (an accepted risk, TCG for
 * emulation) and the unit asks for, so the live process doing the same is not weaker than installed.
 */
function acceptedBy(argv: string[] | undefined, name: string): Set<string> {
  if (!argv?.length) return new Set();
  const view = viewOf([commandLineOnly(0, argv, parseCommandLine(argv), name)]);
  return new Set(assess(view, () => POLICY, ['command line']).map((f) => f.check));
}

/** The guest's unit of a process: the last part of its service cgroup, when that is one of the units asked for. */
const unitOf = (lines: string[], units: Map<string, unknown>) =>
  lines.map((l) => l.slice(l.lastIndexOf('/') + 1)).find((u) => units.has(u));

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
  // Which backends the kernel enforces: a label it does not enforce is not expected of a process.
  const confinement = CONFINEMENT.map((b) => ({
    id: b.id,
    key: expectedKey(b),
    enforced: b.probe().enforced,
    expectedLabel: (setting: (key: string) => string | undefined) => b.expectedLabel(setting),
  }));

  // Each guest's expectation comes from its unit as installed (the record's copy, which drift compares with
  // the file on the host), and each of its helpers' from the helper's unit.
  const unitText = (unit: string) => current.files.get(`root/etc/systemd/system/${unit}`)?.toString('utf8');
  const units = new Map(current.guests.map(({ name }) => [N.unitName(name), name]));
  const expected = new Map(
    current.guests.map(({ name }) => {
      const e = fromUnit(unitText(N.unitName(name)), users, N.userName(name), confinement);
      e.expectation.accepted = acceptedBy(e.argv, name);
      return [name, e] as const;
    }),
  );
  /** Each helper unit the installed bundle has, by its unit name: its guest, its kind, what its unit says. */
  const helperUnits = new Map(
    current.guests.flatMap(({ name }) =>
      HELPERS.filter((h) => unitText(N.helperUnitName(name, h.kind)) !== undefined).map((h) => {
        const unit = N.helperUnitName(name, h.kind);
        return [unit, { name, h, e: fromUnit(unitText(unit), users, N.userName(name), confinement) }] as const;
      }),
    ),
  );
  const anyUnit = new Map([...units, ...[...helperUnits].map(([unit, { name }]) => [unit, name] as const)]);
  const view = live ? await readHost({ select: (lines) => unitOf(lines, anyUnit) !== undefined }) : viewOf([]);
  // One QEMU per guest, and one helper per helper unit: the first in its unit's cgroup.
  const qemuOf = new Map<string, QemuProcess>();
  for (const q of view.processes) {
    const name = units.get(unitOf(q.cgroupLines, units) ?? '');
    if (name !== undefined && !qemuOf.has(name)) qemuOf.set(name, q);
  }
  const helperOf = new Map<string, HelperProcess>();
  for (const h of view.helpers) {
    const unit = unitOf(h.cgroupLines, helperUnits);
    if (unit !== undefined && helperUnits.get(unit)!.h.kind === h.kind && !helperOf.has(unit)) helperOf.set(unit, h);
  }
  const expectationByPid = new Map<number, Expectation>([
    ...[...qemuOf].map(([name, q]) => [q.pid, expected.get(name)!.expectation] as const),
    ...[...helperOf].map(([unit, h]) => [h.pid, helperUnits.get(unit)!.e.expectation] as const),
  ]);
  const judged = { ...view, processes: [...qemuOf.values()], helpers: [...helperOf.values()] };
  const findings = assess(judged, (p) => expectationByPid.get(p.pid)!, ['process', 'command line']);
  const weakerOf = (p: LiveProcess | undefined) =>
    p ? findings.filter((f) => f.pid === p.pid && f.severity !== 'info').map((f) => f.summary) : [];

  // A guest (or helper) whose unit holds a process that did not answer in time is not known to run or not.
  const unknown = new Set(view.unread.map((u) => unitOf(u.cgroupLines, anyUnit)));
  const guests: GuestStatus[] = current.guests.map(({ name }) => {
    const q = qemuOf.get(name);
    return {
      name,
      unit: N.unitName(name),
      running: !live ? null : q ? true : unknown.has(N.unitName(name)) ? null : false,
      process: q ? processView(q, listening(q)) : null,
      expected: expected.get(name)!.settings,
      weaker: weakerOf(q),
      helpers: [...helperUnits]
        .filter(([, u]) => u.name === name)
        .map(([unit, { h, e }]) => {
          const p = helperOf.get(unit);
          return {
            kind: h.kind,
            title: h.title,
            unit,
            running: !live ? null : p ? true : unknown.has(unit) ? null : false,
            process: p ? processView(p) : null,
            expected: e.settings,
            weaker: weakerOf(p),
          };
        }),
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
    unseen: view.unseen,
    ok:
      !j &&
      drift.length === 0 &&
      view.unseen.length === 0 &&
      guests.every((g) => g.weaker.length === 0 && g.helpers.every((h) => h.weaker.length === 0)) &&
      (signed.enrolled === null || signed.signers.length > 0),
  };
}

/** The text report. Names, paths, labels and addresses come from the host and its processes: they are shown
 * through visible(), so none of them can move the cursor or pass for a line of the report. */
export function formatStatus(r: StatusReport): string {
  const v = visible;
  const out: string[] = [
    `Installed under ${v(r.root)}: bundle ${r.installed!.manifest.slice(0, 12)}${r.installed!.previous ? `; previous bundle ${r.installed!.previous.slice(0, 12)}, restorable with rollback` : ''}`,
  ];
  if (r.interrupted)
    out.push(
      `INTERRUPTED: a ${v(r.interrupted.action)} started ${v(r.interrupted.started)} did not finish; run ${wayOn(r.interrupted.action)}`,
    );
  out.push(...formatSigning(r.signing));
  if (r.root !== '/') out.push(`(${v(r.root)} is a tree: processes are not looked at, only the files)`);
  for (const g of r.guests) {
    const p = g.process;
    out.push(
      '',
      `${v(g.name)}  ${v(g.unit)}  ${p ? `running, pid ${p.pid}` : g.running !== null ? 'not running' : r.root !== '/' ? 'not looked at (a tree)' : 'not known: its process did not answer in time (see Not seen)'}`,
    );
    if (p) {
      out.push(...confinement(p, g.expected, '  '));
      out.push(
        `  listening: ${p.listening.length ? p.listening.map((l) => `${l.proto} ${v(l.address)}`).join(', ') : 'nothing'}`,
      );
    }
    for (const w of g.weaker) out.push(`  WEAKER: ${v(w)}`);
    for (const h of g.helpers) {
      const hp = h.process;
      out.push(
        `  ${v(h.title)}  ${v(h.unit)}  ${hp ? `running, pid ${hp.pid}` : h.running !== null ? 'not running' : r.root !== '/' ? 'not looked at (a tree)' : 'not known: its process did not answer in time (see Not seen)'}`,
      );
      if (hp) out.push(...confinement(hp, h.expected, '    '));
      for (const w of h.weaker) out.push(`    WEAKER: ${v(w)}`);
    }
    for (const d of g.drift) out.push(`  DRIFT: ${v(d.path)} ${d.problem} since it was installed`);
  }
  for (const d of r.drift) out.push(`DRIFT: ${v(d.path)} ${d.problem} since it was installed`);
  if (r.unseen.length) {
    out.push('', 'Not seen:');
    for (const u of r.unseen) out.push(`  ${v(u.what)}: ${v(u.reason)}`);
  }
  const seen = [
    ...(r.guests.some((g) => g.weaker.length || g.helpers.some((h) => h.weaker.length)) ? ['WEAKER'] : []),
    ...(r.drift.length || r.guests.some((g) => g.drift.length) ? ['DRIFT'] : []),
    ...(r.interrupted ? ['INTERRUPTED'] : []),
    ...(r.unseen.length ? ['Not seen'] : []),
  ];
  out.push(
    '',
    r.ok
      ? r.root === '/'
        ? 'OK: every running guest is confined as installed, and the files match the record.'
        : 'OK: the files match the record (in a tree no process is looked at).'
      : `FINDINGS: see ${listed([
          ...(r.signing.enrolled !== null && r.signing.signers.length === 0 ? ['UNSIGNED'] : []),
          ...seen,
        ])} above.`,
  );
  return out.join('\n') + '\n';
}

/**
 * A process's confinement as the text report shows it: credentials, its MAC labels, cgroup and its limits. A
 * backend's line is shown where the process has a label from it or its unit asks for one: on an AppArmor host no
 * line says SELinux is missing, and the reverse.
 */
function confinement(p: ProcessView, expected: UnitSettings, indent: string): string[] {
  const v = visible;
  const modes = [...new Set(Object.values(p.seccomp))].join(',');
  return [
    `${indent}uid ${p.uid.join('/')}  gid ${p.gid.join('/')}  CapEff ${v(p.capEff)}  NoNewPrivs ${p.noNewPrivs ? 1 : 0}  Seccomp ${modes} (${plural(Object.keys(p.seccomp).length, 'thread')})`,
    ...CONFINEMENT.flatMap((b) => {
      const l = p[b.id] as Label | null;
      if (!l && expected[expectedKey(b)] == null) return [];
      return `${indent}${b.name} ${l ? `${v(l.label)}${l.mode ? ` (${v(l.mode)})` : ''}` : 'not available'}`;
    }),
    `${indent}cgroup ${v(p.cgroup ?? '?')}  memory.max ${v(p.limits.memoryMax ?? 'n/a')}  cpu.max ${v(p.limits.cpuMax ?? 'n/a')}  pids.max ${v(p.limits.pidsMax ?? 'n/a')}`,
  ];
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
