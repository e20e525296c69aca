/** What spike-local prints on stdout once Nexus is ready: exactly what to type next. */
import { DEFAULT_NEXUS_PORT } from '../shared/api/nexus_address.ts';
import type { Runtime } from './child.ts';
import { type LocalBrokerInfo, OPS_CHILDREN } from './launcher.ts';

export function formatSummary(
  info: LocalBrokerInfo,
  options: { readonly runtime: Runtime; readonly trustDomain: string; readonly nexusPort: number },
): string {
  const spike = options.runtime === 'deno' ? 'deno task spike' : 'npx spike';
  const lines = [
    `SPIKE is running: Nexus at ${info.nexusUrl}, 3 Keepers and the embedded agent (trust domain "${options.trustDomain}").`,
    `Data is kept in ${info.dataDir}; logs are in ${info.logsDir}.`,
    '',
    'In another terminal, type:',
    '',
    `  export SPIFFE_ENDPOINT_SOCKET=unix://${info.socketDir}/pilot.sock`,
  ];
  if (options.nexusPort !== DEFAULT_NEXUS_PORT) {
    lines.push(`  export SPIKE_NEXUS_API_URL=https://localhost:${options.nexusPort}`);
  }
  lines.push(
    `  ${spike} secret put app/db/creds password=s3cret`,
    `  ${spike} secret get app/db/creds`,
    '',
    `The example app's identity spiffe://${options.trustDomain}/apps/example is served at unix://${info.socketDir}/app.sock.`,
    '',
    'Probes and metrics (plain HTTP, no certificate: GET /live, /ready, /metrics):',
    ...OPS_CHILDREN.flatMap((name) => {
      const url = info.opsUrls[name];
      return url === undefined ? [] : [`  ${name.padEnd(8)}  ${url}`];
    }),
    'Press Ctrl-C to stop.',
  );
  return lines.join('\n');
}
