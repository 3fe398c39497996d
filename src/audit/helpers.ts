// Checks on the guests' helpers (src/helpers/: a TPM emulator, swtpm), whoever started them: who each runs as,
// what the kernel lets it do, its own seccomp filter, its label where its unit sets one, and who may read
// the state it keeps. They judge what live.ts read against the helper's expectation: HELPER_POLICY for `audit`,
// the installed helper unit for `status`. The judging of a process's credentials, filter and label is QEMU's
// (process.ts); what a finding says is the helper's.
import { modeText, mayRead } from './files.js';
import { CONFINEMENT } from '../confine/index.js';
import { judgeCapabilities, judgeNoNewPrivs, judgeRoot, judgeSeccomp, judgeUser } from './process.js';
import type { Expectation } from './expect.js';
import { finding, type AuditCheck, type HelperProcess, type HostView, type Judged, type Severity } from './types.js';
import type * as N from '../names.js';

/** The answers field that gives a guest each kind of helper. */
const answerOf = (kind: N.HelperKind) =>
  kind === 'tpm' ? 'guests.N.tpm' : kind === 'net' ? 'guests.N.network' : 'guests.N.shares';

/** What every helper finding says it is: the program, and that it serves one guest's QEMU. */
const BUNDLE =
  'The bundle runs each guest’s helpers in units of their own, as the guest’s own user, with no capabilities, no_new_privs, the helper’s own seccomp filter inside the unit’s, an AppArmor profile of its own, and its state in the guest’s state directory, mode 0700.';

/** A check that judges each helper on its own: one finding for each helper `judge` says is wrong. */
function eachHelper(
  name: string,
  severity: Severity | ((h: HelperProcess, j: Judged) => Severity),
  judge: (h: HelperProcess, want: Expectation, view: HostView) => Judged | undefined,
  why: string,
): AuditCheck {
  return {
    name,
    tool: null,
    debianPackage: null,
    judges: 'process',
    run: (view, expect) =>
      view.helpers.flatMap((h) => {
        const j = judge(h, expect(h), view);
        if (!j) return [];
        const s = typeof severity === 'string' ? severity : severity(h, j);
        return [finding(name, s, h, `${h.guest} ${j.summary}`, j.evidence, why, BUNDLE, answerOf(h.kind))];
      }),
  };
}

const root = eachHelper(
  'helper.root',
  'high',
  judgeRoot,
  'A guest talks to its helper (a TPM emulator receives every TPM command the guest sends): one that takes it over acts as that process, and as root it owns the whole host.',
);

const user = eachHelper(
  'helper.user',
  'high',
  judgeUser,
  'The installed unit runs the helper as its guest’s own user; as another user it reaches what that user reaches, another guest’s files included.',
);

const capabilities = eachHelper(
  'helper.capabilities',
  'high',
  judgeCapabilities,
  'Capabilities are privileges its guest does not have: a guest that takes over the helper gets them.',
);

const noNewPrivs = eachHelper(
  'helper.no-new-privs',
  'medium',
  judgeNoNewPrivs,
  'Without no_new_privs a helper taken over by its guest can execute a setuid program or a file with capabilities and gain privileges it never had.',
);

const seccomp = eachHelper(
  'helper.seccomp',
  'high',
  (h, want) =>
    h.ownSeccomp.on
      ? judgeSeccomp(h, want)
      : {
          summary: `runs with its own seccomp filter off (${h.ownSeccomp.evidence})`,
          evidence: `/proc/${h.pid}/cmdline: ${h.ownSeccomp.evidence}`,
        },
  'A helper’s seccomp filter takes away the system calls it never needs; without it a guest that takes the helper over can call every system call, the whole host kernel attack surface. swtpm installs its own unless told not to (--seccomp action=none, or log, which only logs).',
);

/** Its label from each confinement backend its expectation names (status: its unit's AppArmorProfile=, …). */
function judgeLabel(h: HelperProcess, want: Expectation): Judged | undefined {
  for (const b of CONFINEMENT) {
    const wanted = want.label(b.id);
    if (wanted === undefined) continue;
    const raw = h.labels[b.id];
    const evidence = `${b.name} label of /proc/${h.pid}: ${raw ?? '(unreadable)'}`;
    const { label, mode } = b.parseLabel(raw ?? '');
    if (wanted !== null && label !== wanted)
      return { summary: `${b.name} label ${label || 'none'}, not ${wanted}`, evidence };
    if (!raw || !b.enforces(raw))
      return { summary: `not confined by ${b.name} (${label || 'no label'}${mode ? `, ${mode}` : ''})`, evidence };
  }
  return undefined;
}

const label = eachHelper(
  'helper.label',
  'medium',
  judgeLabel,
  'The installed unit puts the helper under a policy of its own (its own AppArmor profile), which allows its own state and socket alone; under any other it reaches what that policy allows, or everything.',
);

/**
 * Who besides the helper's own user may read its state: every user (each directory above the file searchable, the
 * file readable by others), or the members of a group that is not the helper's own.
 */
function judgeStateMode(h: HelperProcess, _want: Expectation, view: HostView): Judged | undefined {
  if (!h.state) return undefined;
  const stat = (path: string) => {
    const w = view.files.stat.get(path);
    return w && 'ok' in w ? w.ok : undefined;
  };
  const file = stat(h.state.file);
  if (!file || file.type !== 'regular file') return undefined;
  const evidence = `${h.state.file}: ${modeText(file)}`;
  if (mayRead({ uid: -1, gids: [] }, h.state.file, stat))
    return {
      summary: `state ${h.state.file} is readable by every user`,
      evidence: `${evidence} (every directory above it searchable by every user)`,
    };
  const ownGid = h.owner.gids[1];
  if (file.gid !== ownGid && mayRead({ uid: -1, gids: [file.gid] }, h.state.file, stat))
    return {
      summary: `state ${h.state.file} is readable by group ${file.gid}`,
      evidence: `${evidence} (its group is not the one ${h.guest} runs as)`,
    };
  return undefined;
}

const stateMode = eachHelper(
  'helper.state-mode',
  (_h, j) => (/every user/.test(j.summary) ? 'high' : 'medium'),
  judgeStateMode,
  'A TPM’s state holds its guest’s own secrets (the keys BitLocker seals the disk with, measured-boot secrets): whoever reads it has them, as whoever reads the disk has the data.',
);

export const helperChecks: AuditCheck[] = [root, user, capabilities, noNewPrivs, seccomp, label, stateMode];
