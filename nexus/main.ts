/**
 * Composition root of Nexus: config → database → SVID → Keeper links → root
 * key manager → mTLS server. Any SVID of our trust domain may connect; each
 * route authorizes the caller's SPIFFE ID. Nexus starts sealed and unseals
 * itself from the Keepers (or initialises an empty store).
 */
import { join } from 'node:path';
import { VERSION } from '../shared/api/version.ts';
import { startMtlsService } from '../shared/http/service.ts';
import { createLogger } from '../shared/log/logger.ts';
import { environment, runService } from '../shared/runtime/process.ts';
import { isKeeper, isNexus } from '../shared/spiffe/identities.ts';
import { matchMemberOf } from '../shared/spiffe/match.ts';
import { MtlsClient } from '../shared/spiffe/mtls_client.ts';
import { createApp } from './app.ts';
import { loadNexusConfig } from './config.ts';
import { createHttpsKeeperLink } from './root_key/keeper_link.ts';
import { RootKey } from './root_key/root_key.ts';
import { RootKeyManager } from './root_key/root_key_manager.ts';
import { openSqliteDatabase } from './store/db.ts';
import { SqliteRootKeyStore } from './store/sqlite_root_key_store.ts';

await runService('spike-nexus', async () => {
  const config = loadNexusConfig(environment());
  const logger = createLogger({ component: 'nexus', level: config.identity.logLevel });
  const td = config.identity.trustDomain;
  const database = await openSqliteDatabase({ path: join(config.dataDir, 'spike.db') });
  const store = new SqliteRootKeyStore(database);
  const rootKey = new RootKey();
  let manager: RootKeyManager | undefined;
  let keeperClient: MtlsClient | undefined;
  const service = await startMtlsService({
    identity: config.identity,
    logger,
    ownRole: isNexus(td),
    authorizePeers: matchMemberOf(td),
    listen: config.listen,
    version: VERSION,
    createFetch: (getPeer, source) => {
      keeperClient = new MtlsClient({
        source,
        authorizeServer: isKeeper(td),
        timeoutMs: config.keeperTimeoutMs,
      });
      const client = keeperClient;
      manager = new RootKeyManager({
        store,
        keepers: config.keeperPeers.map((url) =>
          createHttpsKeeperLink(url, client, config.keeperTimeoutMs),
        ),
        threshold: config.shamirThreshold,
        rootKey,
        logger,
        checkIntervalMs: config.keeperUpdateIntervalMs,
        recoveryMaxIntervalMs: config.recoveryMaxIntervalMs,
      });
      return createApp({ getPeer, logger, trustDomain: td, rootKey, manager }).fetch as never;
    },
    onStop: async () => {
      manager?.stop();
      keeperClient?.close();
      rootKey.seal();
      await store.close();
    },
  });
  logger.info('Nexus is sealed until the root key is recovered', {
    keepers: config.keeperPeers.map((url) => url.origin),
    threshold: config.shamirThreshold,
  });
  manager?.start();
  return service.stop;
});
