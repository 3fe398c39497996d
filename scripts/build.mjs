// Bundles the CLI into dist/: the entry dist/qemu-harden.js plus chunks that are loaded only by a dynamic
// import(). `--version`, `--help`, `presets` and `generate` evaluate the entry and its shared chunks only; React
// and Ink live in the wizard's chunk. react-devtools-core is never bundled and never loaded.
import { build } from 'esbuild';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Ink connects to React DevTools when DEV=true. Its check reads `process` imported from node:process, which
 * esbuild's `define` cannot reach, so the check is replaced by `false` and the branch is dropped. */
const noDevtools = {
  name: 'no-devtools',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]ink[\\/]build[\\/](ink|reconciler)\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const contents = source.replaceAll('isDev()', 'false');
      if (contents === source)
        return {
          errors: [
            { text: `${args.path}: no isDev() call to remove; check how this Ink version loads react-devtools-core` },
          ],
        };
      return { contents, loader: 'js' };
    });
    b.onResolve({ filter: /^react-devtools-core$/ }, (args) => ({
      errors: [{ text: `react-devtools-core must not be bundled (imported by ${args.importer})` }],
    }));
  },
};

/** Time to the wizard's first frame. Yoga's loader asks `typeof fetch`, and in Node 20 that alone loads undici
 * with http, http2, tls and zlib (about 15 ms), only to decode its inline WebAssembly without fetch anyway. And
 * `z.locales` would bundle every one of Zod's ~40 languages; qemu-harden speaks English, Zod's default. */
const startup = {
  name: 'startup',
  setup(b) {
    b.onLoad(
      { filter: /[\\/]node_modules[\\/]yoga-layout[\\/]dist[\\/]binaries[\\/]yoga-wasm-base64-esm\.js$/ },
      async (args) => {
        const source = await readFile(args.path, 'utf8');
        const contents = source.replaceAll('"function"!=typeof fetch', 'true');
        if (contents === source)
          return {
            errors: [
              { text: `${args.path}: no fetch check to remove; check how this Yoga version loads its WebAssembly` },
            ],
          };
        return { contents, loader: 'js' };
      },
    );
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](classic[\\/]external|core[\\/]index)\.js$/.test(args.importer)
        ? { path: join(dirname(args.importer), '../locales/en.js'), namespace: 'zod-locales' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

await rm('dist', { recursive: true, force: true });
await build({
  entryPoints: { 'qemu-harden': 'src/bin.ts' },
  outdir: 'dist',
  // Chunks sit beside the entry: bundled code finds presets/ as ../presets relative to its own file.
  chunkNames: '[name]-[hash]',
  splitting: true,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  legalComments: 'none',
  plugins: [noDevtools, startup],
  define: { 'process.env.NODE_ENV': '"production"' },
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __qhCreateRequire } from 'node:module';\nconst require = __qhCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
