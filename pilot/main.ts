/**
 * `spike`, the admin CLI: builds the real dependencies (configuration from
 * the environment, the SDK client over the caller's SVID, the terminal,
 * the console) and exits with runCli's status once stdout and stderr are
 * flushed. The only exit in Pilot.
 *
 * The Workload API client, X.509 parsing and the SDK (connect.ts) are
 * imported only when a command needs them: they are most of the start-up
 * time, and `--version`, `--help` and completion need none of them
 * (docs/performance.md).
 */
import process from 'node:process';
import { exitWhenFlushed } from '../shared/runtime/process.ts';
import { loadPilotConfig } from './config.ts';
import { createConsoleOutput } from './output.ts';
import { runCli } from './program.ts';
import { createTerminal } from './terminal.ts';

const status = await runCli(process.argv.slice(2), {
  config: () => loadPilotConfig(process.env),
  async connect(config, waitMs) {
    const { connectPilot } = await import('./connect.ts');
    return connectPilot(config, waitMs);
  },
  async whoami(config) {
    const { budgetDeadline, openPilotSource } = await import('./connect.ts');
    const source = await openPilotSource(config, budgetDeadline(config));
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
  output: createConsoleOutput(process.stdout),
  terminal: createTerminal({ stdin: process.stdin, stderr: process.stderr }),
  environment: process.env,
});
await exitWhenFlushed(status);
