// SELinux (sVirt): each guest's QEMU in the policy's virt domain with a category pair of its own, its own files
// labelled with that pair, shared read-only content without one. The text of the modules is src/gen/selinux.ts;
// this record says where they go, how `verify` compiles them (semodule into a throwaway copy of the host's policy
// store), how `apply` loads them and relabels the guests' files, how the kernel says it enforces, how a live
// QEMU's context reads, and what `audit` and `status` judge of it: QEMU unconfined or without categories, two
// QEMUs holding one pair, a disk not labelled with its guest's pair. After libvirt's security_selinux.c.
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { StepResult } from '../activation.js';
import { denialFindings, type Denial } from '../audit/denials.js';
import {
  eachProcess,
  finding,
  type AuditCheck,
  type Finding,
  type HelperProcess,
  type HostView,
  type QemuProcess,
} from '../audit/types.js';
import { confinementOf } from '../confinement.js';
import { visible } from '../escape.js';
import {
  categoriesOf,
  categoryPairs,
  CONTENT_TYPE,
  DOMAIN,
  IMAGE_TYPE,
  level,
  processContext,
  typeOf,
} from '../mcs.js';
import type { Answers, Guest } from '../model.js';
import { isShareKind } from '../names.js';
import { procAttr, readSmall } from '../procfs.js';
import { run, runSync, which } from '../tools.js';
import { plural } from '../words.js';
import type { ConfinementBackend, Label, Probe } from './backend.js';

/** Where the modules install: where distributions keep policy modules, a place the policy lets semodule map. */
const PACKAGES = 'usr/share/selinux/packages/qemu-harden';
const SHARED_MODULE = 'qemu-harden';
const modulePath = (module: string) => `${PACKAGES}/${module}.cil`;
const guestModule = (guest: string) => `${SHARED_MODULE}-${guest}`;
/** The kernel's own word: "1" enforcing, "0" permissive; absent where SELinux is not enabled. */
const ENFORCE = '/sys/fs/selinux/enforce';
/**
 * SELinux is the kernel's module in force only where its file system is mounted: the directory alone is no sign of
 * it (systemd-nspawn makes it inside a container on a host without SELinux), and there /proc/PID/attr/current is
 * another module's label.
 */
const selinuxEnabled = () => existsSync(ENFORCE);
/** The marker of a path to relabel in a module (src/gen/selinux.ts RELABEL). */
const RELABEL = '; relabel ';

/** What src/gen/selinux.ts writes; plan.ts loads that module through `generator`. */
type Text = typeof import('../gen/selinux.js');

const chosen = (a: Answers) => confinementOf(a) === 'selinux';
const pairOf = (a: Answers, g: Guest) => categoryPairs(a.guests).get(g.name)!;

/**
 * Domains that confine nothing: a QEMU in one of them reaches whatever its user may (the administrator's shell,
 * systemd itself, a service without a policy of its own).
 */
const UNCONFINED = new Set([
  'unconfined_t',
  'unconfined_execmem_t',
  'unconfined_qemu_t',
  'unconfined_service_t',
  'initrc_t',
  'init_t',
  'kernel_t',
  'sysadm_t',
  'spc_t',
  'unlabeled_t',
]);

const enforces = (raw: string) => raw !== '' && !UNCONFINED.has(typeOf(raw));

/** Whether anything is at a path, without following a final link (restorecon labels the link itself). */
const exists = (path: string) => lstatSync(path, { throwIfNoEntry: false }) !== undefined;

/** A path as restorecon reads its arguments, through glob(3) with braces: every wildcard escaped, it names itself. */
export const literalGlob = (path: string) => path.replace(/[\\*?[\]{}]/g, '\\$&');

/** The paths a module asks to be relabelled once it is loaded. */
export function relabelPaths(moduleText: string): string[] {
  return moduleText
    .split('\n')
    .filter((l) => l.startsWith(RELABEL))
    .map((l) => l.slice(RELABEL.length));
}

/** A rule verify looks for in the built policy: source, target, class and permission, and what it is for. */
interface PolicyRule {
  what: string;
  rule: [source: string, target: string, cls: string, perm: string];
}

/**
 * The unconditional allow rules of sesearch's output (`allow S T:CLASS { P Q };` or `allow S T:CLASS P;`), each
 * with its class and permissions. A rule under a boolean ends `; [ BOOLEAN ]:True` and is left out.
 */
