// What a live QEMU is held to. `audit` holds every process to QEMU's security documentation (POLICY); `status`
// holds each installed guest's process to its installed unit file (fromUnit): the user it names, the
// capabilities it leaves, NoNewPrivileges=, the system call filter, the label each confinement backend reads in it
// (AppArmorProfile=, …), MemoryMax=, TasksMax=, and the QEMU command line of its ExecStart=, so that what the unit itself asks for (an accepted risk) is not
// counted against the process. The same checks then judge both (assess.ts).
import { type PasswdEntry, uidOf } from '../passwd.js';

export interface Expectation {
  /** Where it comes from, for the words of a finding: QEMU's security documentation, or the installed unit. */
  from: 'policy' | 'unit';
  /** The user it runs as: a name and its uid (null when the host has no such user), or null for any non-root. */
  user: { name: string; uid: number | null } | null;
  noCapabilities: boolean;
  noNewPrivs: boolean;
  /** Every thread under a seccomp filter. */
  seccomp: boolean;
  /**
   * The label a confinement backend must give the process, by the backend's id: this one, enforced; any label it
   * enforces (null); or none expected (undefined).
   */
  label(backend: string): string | null | undefined;
  /** memory.max: exactly this (bytes, as the kernel writes it), "own" (a finite limit no other guest shares), or
   * undefined when not judged. */
  memory: string | 'own' | undefined;
  /** pids.max, the same way. */
  pids: string | 'own' | undefined;
  /** Command-line checks that the unit's own ExecStart= triggers: what the answers accepted, not a weakening. */
  accepted: Set<string>;
}

export const POLICY: Expectation = {
  from: 'policy',
  user: null,
  noCapabilities: true,
  noNewPrivs: true,
  seccomp: true,
  label: () => null,
  memory: 'own',
  pids: 'own',
  accepted: new Set(),
};

/**
 * What audit holds a guest's helper to (a TPM emulator, swtpm), whoever started it: never root, no capabilities,
 * its seccomp filter on every thread; src/audit/helpers.ts also judges who may read its state. No no_new_privs
 * and no AppArmor profile of its own are asked of it here: those are what qemu-harden's helper unit adds, and
 * status holds the unit's helper to them.
 */
export const HELPER_POLICY: Expectation = {
  from: 'policy',
  user: null,
  noCapabilities: true,
  noNewPrivs: false,
  seccomp: true,
  label: () => undefined,
  memory: undefined,
  pids: undefined,
  accepted: new Set(),
};

/**
 * The unit's settings status reports as expected (its --json `expected`), beside the expectation itself: after
 * memoryMax, the label each confinement backend reads in the unit (null where it names none), under the
 * backend's own key ("apparmorProfile").
 */
export type UnitSettings = {
  user: string;
  uid: number | null;
  memoryMax: string | null;
  seccomp: boolean;
  noNewPrivs: boolean;
  noCapabilities: boolean;
} & { [confinementKey: string]: string | number | boolean | null };

/** The value of the last assignment of a setting in a unit file ("" for an empty one), or undefined. */
function setting(text: string, key: string): string | undefined {
  let last: string | undefined;
  for (const line of logicalLines(text)) if (line.startsWith(`${key}=`)) last = line.slice(key.length + 1).trim();
  return last;
}

/** A unit file's lines with backslash-continued lines joined (the backslash becomes a space, as systemd reads it). */
function logicalLines(text: string): string[] {
  const out: string[] = [];
  let cur: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (cur !== undefined && /^\s*[#;]/.test(line)) continue;
    const joined = cur === undefined ? line.trimStart() : `${cur}${line}`;
    if (joined.endsWith('\\')) cur = `${joined.slice(0, -1)} `;
    else {
      out.push(joined);
      cur = undefined;
    }
  }
  if (cur !== undefined) out.push(cur);
  return out;
}

const C_ESCAPES: Record<string, string> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  s: ' ',
  '\\': '\\',
  '"': '"',
  "'": "'",
};

/**
 * The words of a command line as systemd splits ExecStart= (extract_first_word with EXTRACT_UNQUOTE and
 * EXTRACT_CUNESCAPE): double or single quotes group, C escapes are decoded, "%%" is "%" and "$$" is "$". The
 * leading prefixes (-, @, +, !, :) are dropped. Undefined when the quoting does not close.
 */
