/**
 * Composition root of Nexus: config → SVID → mTLS server. Any SVID of our
 * trust domain may connect; each route authorizes the caller's SPIFFE ID.
 */
import { VERSION } from '../shared/api/version.ts';
import { startMtlsService } from '../shared/http/service.ts';
import { createLogger } from '../shared/log/logger.ts';
import { environment, runService } from '../shared/runtime/process.ts';
import { isNexus } from '../shared/spiffe/identities.ts';
import { matchMemberOf } from '../shared/spiffe/match.ts';
import { createApp } from './app.ts';
import { loadNexusConfig } from './config.ts';

await runService('spike-nexus', async () => {
  const config = loadNexusConfig(environment());
  const logger = createLogger({ component: 'nexus', level: config.identity.logLevel });
  const td = config.identity.trustDomain;
  const service = await startMtlsService({
    identity: config.identity,
    logger,
    ownRole: isNexus(td),
    authorizePeers: matchMemberOf(td),
    listen: config.listen,
    version: VERSION,
    createFetch: (getPeer) => createApp({ getPeer, logger }).fetch as never,
  });
  return service.stop;
});
