/**
 * `spike operator keyring` and `spike operator rotate-data-key`: the data
 * key's terms and sweep, and its rotation (docs/keys.md). Counts and times
 * only; no key material reaches Pilot.
 */
import type { Command } from 'commander';
import type { KeyringStatusResponse, KeyringTermView } from '../../shared/api/keyring.ts';
import { printData } from '../output.ts';
import { type CommandContext, formatOf, withFormat } from './_context.ts';

export function registerKeyringCommands(operator: Command, context: CommandContext): void {
  withFormat(
    operator
      .command('keyring')
      .description("The data key's terms, the rows sealed under each, and the rewrap sweep"),
  ).action(async (_options: unknown, command: Command) => {
    const client = await context.client();
    const status = await client.keyringStatus();
    await printData(context.output, formatOf(command), status, () => describeKeyring(status));
  });

  withFormat(
    operator
      .command('rotate-data-key')
      .description(
        'Start a new keyring term for new writes; older rows are rewrapped in the background (superuser)',
      ),
  ).action(async (_options: unknown, command: Command) => {
    const client = await context.client();
    const { term } = await client.rotateDataKey();
    await printData(context.output, formatOf(command), { term }, () =>
      [
        `Rotated the data key: term ${term.term}, sealing new writes from ${term.activeFrom ?? 'now'}.`,
        'Older rows are rewrapped in the background: "spike operator keyring" shows the sweep.',
      ].join('\n'),
    );
  });
}

/** The human form of the keyring status. */
export function describeKeyring(status: KeyringStatusResponse): string {
  const { sweep } = status;
  const lines = [
    `Active term: ${status.activeTerm}`,
    'Terms:',
    ...status.terms.map(
      (term) => `  ${term.term}  ${describeTerm(term)}  rows: ${status.rowsByTerm[term.term] ?? 0}`,
    ),
    sweep.remaining === 0
      ? `Sweep: ${sweep.state}, nothing left under older terms`
      : `Sweep: ${sweep.state}, ${sweep.remaining} rows left under older terms`,
  ];
  if (sweep.term !== null) {
    lines.push(
      `  term ${sweep.term}: ${sweep.rewrapped} rewrapped, ${sweep.failed} failed to open` +
        (sweep.finishedAt === null ? '' : `, finished ${sweep.finishedAt}`),
    );
  }
  if (sweep.failed > 0) {
    lines.push('  Rows that failed to open were altered or damaged: see the integrity alarm.');
  }
  return lines.join('\n');
}

function describeTerm(term: KeyringTermView): string {
  if (term.createdAt === null) return 'created with the keyring';
  return `created ${term.createdAt}, active from ${term.activeFrom ?? term.createdAt}`;
}
