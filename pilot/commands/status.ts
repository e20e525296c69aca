/**
 * `spike status` (Nexus ready or sealed, the Keepers, the caller) and
 * `spike whoami` (the caller's SVID only; needs no Nexus).
 */
import type { Command } from 'commander';
import type { StatusResponse } from '../../shared/api/operator.ts';
import { NotReadyError } from '../../shared/errors/errors.ts';
import { printData } from '../output.ts';
import { type CommandContext, formatOf, withFormat } from './_context.ts';

export interface StatusReport {
  readonly nexusUrl: string;
  readonly state: StatusResponse['state'];
  readonly caller: string;
  readonly nexus: { readonly spiffeId: string; readonly svidNotAfter: string };
  readonly keepers: StatusResponse['keepers'];
  readonly refusedHandshakes: number;
  readonly deniedRequests: number;
  readonly rootKey?: StatusResponse['rootKey'];
}

/** Identity of the caller, from the Workload API alone. */
export interface Whoami {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly notAfter: string;
}

export interface StatusDeps {
  readonly whoami: () => Promise<Whoami>;
}

export function registerStatusCommands(
  program: Command,
  context: CommandContext,
  deps: StatusDeps,
): void {
  withFormat(
    program
      .command('status')
      .description('Nexus ready or sealed, its Keepers, and your SPIFFE ID (exit 6 when sealed)'),
  ).action(async (_options: unknown, command: Command) => {
    const client = await context.client();
    const status = await client.status();
    const report: StatusReport = {
      nexusUrl: context.config().nexusUrl.origin,
      state: status.state,
      caller: client.spiffeId().toString(),
      nexus: { spiffeId: status.spiffeId, svidNotAfter: status.svidNotAfter },
      keepers: status.keepers,
      refusedHandshakes: status.refusedHandshakes,
      deniedRequests: status.deniedRequests,
      ...(status.rootKey === undefined ? {} : { rootKey: status.rootKey }),
    };
    await printData(context.output, formatOf(command), report, () => renderStatus(report));
    if (report.state !== 'ready') {
      throw new NotReadyError();
    }
  });

  withFormat(
    program
      .command('whoami')
      .description('Show your SPIFFE ID and SVID expiry, from the Workload API'),
  ).action(async (_options: unknown, command: Command) => {
    const me = await deps.whoami();
    await printData(context.output, formatOf(command), me);
  });
}

export function renderStatus(report: StatusReport): string {
  const lines = [
    `Nexus:   ${report.nexusUrl} (${report.nexus.spiffeId})`,
    `State:   ${report.state}`,
    `Caller:  ${report.caller}`,
    'Keepers:',
  ];
  for (const keeper of report.keepers) {
    const generations =
      keeper.generations.length === 0 ? 'no shard' : `generations ${keeper.generations.join(', ')}`;
    lines.push(
      `  ${keeper.name}  ${keeper.reachable ? 'reachable' : 'UNREACHABLE'}  ${generations}`,
    );
  }
  if (report.keepers.length === 0) {
    lines.push('  (none configured)');
  }
  const rootKey = report.rootKey;
  if (rootKey !== undefined) {
    lines.push(
      `Root key: generation ${rootKey.generation ?? '-'}, ${rootKey.threshold} of ${rootKey.shares} shards`,
    );
    if (rootKey.lastRotation !== null) {
      lines.push(
        `  rotated at ${rootKey.lastRotation.at} (generation ${rootKey.lastRotation.generation}): recovery shards of older generations are stale`,
      );
    }
    if (rootKey.lastRecoveryExport?.stale === true) {
      lines.push(
        `  the last recovery split (generation ${rootKey.lastRecoveryExport.generation}) is STALE: export a new one`,
      );
    }
  }
  return lines.join('\n');
}
