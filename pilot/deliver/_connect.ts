/**
 * The client of a long-running delivery (`spike run --watch`, `spike
 * agent`): unlike a one-shot command's, its SVID source follows the
 * Workload API's stream, so rotations reach it, and it has no overall time
 * budget. Imported only when such a command runs: the watched source loads
 * gRPC.
 */
import { createSpikeClient } from '../../sdk/index.ts';
import type { Logger } from '../../shared/log/logger.ts';
import { formatWorkloadApiAddress } from '../../shared/spiffe/workload_address.ts';
import type { PilotConfig } from '../config.ts';
import type { WatchingClient } from './changes.ts';
import type { DeliveryClient } from './fetch.ts';

/** A client to keep; close() ends its connections and its SVID source. */
export interface LongLivedClient extends DeliveryClient, WatchingClient {
  close(): void;
}

/**
 * Waits up to `SPIKE_SPIFFE_SOURCE_TIMEOUT` for our first SVID, then keeps
 * the stream open. Each request may take up to `SPIKE_PILOT_TIMEOUT`; the
 * caller retries what fails.
 */
export function connectLongLived(config: PilotConfig, logger: Logger): Promise<LongLivedClient> {
  return createSpikeClient({
    workloadApiAddress: formatWorkloadApiAddress(config.identity.workloadApiAddress),
    workloadApiTimeoutMs: config.identity.sourceTimeoutMs,
    nexusUrl: config.nexusUrl,
    trustDomain: config.identity.trustDomain,
    timeoutMs: config.timeoutMs,
    logger,
  });
}
