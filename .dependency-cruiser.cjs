// The layering qemu-harden keeps, checked by `npm run lint:deps` (part of `npm test`). docs/architecture.md has
// the same layers as its "may import" table: each row there is one rule here, and a module outside every layer
// is an error of its own, so the table always covers the whole tree. Type-only imports count: a circle closed by
// a type is still a circle.

/** Each layer's modules, by path. */
const LAYER = {
  cli: ['^src/(bin|cli|command|commands)\\.ts$'],
  wizard: ['^src/wizard\\.tsx$', '^src/ui/', '^steps/'],
  commands: [
    '^src/(verify|status|hostpaths|importcmd|sign|sshsig)\\.ts$',
    '^src/audit/(?!(types|expect|cmdline|denials)\\.ts$)',
    '^src/export/',
    '^src/install/(?!(tree|bundle)\\.ts$)',
  ],
  homes: ['^src/(checks|confine|helpers)/', '^src/audit/(types|expect|cmdline|denials)\\.ts$'],
  bundle: ['^src/(plan|guest|fence|reach)\\.ts$', '^src/gen/'],
  answers: ['^src/(answers|model|rules|messages|places|identity)\\.ts$', '^src/sources/'],
  host: ['^src/(probe|qemucaps|implications|target)\\.ts$'],
  leaves: [
    '^src/(errors|atomic|blockuse|bundle-layout|bundle|names|mcs|releases|qemuargs|confinement|tools|procfs|io|passwd|version|invocation|activation|escape|words|sidecar)\\.ts$',
    '^src/install/(tree|bundle)\\.ts$',
  ],
};

const ALL = Object.values(LAYER).flat();

/** A layer may import only the layers listed; anything else of ours is an upward or sideways arrow. */
function mayImport(from, allowed, comment, alsoModules = []) {
  return {
    name: `${from}-may-import-${allowed.join('-') || 'nothing'}`,
    comment,
    severity: 'error',
    from: { path: LAYER[from] },
    to: { path: ALL, pathNot: [...LAYER[from], ...allowed.flatMap((l) => LAYER[l]), ...alsoModules] },
  };
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Modules form no import circle, however it is closed.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'every-module-in-a-layer',
      comment: 'A module that is in no layer of docs/architecture.md: add it to a layer here and to the table there.',
      severity: 'error',
      from: { path: '^(src|steps)/', pathNot: ALL },
      to: {},
    },
    {
      name: 'atomic-write-is-a-leaf',
      comment: 'The one atomic write serves every writer, so it depends on none of them.',
      severity: 'error',
      from: { path: '^src/atomic\\.ts$' },
      to: { path: '^(src|steps)/', pathNot: '^src/atomic\\.ts$' },
    },
    {
      name: 'install-reads-in-order',
      comment:
        'The install wing is one walk: tree, bundle, paths, admit, record, plan, transaction, activate, start, run, then ' +
        'the commands. A module never imports one that comes after it (docs/architecture.md).',
      severity: 'error',
      from: { path: '^src/install/(tree|bundle|paths)\\.ts$' },
      to: { path: '^src/install/(admit|record|plan|transaction|activate|start|run|apply|rollback|installed)\\.ts$' },
    },
    {
      name: 'install-plans-before-it-changes',
      comment: 'Admission, the record and the plan come before the transaction, activation and the walk itself.',
      severity: 'error',
      from: { path: '^src/install/(admit|record|plan)\\.ts$' },
      to: { path: '^src/install/(transaction|activate|start|run|apply|rollback|installed)\\.ts$' },
    },
    {
      name: 'install-walk-is-run-by-its-commands',
      comment: 'Only apply and rollback start the walk; only their command records start them.',
      severity: 'error',
      from: { pathNot: '^src/(install/(apply|rollback)\\.ts|commands\\.ts)$' },
      to: { path: '^src/install/(run|apply|rollback)\\.ts$' },
    },
    {
      name: 'sources-never-look-at-the-host',
      comment:
        'Answer sources turn documents into answers; they run no program and read no host state (neither tools.ts nor child_process or execa, nor the host facts, nor /proc and the kernel’s storage). What the host knows (its QEMU, sysfs, its own storage) the caller hands them.',
      severity: 'error',
      from: { path: '^src/sources/' },
      to: {
        path: [
          '^src/tools\\.ts$',
          '^src/blockuse\\.ts$',
          '^src/procfs\\.ts$',
          '^(node:)?child_process$',
          'execa',
          ...LAYER.host,
        ],
      },
    },
    {
      name: 'only-bin-runs-the-cli',
      comment: 'The command line is the top: only the executable imports its entry.',
      severity: 'error',
      from: { pathNot: '^src/bin\\.ts$' },
      to: { path: '^src/cli\\.ts$' },
    },
    mayImport(
      'wizard',
      ['answers', 'bundle', 'host', 'leaves'],
      'The wizard asks and writes through the answers and the bundle; of the commands it uses verify alone, for systemd-analyze’s exposure score.',
      ['^src/verify\\.ts$'],
    ),
    mayImport(
      'commands',
      ['homes', 'bundle', 'answers', 'host', 'leaves'],
      'Commands never import the wizard or the command line.',
    ),
    mayImport(
      'homes',
      ['bundle', 'answers', 'host', 'leaves'],
      'Homes (checks, confinement backends, helper units) serve verify, apply, status and audit alike: they never import a command, the wizard or the command line.',
    ),
    mayImport(
      'bundle',
      ['homes', 'answers', 'leaves'],
      'The bundle is a pure function of the answers: no command, no wizard, and no host facts (the host’s programs are never run to write it). It asks the confinement backends for their unit lines and files.',
    ),
    mayImport(
      'answers',
      ['leaves'],
      'Answers and their sources return documents and judge them: they never run the host’s programs (no host facts), and know no bundle, command or wizard.',
    ),
    mayImport(
      'host',
      ['bundle', 'answers', 'leaves'],
      'Host facts (the probe, QEMU’s own lists, what they imply) read the host; they know no command or wizard, and of the homes only the confinement backends, whose probes say what the kernel enforces.',
      ['^src/confine/'],
    ),
    mayImport('leaves', [], 'Leaves import only other leaves.'),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
