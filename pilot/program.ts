/**
 * The `spike` command tree and one run of it: argv → command → exit status.
 * pilot/main.ts supplies the real client, terminal and output; tests supply
 * fakes and check what a user would see and the exit status.
 */
import { Command, CommanderError, type HelpContext } from 'commander';
import { VERSION } from '../shared/api/version.ts';
import type { Env } from '../shared/config/env.ts';
import { UsageError } from '../shared/errors/errors.ts';
import {
  type CommandContext,
  formatOption,
  type PilotClient,
  type Terminal,
} from './commands/_context.ts';
import { registerAuditCommands } from './commands/audit.ts';
import { registerCipherCommands } from './commands/cipher.ts';
import { registerCompletionCommand } from './commands/completion.ts';
import { registerDeliveryCommands } from './commands/deliver.ts';
import { registerOperatorCommands } from './commands/operator.ts';
import { registerPolicyCommands } from './commands/policy.ts';
import { registerSecretCommands } from './commands/secret.ts';
import { registerStatusCommands, type Whoami } from './commands/status.ts';
import type { PilotConfig } from './config.ts';
import { type Output, reportFailure } from './output.ts';

export interface CliDeps {
  /** Loads the configuration (throws ConfigError); called only by commands that need it. */
  readonly config: () => PilotConfig;
  /** Connects to Nexus with the caller's SVID, the run's time budget longer by `waitMs`. */
  readonly connect: (config: PilotConfig, waitMs: number) => Promise<PilotClient>;
  /** The caller's identity from the Workload API alone. */
  readonly whoami: (config: PilotConfig) => Promise<Whoami>;
  readonly output: Output;
  readonly terminal: Terminal;
  /** The environment spike runs in, which `spike run` passes on to its command. */
  readonly environment: Env;
}

/** Commander's codes for "printed what was asked, nothing failed". */
const SUCCESS_CODES = new Set(['commander.helpDisplayed', 'commander.help', 'commander.version']);

/**
 * A command whose usage errors are UsageErrors rather than commander's own
 * printout (a message, then the whole help), so that they are reported like
 * every other failure: one line with a code, naming the `--help` to read.
 * Commander sends every such error through `error()`, and a group called
 * without its command through `help({ error: true })`.
 */
class SpikeCommand extends Command {
  override createCommand(name?: string): Command {
    return new SpikeCommand(name);
  }

  override error(message: string): never {
    // Commander may add a line ("(Did you mean secret?)"): one line is the rule.
    const what = message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
    throw new UsageError(`${what}; see '${this.#fullName()} --help'`);
  }

  override help(context?: HelpContext | ((text: string) => string)): never {
    if (typeof context === 'object' && context.error) {
      const names = this.commands.map((command) => command.name());
      throw new UsageError(
        `missing command: one of ${names.join(', ')}; see '${this.#fullName()} --help'`,
      );
    }
    return super.help(context as HelpContext);
  }

  #fullName(): string {
    const names: string[] = [];
    for (let command: Command | null = this; command !== null; command = command.parent) {
      names.unshift(command.name());
    }
    return names.join(' ');
  }
}

export function createProgram(context: CommandContext, deps: Pick<CliDeps, 'whoami'>): Command {
  const program = new SpikeCommand('spike')
    .description('Admin CLI of the spike-ts secrets broker')
    .version(VERSION, '-v, --version', 'print the version')
    .addOption(formatOption())
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (text) => context.output.stdout(text),
      writeErr: (text) => context.output.stderr(text),
    });
  registerSecretCommands(program, context);
  registerPolicyCommands(program, context);
  registerCipherCommands(program, context);
  registerOperatorCommands(program, context);
  registerDeliveryCommands(program, context);
  registerAuditCommands(program, context);
  registerStatusCommands(program, context, {
    whoami: () => deps.whoami(context.config()),
  });
  program
    .command('version')
    .description('Print the version, as spike --version does')
    .action(() => {
      context.output.stdout(VERSION);
    });
  registerCompletionCommand(program, context);
  return program;
}

/**
 * Runs `spike` once with `args` (without the runtime and script) and returns
 * the exit status. Every failure prints one line to stderr and is non-zero.
 */
export async function runCli(args: readonly string[], deps: CliDeps): Promise<number> {
  let config: PilotConfig | undefined;
  let client: PilotClient | undefined;
  let connecting: Promise<PilotClient> | undefined;
  let status = 0;
  const context: CommandContext = {
    config: () => {
      config ??= deps.config();
      return config;
    },
    client: (options) => {
      connecting ??= deps.connect(context.config(), options?.waitMs ?? 0).then((made) => {
        client = made;
        return made;
      });
      return connecting;
    },
    output: deps.output,
    terminal: deps.terminal,
    environment: deps.environment,
    exitWith: (code) => {
      status = code;
    },
  };
  const program = createProgram(context, deps);
  try {
    await program.parseAsync([...args], { from: 'user' });
    return status;
  } catch (err) {
    if (err instanceof CommanderError && SUCCESS_CODES.has(err.code)) {
      // The help or the version, printed as asked.
      return 0;
    }
    return reportFailure(deps.output, err, { callerId: callerIdOf(client) });
  } finally {
    await client?.close();
  }
}

function callerIdOf(client: PilotClient | undefined): string | undefined {
  try {
    return client?.spiffeId().toString();
  } catch {
    return undefined;
  }
}