export function execWords(value: string): string[] | undefined {
  const words: string[] = [];
  let i = 0;
  const n = value.length;
  while (i < n) {
    while (i < n && /\s/.test(value[i]!)) i++;
    if (i >= n) break;
    let word = '';
    let quote: string | null = null;
    for (; i < n; i++) {
      const c = value[i]!;
      if (quote === null && /\s/.test(c)) break;
      if (c === '\\') {
        const e = value[++i];
        if (e === undefined) return undefined;
        if (e in C_ESCAPES) word += C_ESCAPES[e];
        else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(value.slice(i + 1, i + 3))) {
          word += String.fromCharCode(parseInt(value.slice(i + 1, i + 3), 16));
          i += 2;
        } else if (/[0-7]/.test(e) && /^[0-7]{3}$/.test(value.slice(i, i + 3))) {
          word += String.fromCharCode(parseInt(value.slice(i, i + 3), 8));
          i += 2;
        } else word += e;
      } else if (quote !== null && c === quote) quote = null;
      else if (quote === null && (c === '"' || c === "'")) quote = c;
      else word += c;
    }
    if (quote !== null) return undefined;
    words.push(word.replaceAll('%%', '%').replaceAll('$$', '$'));
  }
  if (words.length) words[0] = words[0]!.replace(/^[-@+!:]+/, '');
  return words;
}

/** The argv of a unit's ExecStart= (the last one), or undefined when it has none that reads. */
export function unitArgv(text: string): string[] | undefined {
  const v = setting(text, 'ExecStart');
  return v === undefined ? undefined : execWords(v);
}

const MEMORY_UNITS: Record<string, bigint> = {
  '': 1n,
  K: 1024n,
  M: 1024n ** 2n,
  G: 1024n ** 3n,
  T: 1024n ** 4n,
};

/** MemoryMax=/TasksMax= as the kernel writes the limit ("max" for infinity), or undefined for what is not a number. */
function limitValue(v: string | undefined, units: boolean): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (v === 'infinity') return 'max';
  const m = (units ? /^(\d+)([KMGT]?)$/ : /^(\d+)()$/).exec(v);
  return m ? String(BigInt(m[1]!) * MEMORY_UNITS[m[2]!]!) : undefined;
}

/** A confinement backend as the unit's expectation needs it (src/confine/backend.ts), and whether it is enforced. */
export interface UnitConfinement {
  id: string;
  /** Its key in the settings: "apparmorProfile". */
  key: string;
  /** Whether the kernel enforces it: a label it does not enforce is not expected of the process. */
  enforced: boolean;
  expectedLabel(setting: (key: string) => string | undefined): string | null;
}

/**
 * The expectation a guest's installed unit sets for its QEMU, with the label each confinement backend reads in
 * it. `accepted` is filled by the caller, from the checks the unit's own command line triggers.
 */
export function fromUnit(
  unitText: string | undefined,
  users: PasswdEntry[],
  defaultUser: string,
  confinement: readonly UnitConfinement[],
): { expectation: Expectation; settings: UnitSettings; argv: string[] | undefined } {
  const text = unitText ?? '';
  const user = setting(text, 'User') ?? defaultUser;
  const memory = limitValue(setting(text, 'MemoryMax'), true);
  const named = confinement.map((c) => ({ ...c, label: c.expectedLabel((key) => setting(text, key)) }));
  const expected = new Map(named.filter((c) => c.label !== null && c.enforced).map((c) => [c.id, c.label]));
  const argv = unitText === undefined ? undefined : unitArgv(text);
  const settings: UnitSettings = {
    user,
    uid: uidOf(users, user) ?? null,
    memoryMax: memory ?? setting(text, 'MemoryMax') ?? null,
    ...Object.fromEntries(named.map((c) => [c.key, c.label])),
    seccomp: !!setting(text, 'SystemCallFilter') || /-sandbox on/.test(text),
    noNewPrivs: setting(text, 'NoNewPrivileges') === 'yes',
    noCapabilities: setting(text, 'CapabilityBoundingSet') === '',
  };
  return {
    settings,
    argv,
    expectation: {
      from: 'unit',
      user: { name: user, uid: settings.uid },
      noCapabilities: settings.noCapabilities,
      noNewPrivs: settings.noNewPrivs,
      seccomp: settings.seccomp,
      label: (backend) => expected.get(backend),
      memory,
      pids: limitValue(setting(text, 'TasksMax'), false),
      accepted: new Set(),
    },
  };
}
