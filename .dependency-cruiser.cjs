// The layering qemu-harden keeps, checked by `npm run lint:deps` (part of `npm test`). docs/architecture.md has
// the same layers as its "may import" table: each row there is one rule here, and a module outside every layer
// is an error of its own, so the table always covers the whole tree. Type-only imports count: a circle closed by
// a type is still a circle. An import these rules forbid that is still in the tree is listed, edge by edge, in
// .dependency-cruiser-known-violations.json (dependency-cruiser's own baseline, read with --ignore-known): it is
// reported on every run, and any other import of the kind fails.

/** Each layer's modules, by path. */
const LAYER = {
  cli: ['^src/(bin|cli|command|commands)\\.ts$'],
  wizard: ['^src/wizard\\.tsx$', '^src/ui/', '^steps/'],
  commands: [
    '^src/(verify|apply|lifecycle|record|rollback|status|hostpaths|importcmd)\\.ts$',
    '^src/(audit|export|install)/',
  ],
  homes: ['^src/(checks|confine)/'],
  bundle: ['^src/(plan|guest|fence|reach)\\.ts$', '^src/gen/'],
  answers: ['^src/(answers|model|rules|messages)\\.ts$', '^src/sources/'],
  host: ['^src/(probe|qemucaps|implications)\\.ts$'],
  leaves: [
    '^src/(errors|bundle-layout|bundle|names|tools|procfs|io|passwd|version|invocation|activation|escape|words)\\.ts$',
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
      'Homes (checks, confinement backends) serve verify, apply, status and audit alike: they never import a command, the wizard or the command line.',
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
    {
      name: 'sources-never-run-programs',
      comment:
        'Answer sources never run the host’s programs: neither tools.ts nor child_process, nor the host facts that do.',
      severity: 'error',
      from: { path: '^src/sources/' },
      to: { path: ['^src/tools\\.ts$', '^child_process$', '^node:child_process$', 'execa', ...LAYER.host] },
    },
    mayImport(
      'host',
      ['bundle', 'answers', 'leaves'],
      'Host facts (the probe, QEMU’s own lists, what they imply) read the host; they know no command, home or wizard.',
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
