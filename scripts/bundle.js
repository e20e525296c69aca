// Bundles each program from the .ts sources with esbuild: one ESM file per
// program (spike.js, spike-nexus.js…) plus shared chunks for what is imported
// lazily, so Node loads a few files instead of hundreds, and `spike
// --version` never parses the Workload API client or the SDK. esbuild strips
// the types; tsc (`npm run typecheck`) stays the checker. The stamp lists, per
// bundle, the source files it was made from, for bin/_start.js.
//
// `node scripts/bundle.js <dir>` (a folder inside the checkout), called by
// scripts/build.sh.
import { cpSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { PROGRAMS, STAMP } from '../bin/_start.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Packages left to Node's resolver: native code (libsql) and what loads
 * optional native code by name (pg's pg-native), which a bundle cannot carry;
 * and @grpc/proto-loader, which grpc-js requires only for channelz and ORCA
 * (never used here): bundled, it and the whole of protobufjs would be compiled
 * by every program that reads its SVID.
 */
const EXTERNAL = ['libsql', '@libsql/*', 'pg', 'pg-native', '@grpc/proto-loader'];

/**
 * Files the programs read beside their modules at run time, copied to the same
 * path under <dir> (see moduleUrlPlugin), and folders whose listing they read.
 */
const ASSETS = ['nexus/store/sqlite/migrations', 'nexus/store/postgres/migrations'];

/**
 * A module that finds files beside itself (`new URL('./x', import.meta.url)`)
 * sees, inside a bundle, the URL it would have as `<dir>/<its path>.js`:
 * the build copies those files (ASSETS) to the same places, so the code needs no
 * bundle-specific path. Every output file sits directly in <dir>, so the URL
 * relative to the output's own is right for bundles and chunks alike.
 */
const moduleUrlPlugin = {
  name: 'module-url',
  setup(pluginBuild) {
    pluginBuild.onLoad({ filter: /\.ts$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const asBuilt = relative(ROOT, args.path).replace(/\.ts$/, '.js');
      const url = `new URL(${JSON.stringify(`./${asBuilt}`)}, import.meta.url).href`;
      return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' };
    });
  },
};

/** The checkout's files (no packages) that went into an output and every chunk it imports. */
function sourcesOf(outputs, output, seen = new Set()) {
  if (seen.has(output)) return [];
  seen.add(output);
  const { inputs, imports } = outputs[output];
  const own = Object.keys(inputs).filter((input) => !input.includes('node_modules/'));
  const chunks = imports.filter((entry) => !entry.external).map((entry) => entry.path);
  return [...own, ...chunks.flatMap((chunk) => sourcesOf(outputs, chunk, seen))];
}

const outdir = resolve(ROOT, process.argv[2] ?? 'dist');
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: Object.entries(PROGRAMS).map(([name, program]) => ({
    in: join(ROOT, program, 'main.ts'),
    out: name,
  })),
  outdir,
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  // A package's ES module build (`module`) before its CommonJS `main`, which
  // esbuild prefers for Node: the ASN.1 packages that read certificates ship
  // both, and from the ES build esbuild leaves out what is unused and joins the
  // rest without CommonJS wrappers (about 130 KB less for every program that
  // reads its SVID). Packages with `exports` are resolved by those, unchanged.
  mainFields: ['module', 'main'],
  target: 'node20',
  external: EXTERNAL,
  // CommonJS packages (gRPC, pino…) call require() for Node's built-ins,
  // which an ES module does not have: give them the real one.
  banner: {
    js: "import { createRequire as __spikeCreateRequire } from 'node:module';\nconst require = __spikeCreateRequire(import.meta.url);",
  },
  plugins: [moduleUrlPlugin],
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});

/** An asset's path and, for a folder, every path inside it: an added migration changes the folder. */
function assetPaths(path) {
  if (!statSync(join(ROOT, path)).isDirectory()) return [path];
  return [path, ...readdirSync(join(ROOT, path)).flatMap((name) => assetPaths(join(path, name)))];
}

for (const asset of ASSETS) cpSync(join(ROOT, asset), join(outdir, asset), { recursive: true });
const assets = ASSETS.flatMap(assetPaths);

// An `npm install` changes the packages inside the bundles: it makes them stale too.
const LOCK = 'node_modules/.package-lock.json';
const bundles = {};
for (const name of Object.keys(PROGRAMS)) {
  const output = relative(ROOT, join(outdir, `${name}.js`));
  const files = [...new Set(sourcesOf(result.metafile.outputs, output))].sort();
  files.push(...assets);
  try {
    statSync(join(ROOT, LOCK));
    files.push(LOCK);
  } catch {
    // Packages installed some other way: only the sources are compared.
  }
  const newestMs = Math.max(...files.map((file) => statSync(join(ROOT, file)).mtimeMs));
  bundles[name] = { files, newestMs };
}
writeFileSync(join(outdir, STAMP), `${JSON.stringify({ bundles }, null, 1)}\n`);
