/**
 * `spike run` and `spike agent`: secrets delivered to programs that never
 * link the SDK, through their environment or through files (see
 * docs/delivery.md). Only the command lines are here; their code, with the
 * watched SVID source it may need, is imported when one of them runs, so
 * that other commands start no slower (docs/decisions/0022).
 */
import type { Command } from 'commander';
import { parseDurationMs } from '../../shared/config/env.ts';
import { InvalidRequestError } from '../../shared/errors/errors.ts';
import { type CommandContext, optionValue } from './_context.ts';

const DEFAULT_GRACE = '10s';

function collect(value: string, previous: readonly string[]): string[] {
  return [...previous, value];
}

const DURATION_VALUE = optionValue((value: string) => {
  try {
    return parseDurationMs(value);
  } catch (err) {
    throw new InvalidRequestError(`"${value}" ${(err as Error).message}`);
  }
});

export function registerDeliveryCommands(program: Command, context: CommandContext): void {
  program
    .command('run')
    .description("Run a command with secrets in its environment, read with the caller's SVID")
    .usage('[--secret PATH]... [--env NAME=PATH#KEY]... [--watch] -- CMD [ARGS...]')
    .option('--secret <path>', 'every key of this secret as a variable (repeatable)', collect, [])
    .option('--env <NAME=PATH#KEY>', 'one variable from one key (repeatable)', collect, [])
    .option('--watch', 'restart the command when a secret it uses gets a new version')
    .option(
      '--grace <duration>',
      `with --watch: how long a restarted command may take to stop before SIGKILL (default ${DEFAULT_GRACE})`,
      DURATION_VALUE,
    )
    .argument('<command...>', 'the command and its arguments (after --)')
    .passThroughOptions()
    .action(
      async (
        argv: string[],
        options: { secret: string[]; env: string[]; watch?: boolean; grace?: number },
      ) => {
        const { defaultRunDeps, runWithSecrets } = await import('../deliver/run.ts');
        const status = await runWithSecrets(
          context,
          argv,
          {
            secret: options.secret,
            env: options.env,
            watch: options.watch === true,
            graceMs: options.grace ?? parseDurationMs(DEFAULT_GRACE),
          },
          defaultRunDeps(),
        );
        context.exitWith(status);
      },
    );

  program
    .command('agent')
    .description(
      'Render secrets into files from templates and keep them current (not the SPIFFE agent, spike-agent)',
    )
    .requiredOption('--config <file>', 'the YAML file of templates')
    .option('--once', 'render every template once and exit (for init containers)')
    .action(async (options: { config: string; once?: boolean }) => {
      const { defaultAgentDeps, runTemplateAgent } = await import('../deliver/agent.ts');
      const status = await runTemplateAgent(
        context,
        { configFile: options.config, once: options.once === true },
        defaultAgentDeps(),
      );
      context.exitWith(status);
    });
}
