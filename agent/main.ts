/**
 * Composition root of the embedded SPIFFE agent: environment → config →
 * logger → the operations listener when configured (ready once every socket
 * serves) → agent, then a summary of the served sockets on stdout. Exit status:
 * 0 after a clean stop, 1 on a failure, 2 on bad configuration.
 */
import { VERSION } from '../shared/api/version.ts';
import { createLogger } from '../shared/log/logger.ts';
import { Metrics } from '../shared/ops/metrics.ts';
import { notReady, READY, startOpsServer } from '../shared/ops/ops_server.ts';
import { environment, runService, writeStdout } from '../shared/runtime/process.ts';
import { type RunningAgent, startAgent } from './agent.ts';
import { loadAgentConfig } from './config.ts';

await runService('spike-agent', async () => {
  const config = loadAgentConfig(environment());
  const logger = createLogger({ component: 'agent', level: config.logLevel });
  const ops =
    config.opsAddress === undefined
      ? undefined
      : await startOpsServer({
          ...config.opsAddress,
          metrics: new Metrics({ program: 'agent' }),
          logger,
        });
  const agent = await startAgent(config, logger);
  ops?.setReadiness(() => READY);
  logger.info('Agent started', {
    version: VERSION,
    trustDomain: config.trustDomain.name,
    sockets: agent.sockets.length,
  });
  writeStdout(summary(agent));
  return async () => {
    logger.info('Stopping the agent');
    ops?.setReadiness(() => notReady('stopping'));
    await agent.close();
    await ops?.close();
  };
});

function summary(agent: RunningAgent): string {
  const lines = [
    `SPIKE agent: SPIFFE Workload API for trust domain "${agent.trustDomain.name}"`,
    '',
  ];
  const width = Math.max(...agent.sockets.map((socket) => socket.name.length));
  for (const socket of agent.sockets) {
    lines.push(`  ${socket.name.padEnd(width)}  ${socket.spiffeId.toString()}`);
    lines.push(`  ${' '.repeat(width)}  SPIFFE_ENDPOINT_SOCKET=${socket.address}`);
  }
  lines.push(
    '',
    'Start each workload with the SPIFFE_ENDPOINT_SOCKET line of its identity.',
    'Press Ctrl-C to stop.',
  );
  return lines.join('\n');
}
