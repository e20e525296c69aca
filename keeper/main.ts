/**
 * Composition root of a Keeper, top to bottom: config → logger → audit sink
 * (refused when others may read it) → our SVID → peer verifier (only Nexus
 * may connect) → app → mTLS server.
 * Every request and every refused connection is audited.
 */
import { VERSION } from '../shared/api/version.ts';
import { auditRefusals, openAuditSink } from '../shared/http/audit.ts';
import { peerFromConnection } from '../shared/http/peer.ts';
import { openIdentity, startMtlsService } from '../shared/http/service.ts';
import { createLogger } from '../shared/log/logger.ts';
import { environment, runService } from '../shared/runtime/process.ts';
import { isKeeper, isNexus } from '../shared/spiffe/identities.ts';
import { PeerVerifier } from '../shared/spiffe/peer_verifier.ts';
import { createApp } from './app.ts';
import { loadKeeperConfig } from './config.ts';
import { ShardHolder } from './shard_holder.ts';

await runService('spike-keeper', async () => {
  const config = loadKeeperConfig(environment());
  const logger = createLogger({ component: 'keeper', level: config.identity.logLevel });
  const td = config.identity.trustDomain;
  const holder = new ShardHolder({ logger });
  // A Keeper always fails closed: it holds a shard, and never acts unaudited.
  const auditSink = openAuditSink(config.auditLog, logger, {
    component: 'keeper',
    ...(config.auditKey === undefined ? {} : { key: config.auditKey }),
  });
  try {
    const source = await openIdentity({ identity: config.identity, ownRole: isKeeper(td), logger });
    const verifier = new PeerVerifier({ source, authorize: isNexus(td), logger });
    // Subscribed before the server exists, so every refused connection is audited.
    const stopAuditingRefusals = verifier.onRefusal(
      auditRefusals({ sink: auditSink, component: 'keeper' }),
    );
    const app = createApp({
      getPeer: peerFromConnection(verifier),
      logger,
      trustDomain: td,
      holder,
      auditSink,
    });
    const service = await startMtlsService({
      fetch: app.fetch,
      source,
      verifier,
      logger,
      listen: config.listen,
      version: VERSION,
      onStop: () => {
        stopAuditingRefusals();
        holder.clear();
        auditSink.close();
      },
    });
    return service.stop;
  } catch (err) {
    auditSink.close();
    throw err;
  }
});
