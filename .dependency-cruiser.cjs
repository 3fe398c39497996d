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
      name: 'checks-backends-and-helpers-below-ui',
      comment: 'Checks, confinement backends and helper units serve verify, apply, status and audit alike: no wizard, no CLI.',
      severity: 'error',
      from: { path: '^src/(checks|confine|helpers)/' },
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