export function unconditionalRules(out: string): { cls: string; perms: string[] }[] {
  return out.split('\n').flatMap((l) => {
    const m = /^allow \S+ \S+:(\S+) (?:\{ ([^}]*) \}|(\S+));$/.exec(l.trim());
    return m ? [{ cls: m[1]!, perms: (m[2] ?? m[3]!).trim().split(/\s+/) }] : [];
  });
}

/** A kernel log line of an SELinux denial for a process in a virt domain or a QEMU. */
export function parseDenial(line: string): Denial | undefined {
  if (!/avc: +denied/.test(line)) return undefined;
  const field = (k: string) =>
    new RegExp(`\\b${k}="([^"]*)"`).exec(line)?.[1] ?? new RegExp(`\\b${k}=(\\S+)`).exec(line)?.[1] ?? '';
  const label = field('scontext');
  const comm = field('comm');
  if (!/virt|qemu/.test(typeOf(label)) && !/qemu|kvm/.test(comm)) return undefined;
  return {
    line,
    label,
    operation: /\{ ([^}]*) \}/.exec(line)?.[1]?.trim() ?? '',
    name: field('path') || field('name'),
    mask: `${field('tclass')} ${field('tcontext')}`.trim(),
  };
}

/**
 * The category pairs processes of the host hold that the bundle did not start: every process outside qemu.slice
 * (where qemu-harden's guests run) in a confined domain with exactly two categories, by pair ("12,345"), with one
 * of them for the message. libvirt reserves the pairs of its running guests the same way.
 */
function pairsHeldElsewhere(): Map<string, string> {
  const out = new Map<string, string>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return out;
  }
  for (const pid of pids) {
    let raw;
    try {
      raw = procAttr(`/proc/${pid}/attr/current`);
    } catch {
      continue;
    }
    if (!raw || !enforces(raw)) continue;
    const cats = categoriesOf(raw);
    if (cats?.length !== 2) continue;
    const cgroup = readSmall(`/proc/${pid}/cgroup`)?.text ?? '';
    if (/\/qemu\.slice\//.test(cgroup)) continue;
    const comm = readSmall(`/proc/${pid}/comm`)?.text.trim() ?? '?';
    out.set(cats.join(','), `pid ${pid} (${comm}, ${raw})`);
  }
  return out;
}

/** The guests whose pair a process the bundle did not start holds, as sentences. */
function clashes(a: Answers, held: Map<string, string>): string[] {
  return a.guests.flatMap((g, i) => {
    const p = pairOf(a, g);
    const who = held.get(`${p[0]},${p[1]}`);
    return who
      ? [
          `guest ${g.name}’s pair ${level(p)} is held by ${who}, which this bundle did not start: set guests.${i}.isolation.selinuxCategories to a pair no process holds`,
        ]
      : [];
  });
}

/**
 * restorecon -F -R on each path the modules' texts name that is there, with what the loaded policy says now: the
 * summary for the step, or the failed step.
 */
async function relabel(name: string, texts: string[]): Promise<string | StepResult> {
  const named = [...new Set(texts.flatMap(relabelPaths))];
  const present = named.filter(exists);
  if (present.length) {
    const relabelled = await step(
      name,
      'restorecon',
      ['-F', '-R', '--', ...present.map(literalGlob)],
      'policycoreutils',
    );
    if (relabelled.status !== 'done') return relabelled;
  }
  const absent = named.length - present.length;
  return `${plural(present.length, 'path')} relabelled${absent ? ` (${absent} not there yet)` : ''}`;
}

/** The policy store this host's semodule works on: the SELINUXTYPE of /etc/selinux/config, and its paths. */
function policyStore(): { type: string; store: string; config: string } | undefined {
  const text = readSmall('/etc/selinux/config')?.text;
  const type = text && /^\s*SELINUXTYPE\s*=\s*(\S+)/m.exec(text)?.[1];
  if (!type) return undefined;
  const store = `/var/lib/selinux/${type}`;
  const config = `/etc/selinux/${type}`;
  return existsSync(store) && existsSync(config) ? { type, store, config } : undefined;
}

const STORE_MISSING =
  'no SELinux policy store on this host (/etc/selinux/config and /var/lib/selinux/TYPE; Debian package selinux-policy-default)';

/** semodule rebuilds the whole policy: tens of seconds on a busy host, minutes under emulation. */
const SEMODULE_MS = 15 * 60_000;

