/**
 * `spike operator …`: the break-glass pair. `recover` fetches a full set of
 * recovery shards and writes one owner-only file per shard; `restore` feeds
 * shards back to a sealed Nexus, from a terminal without echo or from stdin,
 * and shows progress until Nexus is unsealed. `rotate-root-key` (superuser)
 * replaces the root key, optionally with a new split shape. `snapshot save|verify|restore`
 * copy the database out and back (superuser); their code is in
 * `snapshot.ts`, loaded only when one of them runs.
 */
import { chmod, lstat, mkdir, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type {
  RecoverResponse,
  RestoreResponse,
  RotateRootKeyRequest,
} from '../../shared/api/operator.ts';
import { MAX_SHARD_TEXT_LENGTH, parseRotateRootKeyRequest } from '../../shared/api/operator.ts';
import { parseShardText } from '../../shared/api/shard_text.ts';
import { looseModeProblem, OWNER_ONLY_DIRECTORY } from '../../shared/config/file_modes.ts';
import { InvalidRequestError, NotReadyError } from '../../shared/errors/errors.ts';
import { printData } from '../output.ts';
import { type CommandContext, formatOf, optionValue, withFormat } from './_context.ts';
import { registerKeyringCommands } from './keyring.ts';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** Shards read from stdin at most (with generous room for blank lines). */
const MAX_STDIN_BYTES = 64 * 1024;

export interface RecoverResult {
  readonly dir: string;
  readonly generation: number;
  readonly threshold: number;
  readonly files: readonly string[];
}

/**
 * Writes one file per shard into `dir` (created 0700 when missing; refused
 * when it exists and others may read it). Files are 0600, named after the
 * generation and the shard's index, and hold the shard text and a newline.
 */
export async function writeRecoveryFiles(
  dir: string,
  recovered: RecoverResponse,
): Promise<RecoverResult> {
  const target = isAbsolute(dir) ? dir : resolve(dir);
  await mkdir(target, { recursive: true, mode: DIR_MODE });
  const info = await lstat(target);
  if (!info.isDirectory()) {
    throw new InvalidRequestError(`Recovery directory "${target}" is not a directory`);
  }
  const problem = looseModeProblem('Recovery directory', target, info.mode, OWNER_ONLY_DIRECTORY);
  if (problem !== undefined) {
    throw new InvalidRequestError(problem);
  }
  const files: string[] = [];
  for (const text of recovered.shards) {
    const shard = parseShardText(text);
    const file = join(target, `spike-recovery-g${shard.generation}-${shard.index}.txt`);
    shard.value.fill(0);
    await writeFile(file, `${text}\n`, { mode: FILE_MODE });
    // The mode above applies only when the file is created.
    await chmod(file, FILE_MODE);
    files.push(file);
  }
  return { dir: target, generation: recovered.generation, threshold: recovered.threshold, files };
}

/** A count option (`--shares`, `--threshold`): a decimal integer, checked by the wire parser. */
export function parseCount(value: string, option: string): number {
  if (!/^[0-9]{1,3}$/.test(value)) {
    throw new InvalidRequestError(
      `${option} must be a positive integer (got "${value.slice(0, 32)}")`,
    );
  }
  return Number(value);
}

/** The rotation request from Pilot's options, checked as Nexus checks it. */
export function rotateRequestOf(options: {
  readonly shares?: number;
  readonly threshold?: number;
}): RotateRootKeyRequest {
  return parseRotateRootKeyRequest({
    ...(options.shares === undefined ? {} : { shares: options.shares }),
    ...(options.threshold === undefined ? {} : { threshold: options.threshold }),
  });
}

/** Non-empty, trimmed lines of stdin, each one shard's text. */
export function shardLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

export function registerOperatorCommands(program: Command, context: CommandContext): void {
  const operator = program
    .command('operator')
    .description(
      'Break-glass recovery of the root key (recover and restore roles), snapshots of the database, and data-key rotation',
    );
  registerSnapshotCommands(operator, context);
  registerKeyringCommands(operator, context);

  withFormat(
    operator
      .command('rotate-root-key')
      .description(
        'Replace the root key with a new one split onto the Keepers, optionally in a new shape (superuser)',
      )
      .option(
        '--shares <n>',
        'Keepers given a shard (default: the current split)',
        optionValue((value: string) => parseCount(value, '--shares')),
      )
      .option(
        '--threshold <t>',
        'shards that rebuild the key (default: the current split)',
        optionValue((value: string) => parseCount(value, '--threshold')),
      ),
  ).action(async (options: { shares?: number; threshold?: number }, command: Command) => {
    const request = rotateRequestOf(options);
    const client = await context.client();
    const rotated = await client.rotateRootKey(request);
    await printData(context.output, formatOf(command), rotated, () =>
      [
        `Rotated the root key: generation ${rotated.generation}, ${rotated.threshold} of ${rotated.shares} shards`,
        `Keepers holding it: ${rotated.keepers.join(', ')}`,
      ].join('\n'),
    );
    context.output.stderr(
      'Recovery shards exported before now rebuild the old key only: export new ones ("spike operator recover").',
    );
  });

  withFormat(
    operator
      .command('recover')
      .description('Save recovery shards, one owner-only file per shard')
      .option('--dir <dir>', 'where to write them (default: SPIKE_PILOT_RECOVERY_DIR)'),
  ).action(async (options: { dir?: string }, command: Command) => {
    const dir = options.dir ?? context.config().recoveryDir;
    const client = await context.client();
    const recovered = await client.recover();
    const result = await writeRecoveryFiles(dir, recovered);
    await printData(context.output, formatOf(command), result, () =>
      [
        `Wrote ${result.files.length} recovery shards of generation ${result.generation} to ${result.dir}:`,
        ...result.files.map((file) => `  ${file}`),
        `Any ${result.threshold} of them restore Nexus ("spike operator restore").`,
      ].join('\n'),
    );
    context.output.stderr(
      'Move these files to offline storage (encrypted, split among operators) and delete them here.',
    );
  });

  withFormat(
    operator
      .command('restore')
      .description('Submit recovery shards to a sealed Nexus (terminal without echo, or stdin)'),
  ).action(async (_options: unknown, command: Command) => {
    const interactive = context.terminal.isInteractive();
    const lines = interactive
      ? undefined
      : shardLines(await context.terminal.readStdin(MAX_STDIN_BYTES));
    if (lines !== undefined && lines.length === 0) {
      throw new InvalidRequestError('No shard on stdin: give one shard text per line');
    }
    const client = await context.client();
    let last: RestoreResponse | undefined;
    for (let i = 0; lines === undefined || i < lines.length; i++) {
      const text =
        lines === undefined
          ? await context.terminal.promptHidden(
              last === undefined
                ? 'Recovery shard: '
                : `Recovery shard (${last.remaining} remaining): `,
            )
          : (lines[i] as string);
      if (text.trim() === '') {
        continue;
      }
      if (text.length > MAX_SHARD_TEXT_LENGTH) {
        throw new InvalidRequestError(`Shard ${i + 1} is too long to be a shard`);
      }
      // Checked here too, so a typo is reported before anything is sent.
      parseShardText(text).value.fill(0);
      last = await client.restore(text.trim());
      context.output.stderr(
        `Shard accepted: ${last.collected} of ${last.threshold} collected, ${last.remaining} remaining`,
      );
      if (last.restored) {
        break;
      }
    }
    if (last === undefined || !last.restored) {
      throw new NotReadyError(
        `Nexus is still sealed: ${last?.collected ?? 0} shards collected, ${last?.remaining ?? 'more'} remaining`,
      );
    }
    const done = last;
    await printData(context.output, formatOf(command), done, () => 'Nexus is restored and ready');
  });
}

function registerSnapshotCommands(operator: Command, context: CommandContext): void {
  const snapshot = operator
    .command('snapshot')
    .description("Save, check and restore snapshots of Nexus's database (superuser)");
  const describeFile = (info: { file: string; createdAt: string; bytes: number; sha256: string }) =>
    `${info.file}: a snapshot of ${info.createdAt}, ${info.bytes} bytes, sha256 ${info.sha256}`;

  withFormat(
    snapshot
      .command('save')
      .description('Save a snapshot of the database into a new file (0600)')
      .argument('<file>', 'the file to create (never replaced)'),
  ).action(async (file: string, _options: unknown, command: Command) => {
    const { saveSnapshot } = await import('./snapshot.ts');
    const saved = await saveSnapshot(context, file);
    await printData(context.output, formatOf(command), saved, () => `Saved ${describeFile(saved)}`);
    context.output.stderr(
      'Its secrets stay sealed: keep it with a recovery split ("spike operator recover"), stored apart.',
    );
  });

  withFormat(
    snapshot
      .command('verify')
      .description('Check a snapshot file (length and checksum) without sending it')
      .argument('<file>', 'the snapshot file'),
  ).action(async (file: string, _options: unknown, command: Command) => {
    const { verifySnapshot } = await import('./snapshot.ts');
    const info = await verifySnapshot(file);
    await printData(context.output, formatOf(command), info, () => `OK ${describeFile(info)}`);
  });

  withFormat(
    snapshot
      .command('restore')
      .description('Replace every secret and policy of Nexus with a snapshot')
      .argument('<file>', 'the snapshot file')
      .option('--force', 'restore a snapshot sealed under another root key (Nexus then seals)')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (file: string, options: { force?: boolean; yes?: boolean }, command: Command) => {
    const { restoreSnapshot } = await import('./snapshot.ts');
    const restored = await restoreSnapshot(context, file, options);
    await printData(context.output, formatOf(command), restored, () =>
      restored.state === 'ready'
        ? `Restored the snapshot of ${restored.createdAt}; Nexus is ready`
        : `Restored the snapshot of ${restored.createdAt}; Nexus is sealed`,
    );
    if (restored.state === 'sealed') {
      context.output.stderr(
        'Nexus waits for the snapshot\'s root key: from Keepers that hold it, or its recovery shards through "spike operator restore" (restore role).',
      );
    }
  });
}
