/**
 * `spike`, the admin CLI: builds the real dependencies (configuration from
 * the environment, the SDK client over the caller's SVID, the terminal,
 * the console) and exits with runCli's status. The only process.exit in Pilot.
 *
 * The Workload API client, X.509 parsing and the SDK are imported only when a
 * command needs Nexus: they are most of the start-up time, and `--version`,
 * `--help` and completion need none of them (docs/performance.md).
 */
import process from 'node:process';
import { exit } from '../shared/runtime/process.ts';
import { formatWorkloadApiAddress } from '../shared/spiffe/workload_address.ts';
import type { PilotClient } from './commands/_context.ts';
import { loadPilotConfig, type PilotConfig } from './config.ts';
import { createConsoleOutput } from './output.ts';
import { runCli } from './program.ts';
import { createTerminal } from './terminal.ts';

/** Only errors reach the terminal: Pilot reports failures itself. */
async function createPilotLogger() {
  const { createLogger } = await import('../shared/log/logger.ts');
  return createLogger({ component: 'pilot', level: 'error' });
}

async function openSource(config: PilotConfig) {
  const [{ createX509Source }, logger] = await Promise.all([
    import('../shared/spiffe/x509_source.ts'),
    createPilotLogger(),
  ]);
  return createX509Source({
    address: formatWorkloadApiAddress(config.identity.workloadApiAddress),
    logger,
    timeoutMs: config.identity.sourceTimeoutMs,
  });
}

/** The client owns the source it opens from the Workload API: its close() closes both. */
async function connect(config: PilotConfig): Promise<PilotClient> {
  const [{ createSpikeClient }, logger] = await Promise.all([
    import('../sdk/index.ts'),
    createPilotLogger(),
  ]);
  return createSpikeClient({
    nexusUrl: config.nexusUrl,
    workloadApiAddress: formatWorkloadApiAddress(config.identity.workloadApiAddress),
    workloadApiTimeoutMs: config.identity.sourceTimeoutMs,
    trustDomain: config.identity.trustDomain,
    timeoutMs: config.timeoutMs,
    logger,
  });
}

const status = await runCli(process.argv.slice(2), {
  config: () => loadPilotConfig(process.env),
  connect,
  async whoami(config) {
    const source = await openSource(config);
    try {
      const svid = source.getX509Svid();
      return {
        spiffeId: svid.id.toString(),
        trustDomain: svid.id.trustDomain.name,
        notAfter: svid.notAfter.toISOString(),
      };
    } finally {
      source.close();
    }
  },
  output: createConsoleOutput(),
  terminal: createTerminal({ stdin: process.stdin, stderr: process.stderr }),
});
exit(status);