/** One activation step with its own time allowed (activation.ts's runStep allows a minute). */
async function step(name: string, tool: string, args: string[], debianPackage: string): Promise<StepResult> {
  const path = which(tool);
  if (!path) return { step: name, status: 'skipped', detail: `not installed (Debian package ${debianPackage})` };
  const r = await run(path, args, { timeoutMs: SEMODULE_MS });
  // libsemanage warns about system users of the policy missing from /etc/passwd (sddm, …): not this bundle's.
  const lines = (r.stderr || r.stdout)
    .split('\n')
    .filter((l) => l.trim() !== '' && !/not in password file/.test(l))
    .slice(-3);
  return {
    step: name,
    status: r.exitCode === 0 ? 'done' : 'failed',
    detail: r.exitCode === 0 ? lines.join('; ') || 'ok' : `exit ${r.exitCode}: ${lines.join('; ')}`,
  };
}

/**
 * The modules in the host's policy store, read from its directory (active/modules/PRIORITY/NAME), or the step that
 * could not read it. Not `semodule -l`: Debian's policy lets semodule (semanage_t) write nothing to the caller's
 * pipes, so its list would come back empty.
 */
function storeModules(name: string): Set<string> | StepResult {
  const found = policyStore();
  if (!found) return { step: name, status: 'failed', detail: STORE_MISSING };
  const modules = join(found.store, 'active/modules');
  try {
    return new Set(
      readdirSync(modules)
        .filter((priority) => /^\d+$/.test(priority))
        .flatMap((priority) => readdirSync(join(modules, priority))),
    );
  } catch (e) {
    return {
      step: name,
      status: 'failed',
      detail: `cannot read ${modules}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    };
  }
}

/** The process's context: the virt domain with its own pair, and the one its unit names when it names one. */
const processCheck = eachProcess(
  'process.selinux',
  'medium',
  'process',
  (p, want) => {
    const wanted = want.label('selinux');
    const raw = p.labels.selinux;
    if (wanted === undefined || raw === undefined) return undefined;
    const evidence = `/proc/${p.pid}/attr/current: ${raw || '(empty)'}`;
    if (wanted !== null)
      return raw === wanted ? undefined : { summary: `SELinux context ${raw || 'none'}, not ${wanted}`, evidence };
    if (!enforces(raw)) return { summary: `not confined by SELinux (${typeOf(raw) || 'no context'})`, evidence };
    const cats = categoriesOf(raw) ?? [];
    if (cats.length === 0) return { summary: `SELinux domain ${typeOf(raw)} without a category pair`, evidence };
    if (cats.length > 2)
      return {
        summary: `SELinux domain ${typeOf(raw)} with ${cats.length} categories, not a pair of its own`,
        evidence,
      };
    return undefined;
  },
  (p) =>
    !enforces(p.labels.selinux ?? '')
      ? 'Mandatory access control is what keeps a compromised QEMU away from host files and other guests’ images that plain file permissions leave open; an unconfined QEMU (started by hand as root, or outside its unit) has none.'
      : 'Categories are what keep one guest’s QEMU from another’s images in the virt domain: a QEMU without a pair of its own reaches every image labelled without categories, one with many categories reaches the images of every guest holding them.',
  'Each guest’s unit starts its QEMU as system_u:system_r:svirt_t with a category pair no other guest holds (SELinuxContext=), and labels only that guest’s files with the pair.',
  'host.confinement',
);

/** Two QEMUs that hold the same categories: each may open the other's images. */
const sharedPairCheck: AuditCheck = {
  name: 'host.selinux-shared-pair',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: (view) => {
    const byPair = new Map<string, QemuProcess[]>();
    for (const p of view.processes) {
      const raw = p.labels.selinux;
      const cats = raw && enforces(raw) ? categoriesOf(raw) : undefined;
      if (!cats?.length) continue;
      const key = cats.join(',');
      byPair.set(key, [...(byPair.get(key) ?? []), p]);
    }
    return [...byPair.values()]
      .filter((ps) => ps.length > 1)
      .map((ps) =>
        finding(
          'host.selinux-shared-pair',
          'high',
          ps[0]!,
          `${plural(ps.length, 'QEMU')} share the SELinux categories of ${ps[0]!.labels.selinux}: ${ps.map((p) => `${p.guest} (pid ${p.pid})`).join(', ')}`,
          ps.map((p) => `/proc/${p.pid}/attr/current: ${p.labels.selinux}`).join('; '),
          'In the virt domain, the category pair is the one thing that keeps one guest’s QEMU from another’s images: QEMUs holding the same pair may open each other’s disks, and a guest that takes over one takes the others’ data too.',
          'Each guest gets a pair no other guest of the bundle holds, and apply refuses a pair a process of the host it did not start already holds.',
          'guests.N.isolation.selinuxCategories',
        ),
      );
  },
};

/** A path a confined QEMU (or one of its helpers) opens, as the label checks below see it. */
interface Opened {
  path: string;
  readOnly: boolean;
  /** How the finding names it: "disk", "shared folder". */
  kind: string;
}

/**
 * The label checks of the files a process in the virt domain opens for its guest (a QEMU's disks and the folders its
 * 9p server shares, a virtiofsd's folder): each must carry the process's own pair, or, opened read-only, be shared
 * content without categories (as libvirt labels it).
 */
const labelCheck = <P extends QemuProcess | HelperProcess>(
  name: string,
  processes: (view: HostView) => P[],
  opened: (p: P) => Opened[],
  why: string,
  bundle: string,
  answer: string,
): AuditCheck => ({
  name,
  // stat (coreutils) reads the labels, and only where a QEMU holds categories: on a host without SELinux there is
  // nothing to read, and nothing to say about a missing stat.
  tool: null,
  debianPackage: null,
  judges: 'process',
  run: (view) => {
    const stat = which('stat');
    return processes(view).flatMap((p): Finding[] => {
      const raw = p.labels.selinux;
      const own = raw && enforces(raw) ? categoriesOf(raw) : undefined;
      const paths = own?.length ? opened(p) : [];
      if (!paths.length) return [];
      if (!stat) {
        view.unseen.push({
          what: `the SELinux labels of ${p.guest}'s ${paths[0]!.kind}s (pid ${p.pid})`,
          reason: 'stat not found (Debian package coreutils)',
        });
        return [];
      }
      return paths.flatMap((d): Finding[] => {
        const r = runSync(stat, ['-L', '--printf=%C', '--', d.path]);
        if (r.exitCode !== 0 || r.stdout === '' || r.stdout === '?') {
          view.unseen.push({
            what: `the SELinux label of ${d.path} (${p.guest}, pid ${p.pid})`,
            reason: r.stderr.trim() || `stat exited ${r.exitCode}`,
          });
          return [];
        }
        const label = r.stdout.trim();
        const cats = categoriesOf(label) ?? [];
        const mine = cats.length === own!.length && cats.every((c, i) => c === own![i]);
        if (mine || (d.readOnly && cats.length === 0 && typeOf(label) === CONTENT_TYPE)) return [];
        return [
          finding(
            name,
            cats.length === 0 ? 'high' : 'medium',
            p,
            cats.length === 0
              ? `its ${d.kind} ${d.path} is labelled ${label}, without its category pair: every guest’s QEMU may open it`
              : `its ${d.kind} ${d.path} is labelled ${label}, not with its own categories (${raw})`,
            `${d.path}: ${label}; /proc/${p.pid}/attr/current: ${raw}`,
            why,
            bundle,
            answer,
          ),
        ];
      });
    });
  },
});

