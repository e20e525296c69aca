/**
 * `spike agent`: renders templates of secrets into files and keeps them
 * current, as a sidecar or, with `--once`, an init step. It reads with the
 * caller's own SVID (a watched source, so rotations reach it), writes each
 * file atomically with its mode and only when its content changes, then
 * runs the template's command or sends its signal. A failure keeps the last
 * good file, is logged once until it changes, and is retried with back-off;
 * its own log (JSON lines on stderr) names paths, files and versions, never
 * a value. Not to be confused with the SPIFFE agent, `spike-agent`.
 */
import { readFile } from 'node:fs/promises';
import type { SecretResponse } from '../../shared/api/secrets.ts';
import type { Env } from '../../shared/config/env.ts';
import { createLogger, type Logger, type LogLevel } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { onSignals, sendSignal } from '../../shared/runtime/signals.ts';
import type { CommandContext } from '../commands/_context.ts';
import type { PilotConfig } from '../config.ts';
import { connectLongLived, type LongLivedClient } from './_connect.ts';
import { type AgentConfig, loadAgentConfig, type TemplateConfig } from './agent_config.ts';
import {
  type ChangeWatcher,
  createChangeWatcher,
  describeError,
  FIRST_BACKOFF_MS,
  MAX_BACKOFF_MS,
  type WatchingClient,
  type WatchState,
} from './changes.ts';
import { StartFailedError, startChild } from './child.ts';
import { type DeliveryClient, type Fetched, fetchAll, fetchEach } from './fetch.ts';
import { removeLeftovers, type WriteHooks, writeIfChanged } from './file_writer.ts';
import { renderTemplate } from './template.ts';

/** How long a template's command may run before it is stopped. */
export const COMMAND_TIMEOUT_MS = 60_000;
/** After COMMAND_TIMEOUT_MS: SIGTERM, then SIGKILL this much later. */
const COMMAND_GRACE_MS = 5_000;

export interface AgentOptions {
  readonly configFile: string;
  readonly once: boolean;
}

/** What every step of one agent run uses. */
interface AgentRun {
  readonly logger: Logger;
  readonly deps: AgentDeps;
  /** The agent's own environment, which the templates' commands get. */
  readonly environment: Env;
}

/** The process edge of the agent, replaced in tests. */
export interface AgentDeps {
  readonly createLogger: (level: LogLevel) => Logger;
  readonly connectLongLived: (config: PilotConfig, logger: Logger) => Promise<LongLivedClient>;
  readonly watcherFor: (
    client: WatchingClient,
    onState: (state: WatchState) => void,
  ) => ChangeWatcher;
  readonly onSignals: typeof onSignals;
  readonly startChild: typeof startChild;
  readonly writeHooks?: WriteHooks;
}

export function defaultAgentDeps(): AgentDeps {
  return {
    createLogger: (level) => createLogger({ component: 'template-agent', level }),
    connectLongLived,
    watcherFor: (client, onState) => createChangeWatcher(client, { onState }),
    onSignals,
    startChild,
  };
}

/** Runs the agent; returns the exit status (0 once stopped by SIGINT or SIGTERM). */
export async function runTemplateAgent(
  context: CommandContext,
  options: AgentOptions,
  deps: AgentDeps,
): Promise<number> {
  const agentConfig = await loadAgentConfig(options.configFile);
  const pilotConfig = context.config();
  const logger = deps.createLogger(pilotConfig.identity.logLevel);
  const run: AgentRun = { logger, deps, environment: context.environment };
  for (const template of agentConfig.templates) {
    const removed = await removeLeftovers(template.destination);
    if (removed > 0) {
      logger.info('Removed temporary files of an earlier run', {
        destination: template.destination,
        count: removed,
      });
    }
  }
  if (options.once) {
    await renderOnce(agentConfig, await context.client(), run);
    return 0;
  }
  const stopping = new AbortController();
  const unsubscribe = deps.onSignals(['SIGINT', 'SIGTERM'], (name) => {
    logger.info('Stopping', { signal: name });
    stopping.abort(new Error(`stopped by ${name}`));
  });
  try {
    const client = await deps.connectLongLived(pilotConfig, logger);
    try {
      await keepCurrent(agentConfig, client, run, stopping.signal);
    } catch (err) {
      if (!stopping.signal.aborted) throw err;
    } finally {
      client.close();
    }
    return 0;
  } finally {
    unsubscribe();
  }
}

/**
 * `--once`: every template is rendered before any file is written, so a
 * secret that cannot be read leaves every file as it was.
 */
async function renderOnce(
  config: AgentConfig,
  client: DeliveryClient,
  run: AgentRun,
): Promise<void> {
  const secrets = await fetchAll(client, pathsOf(config));
  const rendered = config.templates.map(
    (template) => [template, renderTemplate(template.template, secrets)] as const,
  );
  for (const [template, content] of rendered) {
    await writeAndAct(template, content, secrets, run);
  }
}

