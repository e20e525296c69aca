/**
 * Composition root of a Keeper, top to bottom: config → logger → metrics and,
 * when configured, the operations listener → audit sink (refused when others
 * may read it) → our SVID → peer verifier (only Nexus may connect) → app →
 * mTLS server → readiness (ready while it serves with a usable SVID).
 * Every request and every refused connection is audited.
 */
import { VERSION } from '../shared/api/version.ts';
import { auditRefusals, openAuditSink } from '../shared/http/audit.ts';
import { peerFromConnection } from '../shared/http/peer.ts';
import { hasUsableSvid, openIdentity, startMtlsService } from '../shared/http/service.ts';
import { createLogger } from '../shared/log/logger.ts';
import { Metrics } from '../shared/ops/metrics.ts';
import { notReady, READY, startOpsServer } from '../shared/ops/ops_server.ts';
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
  const metrics = new Metrics({ program: 'keeper' });
  const ops =
    config.opsAddress === undefined
      ? undefined
      : await startOpsServer({ ...config.opsAddress, metrics, logger });
  // A Keeper always fails closed: it holds a shard, and never acts unaudited.
  const auditSink = openAuditSink(config.auditLog, logger, {
    component: 'keeper',
    ...(config.auditKey === undefined ? {} : { key: config.auditKey }),
    counters: metrics,
  });
  try {
    const source = await openIdentity({ identity: config.identity, ownRole: isKeeper(td), logger });
    const verifier = new PeerVerifier({ source, authorize: isNexus(td), logger });
    // Subscribed before the server exists, so every refused connection is audited.
    const stopAuditingRefusals = verifier.onRefusal(
      auditRefusals({ sink: auditSink, component: 'keeper' }),
    );
    metrics.observe({
      svidNotAfter: () => source.getX509Svid().notAfter,
      tlsRefusals: () => verifier.refusedByCause(),
    });
    const app = createApp({
      getPeer: peerFromConnection(verifier),
      logger,
      trustDomain: td,
      holder,
      auditSink,
      metrics,
    });
    const service = await startMtlsService({
      fetch: app.fetch,
      source,
      verifier,
      logger,
      listen: config.listen,
      version: VERSION,
      onStop: async () => {
        ops?.setReadiness(() => notReady('stopping'));
        stopAuditingRefusals();
        holder.clear();
        auditSink.close();
        await ops?.close();
      },
    });
    ops?.setReadiness(() => (hasUsableSvid(source, verifier) ? READY : notReady('no_svid')));
    return service.stop;
  } catch (err) {
    auditSink.close();
    throw err;
  }
});