/** A disk a confined QEMU opens that is not labelled with its pair, or is labelled with none. */
const imageLabelCheck = labelCheck(
  'process.selinux-image',
  (view) => view.processes,
  (p) =>
    p.cmd.disks
      .filter((d) => d.protocol === 'file' || d.protocol === 'host_device')
      .map((d) => ({ path: d.path, readOnly: d.readOnly, kind: 'disk' })),
  'Only the category pair on a guest’s image keeps the other guests’ QEMUs out of it: an image in the virt domain’s type without one is open to all of them, whatever its file permissions.',
  `Each guest’s module labels its own disks ${IMAGE_TYPE} with its pair, and apply relabels them (restorecon).`,
  'guests.N.disks',
);

/**
 * A folder a confined QEMU's 9p server shares into its guest that is not labelled with its pair. The folder itself is
 * read: restorecon labels what is in it the same way, and a file labelled otherwise later shows as a denial.
 */
const shareLabelCheck = labelCheck(
  'process.selinux-share',
  (view) => view.processes,
  (p) => p.cmd.shares.map((s) => ({ path: s.path, readOnly: s.readOnly, kind: 'shared folder' })),
  'A shared folder is host data the guest reads (and writes, when writable) through its QEMU: only the category pair on it keeps the other guests’ QEMUs out, whatever its file permissions.',
  `Each guest’s module labels its own shared folders with its pair (${CONTENT_TYPE} read-only, ${IMAGE_TYPE} writable), and apply relabels them (restorecon).`,
  'guests.N.shares',
);

/** A folder a confined virtiofsd serves its guest that is not labelled with its pair: as a 9p folder, above. */
const helperShareLabelCheck = labelCheck(
  'helper.selinux-share',
  (view) => view.helpers,
  (h) => h.serves.map((s) => ({ path: s.path, readOnly: s.readOnly, kind: 'shared folder' })),
  'A shared folder is host data the guest reads (and writes, when writable) through its virtiofsd: only the category pair on it keeps the other guests’ virtiofsd and QEMUs out, whatever its file permissions.',
  `Each guest’s module labels its own shared folders with its pair (${CONTENT_TYPE} read-only, ${IMAGE_TYPE} writable), and apply relabels them (restorecon).`,
  'guests.N.shares',
);

