/**
 * Composition root of a Keeper: config → audit sink → SVID → mTLS server
 * (only Nexus may connect; every request and every refused connection is
 * audited).
 */
import { VERSION } from '../shared/api/version.ts';
import { type MtlsService, startMtlsService } from '../shared/http/service.ts';
import { createFileAuditSink } from '../shared/log/audit_log.ts';
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
  const auditSink = createFileAuditSink(config.auditLog);
  let service: MtlsService;
  try {
    service = await startMtlsService({
      identity: config.identity,
      logger,
      ownRole: isKeeper(td),
      authorizePeers: isNexus(td),
      listen: config.listen,
      version: VERSION,
      audit: { sink: auditSink, component: 'keeper' },
      createFetch: (getPeer) =>
        createApp({ getPeer, logger, trustDomain: td, holder, auditSink }).fetch as never,
    });
  } catch (err) {
    auditSink.close();
    throw err;
  }
  return async function stopKeeper() {
    await service.stop();
    holder.clear();
    auditSink.close();
  };
});
