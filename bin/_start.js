// Starts one program on Node: from dist/ when `npm run build` compiled it
// from the sources as they are now, otherwise from the .ts sources through
// tsx. Comparing modification times of the sources (a few hundred stat calls,
// about 2 ms) keeps an edited checkout from running stale code.
// `node bin/_start.js --stamp <dir>` records the sources' newest time in a build.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['agent', 'keeper', 'launcher', 'nexus', 'pilot', 'sdk', 'shared'];
const STAMP = 'build-stamp.json';

function newestSourceMs() {
  let newest = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      // Tests are not compiled: editing one does not make the build stale.
      else if (!entry.name.endsWith('.test.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  for (const dir of SOURCE_DIRS) walk(join(ROOT, dir));
  return newest;
}

function buildIsCurrent() {
  try {
    const stamp = JSON.parse(readFileSync(join(ROOT, 'dist', STAMP), 'utf8'));
    return typeof stamp.newestSourceMs === 'number' && stamp.newestSourceMs >= newestSourceMs();
  } catch {
    return false;
  }
}

/** Imports `<program>/main` from dist/ or, through tsx, from the sources. */
export async function start(program) {
  if (process.env.SPIKE_RUN_FROM_SOURCE !== '1' && buildIsCurrent()) {
    await import(pathToFileURL(join(ROOT, 'dist', program, 'main.js')).href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(join(ROOT, program, 'main.ts')).href);
}

if (process.argv[2] === '--stamp') {
  const dir = process.argv[3] ?? 'dist';
  writeFileSync(
    join(ROOT, dir, STAMP),
    `${JSON.stringify({ newestSourceMs: newestSourceMs() })}\n`,
  );
}
