/**
 * How `spike` gets its SVID and reaches Nexus, within one time budget:
 * `SPIKE_PILOT_TIMEOUT` starts when Pilot starts connecting and covers the
 * wait for our SVID, every connection and every request (the SDK cuts each
 * one to what is left). A Workload API that cannot be reached fails at once,
 * since a one-shot command has nothing to wait for, and says what to check;
 * a failure once the budget has run out names the variable.
 *
 * main.ts imports this module only when a command needs the Workload API:
 * it and the SDK are most of the start-up time (docs/performance.md).
 */
import { createSpikeClient, type SpikeClient } from '../sdk/index.ts';
import { ENV_ENDPOINT_SOCKET, ENV_SOURCE_TIMEOUT } from '../shared/config/common.ts';
import { errorForCode } from '../shared/errors/error_for_code.ts';
import { isBrokerError } from '../shared/errors/errors.ts';
import { createLogger, type Logger } from '../shared/log/logger.ts';
import { formatWorkloadApiAddress } from '../shared/spiffe/workload_address.ts';
import { type FetchedX509Source, fetchX509Source } from '../shared/spiffe/x509_source.ts';
import type { PilotClient } from './commands/_context.ts';
import { ENV_PILOT_TIMEOUT, type PilotConfig } from './config.ts';

/**
 * A failure this close to the deadline counts as the budget running out:
 * timers may fire a millisecond before the wall clock says they should.
 */
const DEADLINE_SLACK_MS = 50;

/** Only errors reach the terminal: Pilot reports failures itself. */
function pilotLogger(): Logger {
  return createLogger({ component: 'pilot', level: 'error' });
}

/** The end of a run's time budget when connecting starts now. */
export function budgetDeadline(config: PilotConfig, now: number = Date.now()): number {
  return now + config.timeoutMs;
}

/**
 * Our SVID and bundles, fetched once (no gRPC client, no watch: a run is
 * over long before an SVID rotates; docs/decisions/0023), waiting no longer
 * than `SPIKE_SPIFFE_SOURCE_TIMEOUT` nor past the deadline, and not at all
 * when the Workload API cannot be reached. The caller closes it.
 */
export async function openPilotSource(
  config: PilotConfig,
  deadline: number,
): Promise<FetchedX509Source> {
  const address = formatWorkloadApiAddress(config.identity.workloadApiAddress);
  const sourceTimeoutMs = config.identity.sourceTimeoutMs;
  const left = deadline - Date.now();
  const limit =
    sourceTimeoutMs <= left
      ? { name: ENV_SOURCE_TIMEOUT, ms: sourceTimeoutMs }
      : { name: ENV_PILOT_TIMEOUT, ms: config.timeoutMs };
  const waitMs = Math.max(1, Math.min(sourceTimeoutMs, left));
  const started = Date.now();
  try {
    return await fetchX509Source({ address, timeoutMs: waitMs });
  } catch (err) {
    if (!isBrokerError(err) || err.code !== 'ERR_WORKLOAD_API_UNAVAILABLE') {
      throw err;
    }
    const hint =
      Date.now() + DEADLINE_SLACK_MS >= started + waitMs
        ? `spike waits at most ${limit.name} (${limit.ms} ms) for it`
        : `set ${ENV_ENDPOINT_SOCKET} to the socket of a running SPIFFE agent, or start the local broker with "npm start" (spike-local) and use the ${ENV_ENDPOINT_SOCKET} it prints`;
    throw errorForCode(err.code, `${err.message}; ${hint}`);
  }
}

/**
 * The SDK client over our own source; its close() closes both. `waitMs`
 * (a command's wait for a change) lengthens the budget.
 */
export async function connectPilot(config: PilotConfig, waitMs = 0): Promise<PilotClient> {
  const deadline = budgetDeadline(config) + waitMs;
  const source = await openPilotSource(config, deadline);
  let client: SpikeClient;
  try {
    client = await createSpikeClient({
      source,
      nexusUrl: config.nexusUrl,
      trustDomain: config.identity.trustDomain,
      timeoutMs: config.timeoutMs,
      deadline: new Date(deadline),
      logger: pilotLogger(),
    });
  } catch (err) {
    source.close();
    throw err;
  }
  return withBudget(client, source, (err) => explainBudget(err, config, deadline));
}

/**
 * The client as commands see it: every failed call goes through `explain`,
 * and close() closes the source too. A Proxy, so that every method of the
 * client is covered as it is, sync ones (spiffeId) untouched.
 */
function withBudget(
  client: SpikeClient,
  source: FetchedX509Source,
  explain: (err: unknown) => unknown,
): PilotClient {
  return new Proxy(client, {
    get(target, name) {
      if (name === 'close') {
        return () => {
          target.close();
          source.close();
        };
      }
      const value: unknown = Reflect.get(target, name, target);
      if (typeof value !== 'function') {
        return value;
      }
      return (...args: unknown[]) => {
        const result: unknown = value.apply(target, args);
        return result instanceof Promise
          ? result.catch((err: unknown) => {
              throw explain(err);
            })
          : result;
      };
    },
  });
}

/** Nexus unreachable once the budget has run out: say which setting ended the wait. */
export function explainBudget(
  err: unknown,
  config: PilotConfig,
  deadline: number,
  now: number = Date.now(),
): unknown {
  if (!isBrokerError(err) || err.code !== 'ERR_UNAVAILABLE' || now + DEADLINE_SLACK_MS < deadline) {
    return err;
  }
  return errorForCode(
    err.code,
    `${err.message}; spike gives up after ${ENV_PILOT_TIMEOUT} (${config.timeoutMs} ms) in all`,
  );
}