/** SELinux in the kernel, but permissive: it logs and confines nothing. */
const enforcingCheck: AuditCheck = {
  name: 'host.selinux',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: (view) => {
    const own = view.confinement.get('selinux');
    if (!own || own.enforced || !selinuxEnabled() || [...view.confinement.values()].some((p) => p.enforced)) return [];
    return [
      finding(
        'host.selinux',
        'medium',
        null,
        'SELinux is permissive: it logs and confines nothing',
        own.evidence,
        'Without a mandatory access control system enforcing, only file permissions stand between a compromised QEMU and the host’s files and other guests’ images.',
        'Each guest runs in the virt domain with its own category pair; with SELinux enforcing (setenforce 1, SELINUX=enforcing in /etc/selinux/config) that keeps it to its own files.',
        'host.confinement',
      ),
    ];
  },
};

const deniedCheck: AuditCheck = {
  name: 'host.selinux-denied',
  tool: null,
  debianPackage: null,
  judges: 'host',
  run: (view) =>
    denialFindings(view, {
      check: 'host.selinux-denied',
      name: 'SELinux',
      noun: 'context',
      parse: parseDenial,
      labelOf: (p) => p.labels.selinux,
    }),
};

/**
 * The role's relabelling, for a task's vars: restorecon -F -R on each path the modules given as arguments mark for
 * relabelling, each as itself (glob characters escaped, as restorecon reads its arguments as patterns).
 */
const RELABEL_TASK_VARS = `  vars:
    qemu_harden_selinux_relabel: >-
      sed -n 's/^${RELABEL}//p' "$@" | sort -u |
      while IFS= read -r p; do [ -e "$p" ] || [ -L "$p" ] || continue;
      restorecon -F -R -- "$(printf '%s' "$p" | sed 's/[][*?{}\\\\]/\\\\&/g')" || exit 1; done
`;

