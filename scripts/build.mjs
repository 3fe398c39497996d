// Bundles the CLI into one ESM file. React and Ink are bundled in; react-devtools-core is never loaded.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/bin.ts'],
  outfile: 'dist/qemu-harden.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: false,
  legalComments: 'none',
  external: ['react-devtools-core'],
  define: { 'process.env.DEV': '"false"' },
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __qhCreateRequire } from 'node:module';\nconst require = __qhCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
