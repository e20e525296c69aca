/**
 * Composition root of spike-local, the one-command local broker: config →
 * children → ready → summary on stdout, then wait for SIGINT/SIGTERM and stop
 * every child. Exit status: 0 after a clean stop (also when stopped while
 * starting), 1 on a failure, 2 on bad configuration.
 */
import { basename, dirname, resolve } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../shared/errors/errors.ts';
import {
  EXIT_CONFIG,
  EXIT_FAILURE,
  EXIT_OK,
  environment,
  exit,
  writeStderr,
  writeStdout,
} from '../shared/runtime/process.ts';
import { type LauncherConfig, loadLauncherConfig } from './config.ts';
import { LocalBroker } from './launcher.ts';
import { formatSummary } from './summary.ts';

const NAME = 'spike-local';
/** The checkout: the parent of launcher/, or of dist/launcher/ when compiled (npm run build). */
const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT_DIR = resolve(HERE, basename(resolve(HERE, '..')) === 'dist' ? '../..' : '..');

function say(line: string): void {
  writeStderr(`${NAME}: ${line}`);
}

let config: LauncherConfig;
try {
  config = loadLauncherConfig(environment());
} catch (err) {
  writeStderr(`${NAME}: ${err instanceof Error ? err.message : String(err)}`);
  exit(err instanceof ConfigError ? EXIT_CONFIG : EXIT_FAILURE);
}

const runtime = 'Deno' in globalThis ? 'deno' : 'node';
const broker = new LocalBroker({
  config,
  runtime,
  execPath: process.execPath,
  rootDir: ROOT_DIR,
  env: environment(),
  say,
});

// Signals are handled from the first moment, so that Ctrl-C while starting
// also stops the children that already run. A second signal exits at once.
const stopRequested = new AbortController();
let signals = 0;
function onSignal(): void {
  signals += 1;
  if (signals > 1) exit(EXIT_FAILURE);
  stopRequested.abort(new Error('Stopped by a signal'));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

async function stopAndExit(code: number): Promise<never> {
  say('Stopping every program');
  await broker.stop();
  say('Stopped');
  exit(code);
}

try {
  const info = await broker.start(stopRequested.signal);
  writeStdout(
    formatSummary(info, {
      runtime,
      trustDomain: config.trustDomain.name,
      nexusPort: config.nexusPort,
    }),
  );
} catch (err) {
  if (stopRequested.signal.aborted) {
    await stopAndExit(EXIT_OK);
  }
  say(`could not start: ${err instanceof Error ? err.message : String(err)}`);
  await stopAndExit(EXIT_FAILURE);
}

const stopped = new Promise<'signal'>((resolveStop) => {
  if (stopRequested.signal.aborted) resolveStop('signal');
  stopRequested.signal.addEventListener('abort', () => resolveStop('signal'), { once: true });
});
const outcome = await Promise.race([stopped, broker.firstExit()]);
if (outcome === 'signal') {
  await stopAndExit(EXIT_OK);
} else {
  say(outcome.failure(`ended unexpectedly (status ${outcome.status})`).message);
  await stopAndExit(EXIT_FAILURE);
}
