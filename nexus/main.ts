/**
 * Composition root of Nexus, top to bottom: config → logger → metrics and,
 * when configured, the operations listener (live at once, not ready yet) →
 * data folder (refused when others may write to it), database and stores →
 * audit sink (refused when others may read it) → our SVID → peer verifier →
 * Keeper links → root key manager → app → mTLS server → readiness. Any SVID
 * of our trust domain may connect; each route authorizes the caller's SPIFFE
 * ID. Nexus starts sealed and unseals itself from the Keepers (or
 * initialises an empty store).
 */
import { VERSION } from '../shared/api/version.ts';
import { ensureDirectory, NOT_WRITABLE_BY_OTHERS } from '../shared/config/file_modes.ts';
import { aeadImplementation } from '../shared/crypto/aead.ts';
import { auditRefusals, openAuditSink } from '../shared/http/audit.ts';
import { peerFromConnection, peerOfRequest } from '../shared/http/peer.ts';
import { createTokenBuckets } from '../shared/http/rate_limit.ts';
import { RequestCount } from '../shared/http/request_count.ts';
import { hasUsableSvid, openIdentity, startMtlsService } from '../shared/http/service.ts';
import { createLogger } from '../shared/log/logger.ts';
import { Metrics } from '../shared/ops/metrics.ts';
import { notReady, READY, startOpsServer } from '../shared/ops/ops_server.ts';
import { environment, runService } from '../shared/runtime/process.ts';
import { isNexus } from '../shared/spiffe/identities.ts';
import { matchMemberOf } from '../shared/spiffe/match.ts';
import { PeerVerifier } from '../shared/spiffe/peer_verifier.ts';
import { createAccessChecker } from './access/check_access.ts';
import { loadPolicyCache } from './access/policy_cache.ts';
import { createApp, createReadShortcut, type NexusAppDeps } from './app.ts';
import { loadNexusConfig } from './config.ts';
import { createDataKey } from './keyring/data_key.ts';
import { KeyringSweeper } from './keyring/sweeper.ts';
import { createHttpsKeeperLink } from './root_key/keeper_link.ts';
import { RootKey } from './root_key/root_key.ts';
import { RootKeyManager } from './root_key/root_key_manager.ts';
import { SecretWatches } from './routes/secret_watch.ts';
import { withIntegrityAlarm } from './store/integrity_alarm.ts';
import { openStores, type StoreBackend } from './store/open_stores.ts';

/** How often policies are re-read from the database (for other replicas' changes). */
const POLICY_REFRESH_INTERVAL_MS = 2_000;

