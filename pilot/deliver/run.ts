/**
 * `spike run`: reads the named secrets with the caller's own SVID, then
 * starts a command with them in its environment, passes it the signals
 * spike gets and exits with its status. With `--watch`, a new version of a
 * secret it uses restarts it with the new values (SIGTERM, a grace period,
 * SIGKILL). Nothing is started when a secret cannot be read or a variable
 * cannot be set; no value is ever printed.
 */
import type { SecretResponse } from '../../shared/api/secrets.ts';
import type { Env } from '../../shared/config/env.ts';
import { createLogger } from '../../shared/log/logger.ts';
import { delay } from '../../shared/runtime/delay.ts';
import { FORWARDED_SIGNALS, onSignals, type SignalName } from '../../shared/runtime/signals.ts';
import type { CommandContext } from '../commands/_context.ts';
import type { PilotConfig } from '../config.ts';
import { connectLongLived, type LongLivedClient } from './_connect.ts';
import {
  type ChangeWatcher,
  createChangeWatcher,
  describeError,
  FIRST_BACKOFF_MS,
  MAX_BACKOFF_MS,
  type Versions,
  type WatchingClient,
  type WatchState,
} from './changes.ts';
import { type ChildExit, type RunningChild, StartFailedError, startChild } from './child.ts';
import { type DeliveryClient, fetchAll, versionsOf } from './fetch.ts';
import { buildVariables, planVariables, type VariablePlan } from './names.ts';

export interface RunOptions {
  readonly secret: readonly string[];
  readonly env: readonly string[];
  readonly watch: boolean;
  readonly graceMs: number;
}

/** The process edge of `spike run`, replaced in tests. */
export interface RunDeps {
  readonly connectLongLived: (config: PilotConfig) => Promise<LongLivedClient>;
  readonly watcherFor: (
    client: WatchingClient,
    onState: (state: WatchState) => void,
  ) => ChangeWatcher;
  readonly onSignals: typeof onSignals;
  readonly startChild: typeof startChild;
}

export function defaultRunDeps(): RunDeps {
  return {
    // The run's stderr is its child's too: only errors of the client itself.
    connectLongLived: (config) =>
      connectLongLived(config, createLogger({ component: 'pilot', level: 'error' })),
    watcherFor: (client, onState) => createChangeWatcher(client, { onState }),
    onSignals,
    startChild,
  };
}

/** Signals after which a child that ends is not started again. */
const STOPPING = new Set<SignalName>(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']);

/** Runs `argv` with the secrets; returns the status spike exits with. */
export async function runWithSecrets(
  context: CommandContext,
  argv: readonly string[],
  options: RunOptions,
  deps: RunDeps,
): Promise<number> {
  const plan = planVariables(options.secret, options.env);
  if (!options.watch) {
    const secrets = await fetchAll(await context.client(), plan.paths);
    return supervise(context, argv, buildVariables(plan, secrets), options, deps, undefined);
  }
  const client = await deps.connectLongLived(context.config());
  try {
    const secrets = await fetchAll(client, plan.paths);
    const variables = buildVariables(plan, secrets);
    const watch = new ValueWatch(context, plan, client, deps, versionsOf(secrets), variables);
    return await supervise(context, argv, variables, options, deps, watch);
  } finally {
    client.close();
  }
}

async function supervise(
  context: CommandContext,
  argv: readonly string[],
  first: Readonly<Record<string, string>>,
  options: RunOptions,
  deps: RunDeps,
  watch: ValueWatch | undefined,
): Promise<number> {
  const [command, ...args] = argv as [string, ...string[]];
  let child: RunningChild | undefined;
  let stopSignal: SignalName | undefined;
  const stopping = new AbortController();
  const unsubscribe = deps.onSignals(FORWARDED_SIGNALS, (name) => {
    if (STOPPING.has(name) && stopSignal === undefined) {
      stopSignal = name;
      stopping.abort(new Error(`stopped by ${name}`));
    }
    child?.signal(name);
  });
  try {
    let variables = first;
    for (;;) {
      try {
        child = await deps.startChild({
          command,
          args,
          env: childEnvironment(context.environment, variables),
        });
      } catch (err) {
        if (!(err instanceof StartFailedError)) throw err;
        context.output.stderr(`spike: ${err.message}`);
        return err.status;
      }
      // A signal that came while the child was starting.
      if (stopSignal !== undefined) child.signal(stopSignal);
      if (watch === undefined) {
        return (await child.exited).status;
      }
      const next = await watchUntilExit(child, watch, stopping.signal);
      if ('exit' in next) return next.exit.status;
      context.output.stderr(
        `spike run: ${next.changed.join(', ')} has a new version: restarting ${command} (SIGTERM, then SIGKILL after ${options.graceMs} ms)`,
      );
      const exit = await child.stop(options.graceMs);
      child = undefined;
      if (stopSignal !== undefined) return exit.status;
      variables = next.variables;
    }
  } finally {
    unsubscribe();
  }
}

type WatchOutcome =
  | { readonly exit: ChildExit }
  | { readonly changed: readonly string[]; readonly variables: Record<string, string> };

/** The child's exit, or new values for it, whichever comes first. */
async function watchUntilExit(
  child: RunningChild,
  watch: ValueWatch,
  stopping: AbortSignal,
): Promise<WatchOutcome> {
  const done = new AbortController();
  const signal = AbortSignal.any([done.signal, stopping]);
  const exited = child.exited.then((exit) => ({ exit }));
  // Aborted (the child ended, or spike is stopping): only the exit counts.
  const changed = watch.nextValues(signal).catch(() => exited);
  try {
    return await Promise.race([exited, changed]);
  } finally {
    done.abort(new Error('the child ended'));
  }
}

/** Spike's environment with the secrets' variables over it. */
export function childEnvironment(
  inherited: Env,
  variables: Readonly<Record<string, string>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(inherited)) {
    if (value !== undefined) env[name] = value;
  }
  return Object.assign(env, variables);
}

