/** Composition root of a Keeper: config → SVID → mTLS server (only Nexus may connect). */
import { VERSION } from '../shared/api/version.ts';
import { startMtlsService } from '../shared/http/service.ts';
import { createLogger } from '../shared/log/logger.ts';
import { environment, runService } from '../shared/runtime/process.ts';
import { isKeeper, isNexus } from '../shared/spiffe/identities.ts';
import { createApp } from './app.ts';
import { loadKeeperConfig } from './config.ts';
import { ShardHolder } from './shard_holder.ts';

await runService('spike-keeper', async () => {
  const config = loadKeeperConfig(environment());
  const logger = createLogger({ component: 'keeper', level: config.identity.logLevel });
  const td = config.identity.trustDomain;
  const holder = new ShardHolder({ logger });
  const service = await startMtlsService({
    identity: config.identity,
    logger,
    ownRole: isKeeper(td),
    authorizePeers: isNexus(td),
    listen: config.listen,
    version: VERSION,
    createFetch: (getPeer) =>
      createApp({ getPeer, logger, trustDomain: td, holder }).fetch as never,
  });
  return async function stopKeeper() {
    await service.stop();
    holder.clear();
  };
});