await runService('spike-nexus', async () => {
  const config = loadNexusConfig(environment());
  const logger = createLogger({ component: 'nexus', level: config.identity.logLevel });
  const td = config.identity.trustDomain;
  const metrics = new Metrics({ program: 'nexus' });
  const ops =
    config.opsAddress === undefined
      ? undefined
      : await startOpsServer({ ...config.opsAddress, metrics, logger });
  const backend: StoreBackend =
    config.backendStore === 'postgres' && config.databaseUrl !== undefined
      ? { kind: 'postgres', url: config.databaseUrl }
      : config.backendStore === 'memory'
        ? { kind: 'memory' }
        : { kind: 'sqlite', dataDir: config.dataDir, synchronous: config.sqliteSynchronous };
  if (backend.kind === 'sqlite') {
    // Whoever may write to the folder may swap the database files under us.
    ensureDirectory('Data folder', backend.dataDir, NOT_WRITABLE_BY_OTHERS);
  }
  const rootKey = new RootKey();
  metrics.observe({ sealed: () => !rootKey.isReady });
  const stores = await openStores({
    backend,
    keyring: withIntegrityAlarm(rootKey.withKeyring.bind(rootKey), () => {
      metrics.countDecryptionFailure();
      // No path here (the keyring does not know it): the audit event of the
      // same request names it, with errorCode ERR_DECRYPTION_FAILED.
      logger.error(
        'Integrity alarm: stored secret data failed authentication under the data key; the row was altered, moved or sealed under another key',
        { errorCode: 'ERR_DECRYPTION_FAILED' },
      );
    }),
    maxVersionsDefault: config.maxSecretVersions,
    quotas: config.secretQuotas,
    cache: config.cache,
    onConnectionError: (err) =>
      logger.warn('A pooled database connection failed; it will be replaced', {
        error: err.message,
      }),
    onChangeFeed: (status) =>
      status.state === 'listening'
        ? logger.info('The change feed is listening; the read cache starts empty', {
            backendPid: status.backendPid,
          })
        : logger.warn(
            'The change feed lost its connection; reads skip the cache until it is back',
            {
              error: status.error,
              retryInMs: status.retryInMs,
            },
          ),
  });
  const { rootKeys, secrets, policies, transitKeys } = stores;
  // Long-poll reads wait on the store's changes (and the change feed's, on PostgreSQL).
  const watches = new SecretWatches({
    store: secrets,
    changes: stores.changes,
    limits: config.watches,
  });
  const policyCache = await loadPolicyCache({ store: policies, logger });
  const access = createAccessChecker({ trustDomain: td, policies: () => policyCache.policies() });
  // Changes made through this Nexus apply at once; changes made through
  // another replica of a shared PostgreSQL database arrive with this reload.
  const policyRefresh = setInterval(() => {
    policyCache.reload().catch((err: unknown) => {
      logger.warn('Cannot reload policies; keeping the current set', {
        error: err instanceof Error ? err.message : String(err),
      });
    });
  }, POLICY_REFRESH_INTERVAL_MS);
  const auditSink = openAuditSink(config.auditLog, logger, {
    component: 'nexus',
    ...(config.auditKey === undefined ? {} : { key: config.auditKey }),
    failClosed: config.auditFailClosed,
    counters: metrics,
  });
  const source = await openIdentity({ identity: config.identity, ownRole: isNexus(td), logger });
  // Any SVID of our trust domain may connect; each route authorizes the caller.
  const verifier = new PeerVerifier({ source, authorize: matchMemberOf(td), logger });
  // Subscribed before the server exists, so every refused connection is audited.
  const stopAuditingRefusals = verifier.onRefusal(
    auditRefusals({ sink: auditSink, component: 'nexus' }),
  );
  metrics.observe({
    svidNotAfter: () => source.getX509Svid().notAfter,
    tlsRefusals: () => verifier.refusedByCause(),
  });
  // Each link admits only the SPIFFE ID configured for its Keeper's position.
  const keepers = config.keeperPeers.map(({ url, id }) =>
    createHttpsKeeperLink({
      url,
      id,
      source,
      timeoutMs: config.keeperTimeoutMs,
      logger,
      auditSink,
    }),
  );
  const manager = new RootKeyManager({
    store: rootKeys,
    keepers,
    threshold: config.shamirThreshold,
    rootKey,
    logger,
    checkIntervalMs: config.keeperUpdateIntervalMs,
    recoveryMaxIntervalMs: config.recoveryMaxIntervalMs,
  });
  metrics.observe({
    keepersReachable: () => manager.keeperStatus().filter((keeper) => keeper.reachable).length,
  });
  const sweeper = new KeyringSweeper({
    targets: stores.sweepTargets,
    activeTerm: () => rootKey.keyringTerms()?.active,
    logger,
    pauseMs: config.keyringSweepPauseMs,
  });
  const dataKey = createDataKey({
    rootKey,
    rotate: (delayMs) => manager.rotateDataKey(delayMs),
    sweeper,
    targets: stores.sweepTargets,
    // Every other Nexus on the database takes a new keyring up at its next
    // Keeper check; three of them leave room for a slow one.
    activationDelayMs: backend.kind === 'postgres' ? 3 * config.keeperUpdateIntervalMs : 0,
  });
  const appDeps: NexusAppDeps = {
    getPeer: peerFromConnection(verifier),
    logger,
    trustDomain: td,
    rootKey,
    manager,
    dataKey,
    secrets,
    watches,
    policies,
    transitKeys,
    policyCache,
    snapshots: stores.snapshots,
    access,
    identity: source,
    refusals: verifier,
    deniedRequests: new RequestCount(),
    maxBodyBytes: config.maxBodyBytes,
    rateLimit: createTokenBuckets(config.rateLimit),
    auditSink,
    metrics,
  };
  const service = await startMtlsService({
    fetch: createApp(appDeps).fetch,
    shortcut: createReadShortcut(appDeps, peerOfRequest(verifier)),
    source,
    verifier,
    logger,
    listen: config.listen,
    limits: config.limits,
    version: VERSION,
    onStop: async () => {
      ops?.setReadiness(() => notReady('stopping'));
      stopAuditingRefusals();
      clearInterval(policyRefresh);
      manager.stop();
      await sweeper.stop();
      for (const keeper of keepers) keeper.close();
      rootKey.seal();
      auditSink.close();
      await stores.close();
      await ops?.close();
    },
  });
  // Ready: unsealed, serving with a usable SVID, and the database answers.
  ops?.setReadiness(async () => {
    if (!rootKey.isReady) return notReady('sealed');
    if (!hasUsableSvid(source, verifier)) return notReady('no_svid');
    try {
      await stores.ping();
    } catch {
      return notReady('database_unreachable');
    }
    return READY;
  });
  logger.info('Nexus is sealed until the root key is recovered', {
    keepers: config.keeperPeers.map(({ url, id }) => `${url.origin} (${id})`),
    threshold: config.shamirThreshold,
    backendStore: config.backendStore,
    database: stores.location,
    aead: aeadImplementation(),
  });
  manager.start();
  sweeper.start();
  return async function stop() {
    // The server's stop starts draining at once (it stops accepting and marks
    // the requests in flight to close their connection), before its first
    // await; the waiting long-polls then answer 304 now instead of holding
    // the drain for its grace period.
    const stopped = service.stop();
    watches.close();
    await stopped;
  };
});
