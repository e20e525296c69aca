/**
 * `spike`, the admin CLI. argv → command → exit status; the only place in
 * Pilot that exits. Secret, policy and operator commands arrive with Nexus.
 */
import { Command, Option } from 'commander';
import { VERSION } from '../shared/api/version.ts';
import { createLogger } from '../shared/log/logger.ts';
import { environment, exit } from '../shared/runtime/process.ts';
import { formatWorkloadApiAddress } from '../shared/spiffe/workload_address.ts';
import { createX509Source } from '../shared/spiffe/x509_source.ts';
import { loadPilotConfig } from './config.ts';
import { type OutputFormat, printData, reportFailure } from './output.ts';

const program = new Command('spike')
  .description('Admin CLI of the spike-ts secrets broker')
  .version(VERSION, '-v, --version')
  .addOption(
    new Option('--format <format>', 'output format').choices(['human', 'json']).default('human'),
  )
  .showHelpAfterError();

program
  .command('whoami')
  .description("Show this caller's SPIFFE ID and SVID expiry, from the Workload API")
  .action(async () => {
    const config = loadPilotConfig(environment());
    const logger = createLogger({ component: 'pilot', level: 'warn' });
    const source = await createX509Source({
      address: formatWorkloadApiAddress(config.identity.workloadApiAddress),
      logger,
      timeoutMs: config.identity.sourceTimeoutMs,
    });
    try {
      const svid = source.getX509Svid();
      printData(
        {
          spiffeId: svid.id.toString(),
          trustDomain: svid.id.trustDomain.name,
          notAfter: svid.notAfter.toISOString(),
        },
        program.opts<{ format: OutputFormat }>().format,
      );
    } finally {
      source.close();
    }
  });

try {
  await program.parseAsync();
  exit(0);
} catch (err) {
  exit(reportFailure(err));
}
