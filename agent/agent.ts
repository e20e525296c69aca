/**
 * The running embedded agent: the trust-domain CA, one SVID rotator and one
 * Workload API socket per registration. `startAgent` builds it from a
 * loaded config; `close()` stops rotation, ends the streams and removes the
 * sockets.
 */
import type { Logger } from '../shared/log/logger.ts';
import type { SpiffeId, TrustDomain } from '../shared/spiffe/spiffe_id.ts';
import { type LocalCa, loadOrCreateCa } from './ca.ts';
import type { AgentConfig } from './config.ts';
import { SvidRotator } from './svid_rotator.ts';
import {
  type BundleSource,
  ensureSocketDir,
  startWorkloadApiServer,
  type WorkloadApiServer,
} from './workload_api_server.ts';

export interface AgentSocket {
  readonly name: string;
  readonly spiffeId: SpiffeId;
  readonly socketPath: string;
  /** `unix:///…`: the value a workload puts in SPIFFE_ENDPOINT_SOCKET. */
  readonly address: string;
}

/** What a rotation produced; the key stays inside the agent. */
export interface SvidSummary {
  readonly spiffeId: SpiffeId;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface AgentOptions {
  /** The clock; tests move it. */
  readonly now?: () => Date;
  /** A number in [0, 1) for the rotation jitter. */
  readonly random?: () => number;
}

export interface RunningAgent {
  readonly trustDomain: TrustDomain;
  readonly sockets: readonly AgentSocket[];
  /** DER of the CA certificate: this trust domain's X.509 bundle. */
  bundleDer(): Uint8Array;
  /** Re-issues the named registration's SVID now and pushes it to its streams. */
  rotateNow(name: string): Promise<SvidSummary>;
  /** When the named registration's SVID is due for rotation. */
  rotationDueAt(name: string): Date;
  close(): Promise<void>;
}

export async function startAgent(
  config: AgentConfig,
  logger: Logger,
  options: AgentOptions = {},
): Promise<RunningAgent> {
  const now = options.now ?? (() => new Date());
  const ca = await loadOrCreateCa({
    trustDomain: config.trustDomain,
    dataDir: config.dataDir,
    caTtlMs: config.caTtlMs,
    logger,
    now,
  });
  // Checked once, at start (docs/agent.md says so): the CA never rotates, and
  // its notAfter is in the line loadOrCreateCa logs.
  const remainingMs = ca.notAfter.getTime() - now().getTime();
  if (remainingMs < config.svidTtlMs) {
    logger.warn('The agent CA expires before a full SVID lifetime; SVIDs will be shortened', {
      caNotAfter: ca.notAfter.toISOString(),
    });
  }
  await ensureSocketDir(config.socketDir);

  const bundle = staticBundle(ca);
  const rotators = new Map<string, SvidRotator>();
  const servers: WorkloadApiServer[] = [];
  try {
    for (const registration of config.registrations) {
      const rotator = new SvidRotator({
        registration,
        ca,
        ttlMs: config.svidTtlMs,
        logger,
        now: () => now().getTime(),
        ...(options.random === undefined ? {} : { random: options.random }),
      });
      rotators.set(registration.name, rotator);
      await rotator.start();
      servers.push(await startWorkloadApiServer({ registration, svids: rotator, bundle, logger }));
    }
  } catch (err) {
    await stopAll(rotators, servers);
    throw err;
  }

  const sockets = servers.map((server) =>
    Object.freeze({
      name: server.registration.name,
      spiffeId: server.registration.spiffeId,
      socketPath: server.socketPath,
      address: server.address,
    }),
  );

  function rotatorFor(name: string): SvidRotator {
    const rotator = rotators.get(name);
    if (rotator === undefined) {
      throw new RangeError(`No registration named "${name}"`);
    }
    return rotator;
  }

  let closing: Promise<void> | undefined;
  return Object.freeze({
    trustDomain: config.trustDomain,
    sockets: Object.freeze(sockets),
    bundleDer: () => ca.certificateDer(),
    async rotateNow(name: string): Promise<SvidSummary> {
      const svid = await rotatorFor(name).rotateNow();
      return Object.freeze({
        spiffeId: svid.spiffeId,
        serialNumber: svid.serialNumber,
        notBefore: svid.notBefore,
        notAfter: svid.notAfter,
      });
    },
    rotationDueAt: (name: string) => new Date(rotatorFor(name).rotationDueAtMs()),
    close(): Promise<void> {
      closing ??= stopAll(rotators, servers).then(() => {
        logger.info('Agent stopped', { trustDomain: config.trustDomain.name });
      });
      return closing;
    },
  });
}

/** The CA never rotates in this agent, so the bundle never changes. */
function staticBundle(ca: LocalCa): BundleSource {
  return {
    trustDomain: ca.trustDomain,
    current: () => ca.certificateDer(),
    subscribe: () => () => {},
  };
}

async function stopAll(
  rotators: ReadonlyMap<string, SvidRotator>,
  servers: readonly WorkloadApiServer[],
): Promise<void> {
  for (const rotator of rotators.values()) {
    rotator.stop();
  }
  await Promise.all(servers.map((server) => server.close()));
}
