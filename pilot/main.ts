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

async function openSource(config: PilotConfig) {
  const [{ createX509Source }, { createLogger }] = await Promise.all([
    import('../shared/spiffe/x509_source.ts'),
    import('../shared/log/logger.ts'),
  ]);
  return createX509Source({
    address: formatWorkloadApiAddress(config.identity.workloadApiAddress),
    logger: createLogger({ component: 'pilot', level: 'error' }),
    timeoutMs: config.identity.sourceTimeoutMs,
  });
}

async function connect(config: PilotConfig): Promise<PilotClient> {
  const source = await openSource(config);
  try {
    const { createSpikeClient } = await import('../sdk/index.ts');
    const client = await createSpikeClient({
      nexusUrl: config.nexusUrl,
      source,
      trustDomain: config.identity.trustDomain,
      timeoutMs: config.timeoutMs,
    });
    const typed: PilotClient = client;
    // The client does not own a source passed in: close both together.
    return new Proxy(typed, {
      get(target, property) {
        if (property === 'close') {
          return () => {
            target.close();
            source.close();
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  } catch (err) {
    source.close();
    throw err;
  }
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