/** Renders, waits for a new version, renders again… until `signal` aborts. */
async function keepCurrent(
  config: AgentConfig,
  client: DeliveryClient & WatchingClient,
  run: AgentRun,
  signal: AbortSignal,
): Promise<never> {
  const { logger, deps } = run;
  const paths = pathsOf(config);
  const watcher = deps.watcherFor(client, (state) => {
    if (state.ok) {
      logger.info('Checking for new versions again');
    } else {
      logger.warn('Cannot check for new versions; backing off', {
        paths: state.paths.join(', '),
        error: describeError(state.error),
        maxBackoffMs: MAX_BACKOFF_MS,
      });
    }
  });
  const problems = new Map<string, string>();
  let backoffMs = FIRST_BACKOFF_MS;
  let watching = false;
  for (;;) {
    const fetched = await fetchEach(client, paths);
    signal.throwIfAborted();
    let failed = false;
    for (const template of config.templates) {
      try {
        const secrets = secretsFor(template, fetched);
        await writeAndAct(template, renderTemplate(template.template, secrets), secrets, run);
        if (problems.delete(template.destination)) {
          logger.info('Template renders again', { destination: template.destination });
        }
      } catch (err) {
        failed = true;
        const error = describeError(err);
        if (problems.get(template.destination) !== error) {
          problems.set(template.destination, error);
          logger.warn('Cannot render the template; the file keeps its last content', {
            destination: template.destination,
            error,
          });
        }
      }
    }
    if (failed) {
      watching = false;
      logger.debug('Trying again', { inMs: backoffMs });
      await delay(backoffMs, { signal });
      backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
      continue;
    }
    backoffMs = FIRST_BACKOFF_MS;
    if (!watching) {
      watching = true;
      logger.info('Every template is current; watching for new versions', {
        templates: config.templates.length,
        paths: paths.length,
      });
    }
    const known = new Map<string, number>();
    for (const [path, result] of fetched) if (result.ok) known.set(path, result.secret.version);
    const changed = await watcher.nextChange(known, signal);
    logger.info('New version', { versions: Object.fromEntries(changed) });
  }
}

/** The fetched secrets a template reads, or the first failure among them. */
function secretsFor(template: TemplateConfig, fetched: Fetched): Map<string, SecretResponse> {
  const secrets = new Map<string, SecretResponse>();
  for (const path of template.template.paths) {
    const result = fetched.get(path);
    if (result === undefined) throw new Error(`${path} was not fetched`);
    if (!result.ok) throw result.error;
    secrets.set(path, result.secret);
  }
  return secrets;
}

async function writeAndAct(
  template: TemplateConfig,
  content: string,
  secrets: ReadonlyMap<string, SecretResponse>,
  run: AgentRun,
): Promise<void> {
  const { logger, deps } = run;
  const written = await writeIfChanged(
    template.destination,
    content,
    template.mode,
    deps.writeHooks,
  );
  const versions: Record<string, number> = {};
  for (const path of template.template.paths) versions[path] = secrets.get(path)?.version ?? 0;
  if (!written) {
    logger.debug('Unchanged', { destination: template.destination, versions });
    return;
  }
  logger.info('Rendered', {
    destination: template.destination,
    mode: `0${template.mode.toString(8)}`,
    versions,
  });
  await act(template, run);
}

/** The template's command or signal; a failure is logged, the file stays written. */
async function act(template: TemplateConfig, run: AgentRun): Promise<void> {
  const { logger, deps } = run;
  const destination = template.destination;
  if (template.command !== undefined) {
    const [command, ...args] = template.command as [string, ...string[]];
    try {
      const child = await deps.startChild({
        command,
        args,
        env: definedOnly(run.environment),
        stdio: 'no-stdin',
      });
      const timeout = new AbortController();
      const timedOut = delay(COMMAND_TIMEOUT_MS, { signal: timeout.signal }).then(
        () => true,
        () => false,
      );
      const late = await Promise.race([child.exited.then(() => false), timedOut]);
      timeout.abort();
      if (late) {
        logger.warn('The command did not end in time; stopping it', {
          destination,
          command,
          timeoutMs: COMMAND_TIMEOUT_MS,
        });
        await child.stop(COMMAND_GRACE_MS);
      }
      const exit = await child.exited;
      const fields = { destination, command, status: exit.status };
      if (exit.status === 0) logger.info('Ran the command', fields);
      else logger.warn('The command failed', fields);
    } catch (err) {
      if (!(err instanceof StartFailedError)) throw err;
      logger.warn('Cannot run the command', { destination, error: err.message });
    }
  }
  if (template.signal !== undefined) {
    const { pidFile, name } = template.signal;
    try {
      const text = (await readFile(pidFile, 'utf8')).trim();
      const pid = /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : Number.NaN;
      if (!Number.isSafeInteger(pid)) {
        logger.warn('The PID file holds no process ID', { destination, pidFile });
      } else if (sendSignal(pid, name)) {
        logger.info('Sent the signal', { destination, pidFile, pid, signal: name });
      } else {
        logger.warn('No process has the ID in the PID file', { destination, pidFile, pid });
      }
    } catch (err) {
      logger.warn('Cannot send the signal', {
        destination,
        pidFile,
        error: (err as { code?: string }).code ?? describeError(err),
      });
    }
  }
}

function pathsOf(config: AgentConfig): string[] {
  return [...new Set(config.templates.flatMap((template) => template.template.paths))];
}

function definedOnly(env: Env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) out[name] = value;
  return out;
}