export const selinux: ConfinementBackend<Text> = {
  id: 'selinux',
  name: 'SELinux',
  noun: 'context',

  chosen,
  confines: (a) => chosen(a),
  guestLabel: (g, a) => processContext(pairOf(a, g)),

  generator: () => import('../gen/selinux.js'),
  files: (a) =>
    chosen(a)
      ? [
          {
            path: `root/${modulePath(SHARED_MODULE)}`,
            why: 'SELinux module: systemd may start QEMU in the virt domain; shared read-only content',
            text: (t: Text) => t.sharedModule(a),
          },
          ...a.guests.map((g) => ({
            path: `root/${modulePath(guestModule(g.name))}`,
            why: `SELinux file contexts: guest ${g.name}'s own files with its category pair (${level(pairOf(a, g))})`,
            text: (t: Text) => t.guestModule(a, g),
          })),
        ]
      : [],
  guestFiles: (guest) => [`/${modulePath(guestModule(guest))}`],
  sharedFiles: [`/${modulePath(SHARED_MODULE)}`],
  unitLines: (g, a) => [
    `Confined by SELinux when it is enabled on the host: the virt domain with this guest’s own category pair (${level(pairOf(a, g))}), so its QEMU opens only files labelled with that pair and shared read-only content.`,
    `SELinuxContext=${processContext(pairOf(a, g))}`,
  ],
  // A helper (swtpm) runs in its guest's own context, as libvirt runs it: the files it keeps are the guest's, under
  // the guest's state directory, and carry the guest's pair already.
  helperUnitLines: (g, kind, a) => [
    `Confined by SELinux when it is enabled on the host: its guest’s own context (${level(pairOf(a, g))}), as libvirt runs its ${kind} helper.`,
    `SELinuxContext=${processContext(pairOf(a, g))}`,
  ],
  readme: {
    gives: 'an SELinux category pair of its own',
    byHand:
      '`semodule -i` the modules in `/usr/share/selinux/packages/qemu-harden/`, then `restorecon -F -R` each path their `; relabel` lines name that exists (when SELinux is enabled)',
    isolation:
      '- **SELinux (sVirt).** Each guest’s QEMU runs in the policy’s virt domain (`svirt_t`) with a category pair of its own, and only that guest’s disks and directories carry the pair: another guest’s QEMU cannot open them, whatever their file permissions.',
    release: () =>
      `its SELinux modules use the reference policy’s virt types (\`${DOMAIN}\`, \`${IMAGE_TYPE}\`, \`${CONTENT_TYPE}\`)`,
    requires: `- SELinux enforcing (\`cat ${ENFORCE}\` says \`1\`), with its policy store and \`semodule\` and \`restorecon\` (Debian packages selinux-policy-default and policycoreutils): without it the modules are installed but nothing enforces them, and what the reach section marks “only while SELinux enforces” does not hold. The disk images exist before \`apply\`, which relabels them with their guest’s pair; one made later needs \`restorecon -F PATH\`, or its guest’s QEMU is refused it.`,
    checking: [
      'semodule -l | grep qemu-harden            # the shared module and one per guest, loaded',
      'ps -eZ | grep svirt_t                     # each QEMU in the virt domain with its own pair',
    ],
    helper: (g, kind, a) =>
      `its guest’s own SELinux context (${DOMAIN} with the pair ${level(pairOf(a, g))})` +
      (isShareKind(kind) ? ", and the folder carries the guest's pair, which no other guest's processes may open" : ''),
  },
  reach: (a, g) =>
    chosen(a)
      ? [
          `opening another guest’s disks and directories, whatever their file permissions: its QEMU runs as ${DOMAIN} with the pair ${level(pairOf(a, g))}, which only this guest’s files carry; without SELinux enforcing, file permissions alone decide`,
        ]
      : ['no SELinux context: file permissions alone keep its QEMU from other guests’ files'],
  check: {
    name: 'semodule',
    tool: ['semodule', 'matchpathcon', 'sesearch'],
    debianPackage: 'policycoreutils, selinux-utils and setools',
    unavailable: (b) => (chosen(b.answers) && !policyStore() ? STORE_MISSING : undefined),
    nothingToCheck: (b) => (chosen(b.answers) ? undefined : 'the bundle has no SELinux modules'),
    async run(b, tools) {
      const found = policyStore()!;
      const a = b.answers;
      const findings: { message: string; file?: string }[] = [];
      const temp = mkdtempSync(join(tmpdir(), 'qemu-harden-selinux-'));
      try {
        // A copy of the host's own store: semodule builds the policy with the bundle's modules there and
        // changes nothing of the host's.
        for (const [from, to] of [
          [found.store, join(temp, 'var/lib/selinux', found.type)],
          [found.config, join(temp, 'etc/selinux', found.type)],
        ] as const) {
          mkdirSync(join(to, '..'), { recursive: true });
          cpSync(from, to, { recursive: true });
        }
        for (const f of ['config', 'semanage.conf'])
          if (existsSync(`/etc/selinux/${f}`)) cpSync(`/etc/selinux/${f}`, join(temp, 'etc/selinux', f));
        const modules = [SHARED_MODULE, ...a.guests.map((g) => guestModule(g.name))].map((m) =>
          join(b.dir, 'root', modulePath(m)),
        );
        const built = await run(tools.semodule!, ['-p', temp, '-n', '-i', ...modules], { timeoutMs: SEMODULE_MS });
        if (built.exitCode !== 0) {
          // secilc names a module by where it sits in the copied store: say which of the bundle's files it is.
          let file = `root/${PACKAGES}/`;
          const lines = built.stderr
            .split('\n')
            .filter((l) => l.trim() && !/not in password file/.test(l))
            .map((l) =>
              l.replace(/\S*\/modules\/\d+\/([^/\s]+)\/cil:(\d+)/g, (_m, module: string, line: string) => {
                file = `root/${modulePath(module)}`;
                return `${module}.cil line ${line}`;
              }),
            );
          findings.push({
            message: `semodule could not build the host’s policy with the modules: ${lines.slice(-5).join('; ') || `exit ${built.exitCode}`}`,
            file,
          });
          return { status: 'failed', detail: 'the modules do not build', findings };
        }
        const policyDir = join(temp, 'etc/selinux', found.type, 'policy');
        const policy = readdirSync(policyDir)
          .filter((f) => /^policy\.\d+$/.test(f))
          .sort()
          .at(-1);
        const want = (what: string, ...rule: PolicyRule['rule']): PolicyRule => ({ what, rule });
        const rules = [
          want('systemd may start QEMU in the virt domain', 'init_t', DOMAIN, 'process', 'transition'),
          want('with NoNewPrivileges=', 'init_t', DOMAIN, 'process2', 'nnp_transition'),
          ...(a.useCase === 'emulation'
            ? [want('TCG may map writable code', DOMAIN, DOMAIN, 'process', 'execmem')]
            : []),
          ...(a.guests.some((g) => g.network.mode === 'tap')
            ? [
                want('the tap unit may create a tun device', 'ifconfig_t', 'ifconfig_t', 'tun_socket', 'create'),
                want('QEMU may take over its tap', DOMAIN, 'ifconfig_t', 'tun_socket', 'relabelfrom'),
              ]
            : []),
        ];
        const policyFile = join(policyDir, policy ?? 'policy');
        // One sesearch a source and target (each loads the whole policy), asking for every class and permission
        // wanted between them; a rule counts only where the output holds it unconditionally. A rule under a
        // boolean (`[ virt_use_execmem ]:True`) holds only while the boolean is on, which is the host's to turn.
        const pairs = new Map<string, PolicyRule[]>();
        for (const r of rules) {
          const key = `${r.rule[0]} ${r.rule[1]}`;
          pairs.set(key, [...(pairs.get(key) ?? []), r]);
        }
        for (const group of pairs.values()) {
          const [source, target] = group[0]!.rule;
          const list = (i: 2 | 3) => [...new Set(group.map((r) => r.rule[i]))].join(',');
          const args = ['-A', '-s', source, '-t', target, '-c', list(2), '-p', list(3)];
          const r = await run(tools.sesearch!, [...args, policyFile]);
          const held = r.exitCode === 0 ? unconditionalRules(r.stdout) : [];
          for (const { what, rule } of group)
            if (!held.some((h) => h.cls === rule[2] && h.perms.includes(rule[3])))
              findings.push({
                message: `the built policy lacks the rule that ${what} (sesearch -A -s ${source} -t ${target} -c ${rule[2]} -p ${rule[3]}): ${r.exitCode === 0 ? 'no such rule, or only under a boolean' : r.stderr.trim() || `exit ${r.exitCode}`}`,
                file: `root/${modulePath(SHARED_MODULE)}`,
              });
        }
        const contexts = join(temp, 'etc/selinux', found.type, 'contexts/files/file_contexts');
        const gen = await import('../gen/selinux.js');
        const expected = [
          ...gen.sharedLabels(a).map((l) => ({ l, file: `root/${modulePath(SHARED_MODULE)}` })),
          ...a.guests.flatMap((g) =>
            gen.guestLabels(a, g).map((l) => ({ l, file: `root/${modulePath(guestModule(g.name))}` })),
          ),
        ].map(({ l, file }) => ({ path: l.c.path, context: gen.contextText(l), file }));
        for (const e of expected) {
          const r = await run(tools.matchpathcon!, ['-n', '-f', contexts, '--', e.path]);
          const got = r.stdout.trim();
          if (r.exitCode !== 0 || got !== e.context)
            findings.push({
              message: `${e.path} resolves to ${got || r.stderr.trim() || 'nothing'}, not ${e.context}`,
              file: e.file,
            });
        }
        if (existsSync(ENFORCE)) for (const c of clashes(a, pairsHeldElsewhere())) findings.push({ message: c });
        return {
          status: findings.length ? 'failed' : 'passed',
          detail: `${plural(modules.length, 'module')} built into a copy of the ${found.type} policy; ${plural(expected.length, 'path')} resolve to their contexts`,
          findings,
        };
      } finally {
        rmSync(temp, { recursive: true, force: true });
      }
    },
  },

  activationStep: 'load the SELinux modules and relabel the guests’ files',
  loads: /^\/usr\/share\/selinux\/packages\/qemu-harden\/qemu-harden(-[a-z0-9-]+)?\.cil$/,
  async activate(files, gone) {
    const name = this.activationStep;
    if (files.length === 0 && gone.size === 0)
      return { step: name, status: 'skipped', detail: 'the bundle has no SELinux modules' };
    if (!selinuxEnabled())
      return {
        step: name,
        status: 'skipped',
        detail: 'SELinux is not enabled in this kernel: the modules are installed but not loaded',
      };
    const texts = files.map((f) => readFileSync(f, 'utf8'));
    const held = pairsHeldElsewhere();
    const taken = files.flatMap((f, i) => {
      // A guest's module labels its own files with its pair; the shared module labels nothing with one.
      const m = /\(s0 \(c(\d+) c(\d+)\)\)/.exec(texts[i]!);
      const who = m && held.get(`${m[1]},${m[2]}`);
      return who
        ? [
            // The process's name and label are its own to set: printed as they are, they could be escape sequences.
            `${basename(f, '.cil')}’s pair s0:c${m[1]},c${m[2]} is held by ${visible(who)}, which this bundle did not start`,
          ]
        : [];
    });
    if (taken.length)
      return {
        step: name,
        status: 'failed',
        detail: `${taken.join('; ')}: set guests.N.isolation.selinuxCategories to a pair no process holds, and apply again`,
      };
    // The modules of guests that left go in the same transaction as the bundle's load: one rebuild of the policy,
    // and no moment with both or neither. Those of them still in the store: after an install that stopped
    // midway their files may be gone already, and the store keeps what it holds across reboots.
    const wanted = new Set(files.map((f) => basename(f, '.cil')));
    const leaving = [...gone.keys()].map((h) => basename(h, '.cil'));
    const inStore = leaving.length ? storeModules(name) : new Set<string>();
    if (!(inStore instanceof Set)) return inStore;
    const removed = leaving.filter((m) => inStore.has(m));
    if (files.length || removed.length) {
      const args = [...removed.flatMap((m) => ['-r', m]), ...files.flatMap((f) => ['-i', f])];
      const changed = await step(name, 'semodule', args, 'policycoreutils');
      if (changed.status !== 'done') return changed;
    }
    // What is not there yet gets its label when it is made: systemd labels a runtime directory from the loaded
    // file contexts; a disk made later needs restorecon -F (the bundle README says so). A removed guest's files
    // get what the policy says without its module, so that no later reader finds them with its pair.
    const relabelled = await relabel(name, [...texts, ...gone.values()]);
    if (typeof relabelled !== 'string') return relabelled;
    const said = [
      ...(files.length ? [`${[...wanted].join(' ')} loaded`] : []),
      ...(removed.length ? [`${removed.join(' ')} removed`] : []),
    ];
    return { step: name, status: 'done', detail: `${said.join(', ') || 'no module to load or remove'}; ${relabelled}` };
  },

  probe(): Probe {
    const v = readSmall(ENFORCE)?.text.trim();
    return {
      enforced: v === '1',
      evidence:
        v === undefined
          ? `${ENFORCE}: does not exist (SELinux is not enabled in this kernel)`
          : `${ENFORCE}: ${v}${v === '0' ? ' (permissive)' : ''}`,
    };
  },
  // The LSM-wide attribute belongs to SELinux only where SELinux is the module in force (its file system is there).
  processLabel: (dir) => (selinuxEnabled() ? (procAttr(`${dir}/attr/current`) ?? undefined) : undefined),
  parseLabel: (raw): Label => ({ label: raw, mode: null }),
  enforces,
  expectedLabel: (setting) => setting('SELinuxContext')?.replace(/^-/, '') || null,
  auditChecks: [
    processCheck,
    sharedPairCheck,
    imageLabelCheck,
    shareLabelCheck,
    helperShareLabelCheck,
    enforcingCheck,
    deniedCheck,
  ],

  ansible: {
    handlers: ({ files, listen }) => `- name: Ask the kernel whether SELinux is enabled
  ansible.builtin.stat:
    path: ${ENFORCE}
  register: qemu_harden_selinux
  listen: ${listen}

- name: Load the SELinux modules (semodule -i)
  ansible.builtin.command:
    argv: "{{ ['semodule', '-i'] + ${files} }}"
  changed_when: true
  when: qemu_harden_selinux.stat.exists and ${files} | length > 0
  listen: ${listen}

- name: Relabel the paths the modules name with their contexts (restorecon)
  ansible.builtin.command:
    argv: "{{ ['sh', '-c', qemu_harden_selinux_relabel, 'sh'] + ${files} }}"
${RELABEL_TASK_VARS}  changed_when: true
  when: qemu_harden_selinux.stat.exists and ${files} | length > 0
  listen: ${listen}
`,
    unload: ({ files }) => `- name: Ask the kernel whether SELinux is enabled, for the modules of guests that left
  ansible.builtin.stat:
    path: ${ENFORCE}
  register: qemu_harden_selinux_unload
  when: ${files} | length > 0

- name: Remove the SELinux modules of guests that left (semodule -r)
  ansible.builtin.command:
    argv: "{{ ['semodule', '-r'] + (${files} | map('basename') | map('splitext') | map('first') | list) }}"
  changed_when: true
  when: ${files} | length > 0 and qemu_harden_selinux_unload.stat.exists | default(false)

- name: Relabel the files of guests that left with what the policy now says (restorecon)
  ansible.builtin.command:
    argv: "{{ ['sh', '-c', qemu_harden_selinux_relabel, 'sh'] + ${files} }}"
${RELABEL_TASK_VARS}  changed_when: true
  when: ${files} | length > 0 and qemu_harden_selinux_unload.stat.exists | default(false)
`,
  },
};
