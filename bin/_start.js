// Starts one program on Node: from its bundle in dist/ when `npm run build`
// made it from the sources as they are now, otherwise from the .ts sources
// through tsx. The build records which source files went into each bundle
// (scripts/bundle.js); comparing their modification times with the build's
// (one stat call per file) keeps an edited checkout from running stale code.
// Nothing here builds: a missing or stale build only means a slower start.
// An installed package (npm pack, the image) ships the bundles and no
// sources: there the bundle is the program.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** What scripts/bundle.js writes next to the bundles. */
export const STAMP = 'build-stamp.json';

/** Each program's name (its bin entry and its bundle, dist/<name>.js) and its source folder. */
export const PROGRAMS = Object.freeze({
  spike: 'pilot',
  'spike-nexus': 'nexus',
  'spike-keeper': 'keeper',
  'spike-agent': 'agent',
  'spike-local': 'launcher',
});

/** Whether no file the bundle in `dir` was made from changed (or went) since the build. */
export function bundleIsCurrent(name, dir = join(ROOT, 'dist')) {
  try {
    const stamp = JSON.parse(readFileSync(join(dir, STAMP), 'utf8'));
    const { files, newestMs } = stamp.bundles[name];
    return files.every((file) => statSync(join(ROOT, file)).mtimeMs <= newestMs);
  } catch {
    return false;
  }
}

/** Imports the program's bundle from dist/ or, through tsx, its `main.ts`. */
export async function start(name) {
  const source = join(ROOT, PROGRAMS[name], 'main.ts');
  const fromBundle =
    !existsSync(source) || (process.env.SPIKE_RUN_FROM_SOURCE !== '1' && bundleIsCurrent(name));
  if (fromBundle) {
    await import(pathToFileURL(join(ROOT, 'dist', `${name}.js`)).href);
    return;
  }
  // tsx is a development dependency: only a checkout runs the sources.
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
}
