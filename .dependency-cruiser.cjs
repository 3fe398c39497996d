// The layering qemu-harden keeps, checked by `npm run lint:deps` (part of `npm test`). docs/architecture.md
// explains the layers. Type-only imports count: a circle closed by a type is still a circle.
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
      name: 'generators-below-ui-and-cli',
      comment: 'Generators are pure functions of the answers: they know nothing of the wizard or the command line.',
      severity: 'error',
      from: { path: '^src/gen/' },
      to: { path: ['^src/ui/', '^steps/', '^src/wizard\\.tsx$', '^src/cli\\.ts$', '^src/bin\\.ts$'] },
    },
    {
      name: 'steps-below-ui',
      comment: 'Wizard steps are data the wizard reads; they do not reach up into its views and state.',
      severity: 'error',
      from: { path: '^steps/' },
      to: { path: ['^src/ui/', '^src/wizard\\.tsx$', '^src/cli\\.ts$'] },
    },
    {
      name: 'checks-and-backends-below-ui',
      comment: 'Checks and confinement backends serve verify, apply, status and audit alike: no wizard, no CLI.',
      severity: 'error',
      from: { path: '^src/(checks|confine)/' },
      to: { path: ['^src/ui/', '^steps/', '^src/wizard\\.tsx$', '^src/cli\\.ts$', '^src/bin\\.ts$'] },
    },
    {
      name: 'sources-below-ui',
      comment: 'Answer sources return documents; the wizard and the CLI call them, never the reverse.',
      severity: 'error',
      from: { path: '^src/sources/' },
      to: { path: ['^src/ui/', '^steps/', '^src/wizard\\.tsx$', '^src/cli\\.ts$', '^src/bin\\.ts$'] },
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
        'The install wing is one walk: tree, bundle, paths, admit, record, plan, transaction, activate, run, then ' +
        'the commands. A module never imports one that comes after it (docs/architecture.md).',
      severity: 'error',
      from: { path: '^src/install/(tree|bundle|paths)\\.ts$' },
      to: { path: '^src/install/(admit|record|plan|transaction|activate|run|apply|rollback|installed)\\.ts$' },
    },
    {
      name: 'install-plans-before-it-changes',
      comment: 'Admission, the record and the plan come before the transaction, activation and the walk itself.',
      severity: 'error',
      from: { path: '^src/install/(admit|record|plan)\\.ts$' },
      to: { path: '^src/install/(transaction|activate|run|apply|rollback|installed)\\.ts$' },
    },
    {
      name: 'install-walk-is-run-by-its-commands',
      comment: 'Only apply and rollback start the walk; only the command line starts them.',
      severity: 'error',
      from: { pathNot: '^src/(install/(apply|rollback)\\.ts|cli\\.ts)$' },
      to: { path: '^src/install/(run|apply|rollback)\\.ts$' },
    },
    {
      name: 'sources-never-look-at-the-host',
      comment:
        'Answer sources turn documents into answers; they run no program and read no host state. What the host knows (its QEMU, sysfs, its own storage) the caller hands them.',
      severity: 'error',
      from: { path: '^src/sources/' },
      to: {
        path: [
          '^src/tools\\.ts$',
          '^src/qemucaps\\.ts$',
          '^src/probe\\.ts$',
          '^src/target\\.ts$',
          '^src/blockuse\\.ts$',
          '^src/procfs\\.ts$',
          '^(node:)?child_process$',
          'node_modules/execa/',
        ],
      },
    },
    {
      name: 'only-bin-runs-the-cli',
      comment: 'The command line is the top: only the executable imports it.',
      severity: 'error',
      from: { pathNot: '^src/bin\\.ts$' },
      to: { path: '^src/cli\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