/**
 * The secrets of a `--watch` run: waits for a new version, reads the new
 * values, and hands them on only when the variables differ. A failure to
 * read them is reported and retried with back-off while the child keeps
 * running with the values it has.
 */
class ValueWatch {
  readonly #context: CommandContext;
  readonly #plan: VariablePlan;
  readonly #client: DeliveryClient;
  readonly #watcher: ChangeWatcher;
  #known: Versions;
  #current: Readonly<Record<string, string>>;

  constructor(
    context: CommandContext,
    plan: VariablePlan,
    client: DeliveryClient & WatchingClient,
    deps: RunDeps,
    known: Versions,
    current: Readonly<Record<string, string>>,
  ) {
    this.#context = context;
    this.#current = current;
    this.#plan = plan;
    this.#client = client;
    this.#known = known;
    this.#watcher = deps.watcherFor(client, (state) => {
      context.output.stderr(
        state.ok
          ? 'spike run: watching again'
          : `spike run: cannot check ${state.paths.join(', ')} for new versions: ${describeError(state.error)}; trying again within ${MAX_BACKOFF_MS} ms`,
      );
    });
  }

  async nextValues(
    signal: AbortSignal,
  ): Promise<{ changed: string[]; variables: Record<string, string> }> {
    let backoffMs = FIRST_BACKOFF_MS;
    for (;;) {
      const changed = await this.#watcher.nextChange(this.#known, signal);
      let secrets: Map<string, SecretResponse>;
      let variables: Record<string, string>;
      try {
        secrets = await fetchAll(this.#client, this.#plan.paths);
        variables = buildVariables(this.#plan, secrets);
      } catch (err) {
        signal.throwIfAborted();
        this.#context.output.stderr(
          `spike run: cannot use the new version of ${[...changed.keys()].join(', ')}: ${describeError(err)}; the command keeps its values`,
        );
        await delay(backoffMs, { signal });
        backoffMs = Math.min(MAX_BACKOFF_MS, backoffMs * 2);
        continue;
      }
      backoffMs = FIRST_BACKOFF_MS;
      const before = this.#known;
      this.#known = versionsOf(secrets);
      if (sameVariables(variables, this.#current)) continue;
      this.#current = variables;
      const moved = [...this.#known].filter(([path, version]) => before.get(path) !== version);
      return { changed: moved.map(([path]) => path), variables };
    }
  }
}

function sameVariables(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
): boolean {
  const names = Object.keys(a);
  return (
    names.length === Object.keys(b).length &&
    names.every((name) => Object.hasOwn(b, name) && a[name] === b[name])
  );
}
