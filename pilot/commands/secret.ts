/**
 * `spike secret …`: put, patch, get, list, delete, undelete, destroy, purge
 * and metadata. Values can come from a file (`key=@file`) or stdin (`key=-`)
 * so that they need not appear in shell history; only `get` ever prints a
 * value.
 */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import { parseSecretPath, parseSecretPrefix } from '../../shared/api/secret_path.ts';
import type { MetadataResponse, SecretResponse } from '../../shared/api/secrets.ts';
import {
  MAX_KEPT_VERSIONS,
  MAX_VERSION,
  MAX_VERSIONS_PER_REQUEST,
  MAX_WATCH_WAIT_MS,
} from '../../shared/api/secrets.ts';
import { parseDurationMs } from '../../shared/config/env.ts';
import {
  ConflictError,
  InvalidRequestError,
  isBrokerError,
  NotFoundError,
  UnavailableError,
  UsageError,
} from '../../shared/errors/errors.ts';
import { printData } from '../output.ts';
import {
  type CommandContext,
  confirm,
  formatOf,
  optionValue,
  type PilotClient,
  type Terminal,
  withFormat,
} from './_context.ts';

/** The largest value read from a file or stdin. */
export const MAX_VALUE_BYTES = 1024 * 1024;
/** Pages of `secret list` fetched at most (each up to the server's limit). */
const MAX_LIST_PAGES = 1000;
const LIST_PAGE_SIZE = 1000;

const VERSION_REGEXP = /^[1-9][0-9]{0,9}$/;
/** `--versions 1,2` as a sorted list, checked when the command line is parsed. */
const VERSIONS_VALUE = optionValue((value: string) => parseVersions(value));

export interface ValueSources {
  readonly terminal: Pick<Terminal, 'readStdin' | 'isInteractive' | 'promptHidden'>;
  readonly readFile?: (path: string) => Promise<Uint8Array>;
}

/**
 * Parses `key=value` arguments, split at the first `=`. A value `@file`
 * is the file's content, as is; `-` is stdin, without one final newline, or
 * a hidden prompt on a terminal (at most one key may read stdin). Messages name the key, never a value.
 */
export async function parseKeyValues(
  pairs: readonly string[],
  sources: ValueSources,
): Promise<Record<string, string>> {
  const data: Record<string, string> = {};
  let stdinKey: string | undefined;
  for (const [i, pair] of pairs.entries()) {
    const at = pair.indexOf('=');
    if (at <= 0) {
      throw new InvalidRequestError(
        `Argument ${i + 1} of the key=value pairs must look like key=value (key non-empty)`,
      );
    }
    const key = pair.slice(0, at);
    const value = pair.slice(at + 1);
    if (Object.hasOwn(data, key)) {
      throw new InvalidRequestError(`Key "${key}" is given more than once`);
    }
    if (value === '-') {
      if (stdinKey !== undefined) {
        throw new InvalidRequestError(
          `Keys "${stdinKey}" and "${key}" both read stdin; only one value can come from stdin`,
        );
      }
      stdinKey = key;
      // On a terminal, ask without echo rather than wait for end of input.
      data[key] = sources.terminal.isInteractive()
        ? await sources.terminal.promptHidden(`Value of "${key}": `)
        : stripFinalNewline(await sources.terminal.readStdin(MAX_VALUE_BYTES));
    } else if (value.startsWith('@')) {
      data[key] = await readValueFile(key, value.slice(1), sources.readFile ?? readFile);
    } else {
      data[key] = value;
    }
  }
  return data;
}

async function readValueFile(
  key: string,
  path: string,
  read: (path: string) => Promise<Uint8Array>,
): Promise<string> {
  if (path === '') {
    throw new InvalidRequestError(`Key "${key}": "@" must be followed by a file name`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await read(path);
  } catch (err) {
    const reason = (err as { code?: string }).code ?? 'unreadable';
    throw new InvalidRequestError(`Key "${key}": cannot read file "${path}" (${reason})`);
  }
  if (bytes.length > MAX_VALUE_BYTES) {
    throw new InvalidRequestError(
      `Key "${key}": file "${path}" is larger than ${MAX_VALUE_BYTES} bytes`,
    );
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new InvalidRequestError(`Key "${key}": file "${path}" is not UTF-8 text`);
  }
}

function stripFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  if (text.endsWith('\n')) return text.slice(0, -1);
  return text;
}

/** One version number: a positive decimal integer. */
export function parseVersion(value: string, option = '--version'): number {
  if (!VERSION_REGEXP.test(value) || Number(value) > MAX_VERSION) {
    throw new InvalidRequestError(
      `${option} must be a positive integer up to ${MAX_VERSION} (got "${value.slice(0, 32)}")`,
    );
  }
  return Number(value);
}

/** A comma-separated list of versions (`1,2,3`): sorted, without duplicates. */
export function parseVersions(value: string, option = '--versions'): number[] {
  const parts = value.split(',').map((part) => part.trim());
  if (parts.length > MAX_VERSIONS_PER_REQUEST) {
    throw new InvalidRequestError(`${option} lists more than ${MAX_VERSIONS_PER_REQUEST} versions`);
  }
  const versions = parts.map((part) => parseVersion(part, option));
  return [...new Set(versions)].sort((a, b) => a - b);
}

/** `--max-versions N`: a cap on kept versions, bounded as Nexus bounds it. */
export function parseMaxVersions(value: string): number {
  if (!VERSION_REGEXP.test(value) || Number(value) > MAX_KEPT_VERSIONS) {
    throw new InvalidRequestError(
      `--max-versions must be an integer from 1 to ${MAX_KEPT_VERSIONS} (got "${value.slice(0, 32)}")`,
    );
  }
  return Number(value);
}

/** `get --wait-newer-than N`: the version the caller has (0: none yet). */
export function parseNewerThan(value: string): number {
  return value === '0' ? 0 : parseVersion(value, '--wait-newer-than');
}

/** How long `get --wait-newer-than` waits when `--wait` is not given. */
export const DEFAULT_GET_WAIT = '60s';
/** The longest `--wait`: a one-shot command's SVID is fetched once, and lives about an hour. */
export const MAX_GET_WAIT_MS = 3_600_000;

/** `get --wait D`: a duration from 1 ms to an hour. */
export function parseGetWait(value: string): number {
  let ms: number;
  try {
    ms = parseDurationMs(value);
  } catch (err) {
    throw new InvalidRequestError(`--wait "${value.slice(0, 32)}" ${(err as Error).message}`);
  }
  if (ms < 1 || ms > MAX_GET_WAIT_MS) {
    throw new InvalidRequestError(`--wait must be from 1ms to 1h (got "${value.slice(0, 32)}")`);
  }
  return ms;
}

/** `--cas N`: the version the secret must be at (0: must not exist yet). */
export function parseCas(value: string): number {
  return value === '0' ? 0 : parseVersion(value, '--cas');
}

/** `k=v` pairs of custom metadata, given inline only (they are not secret). */
export function parseCustomMetadata(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) {
      throw new InvalidRequestError(`--custom "${pair.slice(0, 64)}" must look like key=value`);
    }
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

export function registerSecretCommands(program: Command, context: CommandContext): void {
  const secret = program.command('secret').description('Read and write secrets');

  withFormat(
    secret
      .command('put')
      .description('Write a new version of a secret (value: text, @file or - for stdin)')
      .argument('<path>', 'secret path, e.g. app/db/creds')
      .argument('<pairs...>', 'key=value, key=@file or key=-')
      .option(
        '--cas <version>',
        'write only if the current version is this one (0: new only)',
        optionValue(parseCas),
      ),
  ).action(async (path: string, pairs: string[], options: { cas?: number }, command: Command) => {
    const secretPath = parseSecretPath(path);
    const cas = options.cas;
    const data = await parseKeyValues(pairs, { terminal: context.terminal });
    const client = await context.client();
    const metadata = await client.putSecret(secretPath, data, cas === undefined ? {} : { cas });
    await printData(
      context.output,
      formatOf(command),
      metadata,
      () => `Wrote "${metadata.path}" version ${metadata.currentVersion}`,
    );
  });

  withFormat(
    secret
      .command('patch')
      .description('Write a new version: the current data with these keys set (check-and-set)')
      .argument('<path>', 'secret path of an existing secret')
      .argument('<pairs...>', 'key=value, key=@file or key=-'),
  ).action((path: string, pairs: string[], _options: unknown, command: Command) =>
    patch(context, path, pairs, command),
  );

  withFormat(
    secret
      .command('get')
      .description('Print a secret version (the current one unless --version)')
      .argument('<path>', 'secret path')
      .option('--version <n>', 'version to read', optionValue(parseVersion))
      .option('--field <key>', 'print only this key')
      .addOption(
        new Option(
          '--wait-newer-than <n>',
          'wait for a version other than N (0: for the secret to exist), then print it',
        )
          .argParser(optionValue(parseNewerThan))
          .conflicts('version'),
      )
      .option(
        '--wait <duration>',
        `how long --wait-newer-than waits in all (default ${DEFAULT_GET_WAIT}, at most 1h)`,
        optionValue(parseGetWait),
      ),
  ).action(
    async (
      path: string,
      options: { version?: number; field?: string; waitNewerThan?: number; wait?: number },
      command: Command,
    ) => {
      const secretPath = parseSecretPath(path);
      const { version, waitNewerThan } = options;
      if (options.wait !== undefined && waitNewerThan === undefined) {
        throw new UsageError(
          "option '--wait <duration>' needs '--wait-newer-than <n>'; see 'spike secret get --help'",
        );
      }
      let secretValue: SecretResponse;
      if (waitNewerThan === undefined) {
        const client = await context.client();
        secretValue = await client.getSecret(secretPath, version === undefined ? {} : { version });
      } else {
        const waitMs = options.wait ?? parseGetWait(DEFAULT_GET_WAIT);
        // The wait comes on top of SPIKE_PILOT_TIMEOUT's budget.
        const client = await context.client({ waitMs });
        secretValue = await waitForOther(client, secretPath, waitNewerThan, waitMs);
      }
      const format = formatOf(command);
      if (options.field !== undefined) {
        const field = options.field;
        if (!Object.hasOwn(secretValue.data, field)) {
          throw new NotFoundError(
            `Secret "${secretValue.path}" version ${secretValue.version} has no key "${field}"`,
          );
        }
        const value = secretValue.data[field] as string;
        await printData(context.output, format, value, () => value);
        return;
      }
      await printData(context.output, format, secretValue, () => renderSecret(secretValue));
    },
  );

  withFormat(
    secret
      .command('list')
      .description('List the secret paths you may list, under an optional prefix')
      .argument('[prefix]', 'e.g. app/ (default: everything)'),
  ).action(async (prefix: string | undefined, _options: unknown, command: Command) => {
    const parsedPrefix = parseSecretPrefix(prefix ?? '');
    const paths = await listAll(await context.client(), parsedPrefix);
    const format = formatOf(command);
    if (format === 'human' && paths.length === 0) {
      context.output.stderr('No secrets found');
      return;
    }
    await printData(context.output, format, { paths }, () => paths.join('\n'));
  });

  // delete and undelete differ only in the call and the verb they report.
  for (const [name, description, verb, call] of [
    [
      'delete',
      'Soft-delete versions of a secret (the current one unless --versions)',
      'Deleted',
      (client: PilotClient, path: string, options: { versions?: number[] }) =>
        client.deleteSecret(path, options),
    ],
    [
      'undelete',
      'Restore soft-deleted versions (the current one unless --versions)',
      'Undeleted',
      (client: PilotClient, path: string, options: { versions?: number[] }) =>
        client.undeleteSecret(path, options),
    ],
  ] as const) {
    withFormat(
      secret
        .command(name)
        .description(description)
        .argument('<path>', 'secret path')
        .option('--versions <list>', 'comma-separated versions, e.g. 1,2', VERSIONS_VALUE),
    ).action(async (path: string, options: { versions?: number[] }, command: Command) => {
      const secretPath = parseSecretPath(path);
      const versions = options.versions;
      const client = await context.client();
      const metadata = await call(client, secretPath, versions === undefined ? {} : { versions });
      const which =
        versions === undefined ? 'the current version' : `version(s) ${versions.join(', ')}`;
      await printData(
        context.output,
        formatOf(command),
        metadata,
        () => `${verb} ${which} of "${metadata.path}"`,
      );
    });
  }

  withFormat(
    secret
      .command('destroy')
      .description('Erase the data of versions for good (asks first unless --yes)')
      .argument('<path>', 'secret path')
      .requiredOption('--versions <list>', 'comma-separated versions, e.g. 1,2', VERSIONS_VALUE)
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(
    async (path: string, options: { versions: number[]; yes?: boolean }, command: Command) => {
      const secretPath = parseSecretPath(path);
      const versions = options.versions;
      await confirm(
        context,
        `Destroy version(s) ${versions.join(', ')} of "${secretPath}" for good?`,
        { yes: options.yes },
      );
      const client = await context.client();
      const metadata = await client.destroySecret(secretPath, versions);
      await printData(
        context.output,
        formatOf(command),
        metadata,
        () => `Destroyed version(s) ${versions.join(', ')} of "${metadata.path}"`,
      );
    },
  );

  withFormat(
    secret
      .command('purge')
      .description(
        'Remove paths whose every version is deleted or destroyed (asks first unless --yes)',
      )
      .argument('<path-or-prefix>', 'one path (app/db/creds), or every path under a prefix (app/)')
      .option('--dry-run', 'only list what would be removed')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action((target: string, options: { dryRun?: boolean; yes?: boolean }, command: Command) =>
    purge(context, target, { dryRun: options.dryRun === true, yes: options.yes }, command),
  );

  const metadata = secret.command('metadata').description("A secret's versions and settings");

  withFormat(
    metadata
      .command('get')
      .description('Show the version history and settings of a secret')
      .argument('<path>', 'secret path'),
  ).action(async (path: string, _options: unknown, command: Command) => {
    const secretPath = parseSecretPath(path);
    const client = await context.client();
    const answer = await client.getMetadata(secretPath);
    await printData(context.output, formatOf(command), answer, () => renderMetadata(answer));
  });

  withFormat(
    metadata
      .command('put')
      .description('Set the version cap or custom metadata of a secret')
      .argument('<path>', 'secret path')
      .option(
        '--max-versions <n>',
        'versions to keep ("default": the server default)',
        optionValue((value) => (value === 'default' ? null : parseMaxVersions(value))),
      )
      .option('--custom <pairs...>', 'custom metadata as key=value (replaces all of it)'),
  ).action(
    async (
      path: string,
      options: { maxVersions?: number | null; custom?: string[] },
      command: Command,
    ) => {
      const secretPath = parseSecretPath(path);
      const body: {
        maxVersions?: number | null;
        customMetadata?: Record<string, string>;
      } = {};
      if (options.maxVersions !== undefined) {
        body.maxVersions = options.maxVersions;
      }
      if (options.custom !== undefined) {
        body.customMetadata = parseCustomMetadata(options.custom);
      }
      if (body.maxVersions === undefined && body.customMetadata === undefined) {
        throw new InvalidRequestError('Give --max-versions, --custom or both');
      }
      const client = await context.client();
      const answer = await client.putMetadata(secretPath, body);
      await printData(
        context.output,
        formatOf(command),
        answer,
        () => `Updated the metadata of "${answer.path}"`,
      );
    },
  );

  withFormat(
    metadata
      .command('delete')
      .description('Remove a path with every version and its metadata (asks first unless --yes)')
      .argument('<path>', 'secret path')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (path: string, options: { yes?: boolean }, command: Command) => {
    const secretPath = parseSecretPath(path);
    await confirm(context, `Remove "${secretPath}" with every version, for good?`, {
      yes: options.yes,
    });
    const client = await context.client();
    await client.deletePath(secretPath);
    await printData(
      context.output,
      formatOf(command),
      { path: secretPath, deleted: true },
      () => `Removed "${secretPath}" with every version`,
    );
  });

  registerTransferCommands(secret, context);
}

/** `secret export` and `secret import`; their code is in `transfer.ts`, loaded when one runs. */
function registerTransferCommands(secret: Command, context: CommandContext): void {
  withFormat(
    secret
      .command('export')
      .description('Export the current secrets of a prefix, and its policies, into a new file')
      .argument('<prefix>', 'the prefix to export ("" for everything)')
      .argument('<file>', 'the file to create (0600, never replaced)')
      .option('--passphrase-file <file>', 'encrypt under the first line of this file')
      .option('--plain', 'write the values in clear text (a warning is printed)'),
  ).action(
    async (
      prefix: string,
      file: string,
      options: { passphraseFile?: string; plain?: boolean },
      command: Command,
    ) => {
      const { exportSecrets } = await import('./transfer.ts');
      const result = await exportSecrets(context, prefix, file, options);
      if (!result.encrypted) {
        context.output.stderr(
          `Warning: ${result.file} holds every exported secret value in clear text; move it only over a private channel and delete it after the import.`,
        );
      }
      await printData(
        context.output,
        formatOf(command),
        result,
        () =>
          `Exported ${result.secrets} secrets and ${result.policies} policies to ${result.file}${result.encrypted ? ' (encrypted)' : ''}${result.skipped.length === 0 ? '' : `; skipped ${result.skipped.length} deleted: ${result.skipped.join(', ')}`}`,
      );
    },
  );

  withFormat(
    secret
      .command('import')
      .description('Import an export file (or a Vault KV v2 export) through the API')
      .argument('<file>', 'the file to import')
      .option('--from <format>', 'spike-ts-export (default) or vault-kv2')
      .option('--passphrase-file <file>', 'the passphrase of an encrypted export, first line')
      .option('--dry-run', 'show what would be written, write nothing')
      .option('--replace-policies', 'replace policies of the same name that have other rules'),
  ).action(
    async (
      file: string,
      options: {
        from?: string;
        passphraseFile?: string;
        dryRun?: boolean;
        replacePolicies?: boolean;
      },
      command: Command,
    ) => {
      const { importSecrets } = await import('./transfer.ts');
      const report = await importSecrets(context, file, options);
      await printData(context.output, formatOf(command), report, () =>
        [
          ...report.policies.map((p) => `policy ${p.action.padEnd(9)} ${p.name}`),
          ...report.secrets.map((s) => `secret ${s.action.padEnd(9)} ${s.path}`),
          report.dryRun ? '(dry run: nothing was written)' : '',
        ]
          .filter((line) => line !== '')
          .join('\n'),
      );
    },
  );
}

/** Every path under `prefix` that the caller may list, page after page. */
async function listAll(client: PilotClient, prefix: string): Promise<string[]> {
  const paths: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const answer = await client.listSecrets({
      prefix,
      limit: LIST_PAGE_SIZE,
      ...(after === undefined ? {} : { after }),
    });
    paths.push(...answer.paths);
    if (answer.next === undefined) break;
    after = answer.next;
  }
  return paths;
}

/** Whether no version of the path can be read any more: each is deleted or destroyed. */
export function isEmptied(metadata: MetadataResponse): boolean {
  return metadata.versions.every((version) => version.destroyed || version.deletedAt !== null);
}

/** A path that purge left alone, and the code of the reason. */
interface Skipped {
  readonly path: string;
  readonly code: string;
}

/** Errors that make purge skip one path of a prefix rather than stop. */
function skipCode(err: unknown): string | undefined {
  return isBrokerError(err) && (err.code === 'ERR_ACCESS_DENIED' || err.code === 'ERR_NOT_FOUND')
    ? err.code
    : undefined;
}

/**
 * `secret purge`: a path ending in `/` is a prefix (every path under it the
 * caller may list), anything else is that one path. Each candidate is removed
 * only if Nexus still finds every version deleted or destroyed when it
 * removes it, so a version written since the first look keeps its path; a path the caller may not read or remove is skipped (in a
 * prefix) or an error (a single path).
 */
async function purge(
  context: CommandContext,
  target: string,
  options: { readonly dryRun: boolean; readonly yes: boolean | undefined },
  command: Command,
): Promise<void> {
  const isPrefix = target.endsWith('/');
  const scope = isPrefix ? parseSecretPrefix(target) : parseSecretPath(target);
  const client = await context.client();
  const skipped: Skipped[] = [];
  const candidates: string[] = [];
  for (const path of isPrefix ? await listAll(client, scope) : [scope]) {
    try {
      if (isEmptied(await client.getMetadata(path))) candidates.push(path);
    } catch (err) {
      const code = isPrefix ? skipCode(err) : undefined;
      if (code === undefined) throw err;
      skipped.push({ path, code });
    }
  }
  const format = formatOf(command);
  const where = isPrefix ? `under "${scope}"` : `at "${scope}"`;
  if (options.dryRun) {
    await printData(context.output, format, { dryRun: true, paths: candidates, skipped }, () =>
      candidates.map((path) => `Would purge: ${path}`).join('\n'),
    );
    context.output.stderr(
      `Dry run: ${candidates.length} path(s) ${where} would be purged${skippedNote(skipped)}`,
    );
    return;
  }
  if (candidates.length === 0) {
    await printData(context.output, format, { paths: [], skipped }, () => '');
    context.output.stderr(
      `Nothing to purge ${where}: no path whose every version is deleted or destroyed${skippedNote(skipped)}`,
    );
    return;
  }
  await confirm(
    context,
    `Remove ${candidates.length} path(s) ${where} whose every version is deleted or destroyed, for good?`,
    { yes: options.yes },
  );
  const purged: string[] = [];
  for (const path of candidates) {
    try {
      // Nexus removes the path only if every version is still deleted or
      // destroyed, in the same transaction: a version written or undeleted
      // since the first look keeps its path (409, counted as skipped).
      await client.deletePath(path, { onlyDeleted: true });
      purged.push(path);
    } catch (err) {
      const isWritten = isBrokerError(err) && err.code === 'ERR_CONFLICT';
      const code = isWritten ? 'ERR_CONFLICT' : isPrefix ? skipCode(err) : undefined;
      if (code === undefined) throw err;
      skipped.push({ path, code });
    }
  }
  await printData(context.output, format, { paths: purged, skipped }, () =>
    purged.map((path) => `Purged: ${path}`).join('\n'),
  );
  context.output.stderr(`Purged ${purged.length} path(s) ${where}${skippedNote(skipped)}`);
}

function skippedNote(skipped: readonly Skipped[]): string {
  if (skipped.length === 0) return '';
  const written = skipped.filter((entry) => entry.code === 'ERR_CONFLICT').length;
  const parts = [
    skipped.length - written > 0
      ? `${skipped.length - written} you may not read or remove (or gone meanwhile)`
      : '',
    written > 0 ? `${written} written to meanwhile` : '',
  ].filter((part) => part !== '');
  return `; skipped ${parts.join(' and ')}`;
}

/**
 * `secret patch`: the current data with the given keys set, written as the
 * next version only if no one wrote since it was read (check-and-set).
 */
async function patch(
  context: CommandContext,
  path: string,
  pairs: readonly string[],
  command: Command,
): Promise<void> {
  const secretPath = parseSecretPath(path);
  const changes = await parseKeyValues(pairs, { terminal: context.terminal });
  const client = await context.client();
  let current: SecretResponse;
  try {
    current = await client.getSecret(secretPath);
  } catch (err) {
    if (isBrokerError(err) && err.code === 'ERR_NOT_FOUND') {
      throw new NotFoundError(
        `Secret "${secretPath}" has no current version to patch (${err.message}); use "spike secret put" to create it`,
      );
    }
    throw err;
  }
  let metadata: MetadataResponse;
  try {
    metadata = await client.putSecret(
      secretPath,
      { ...current.data, ...changes },
      { cas: current.version },
    );
  } catch (err) {
    if (isBrokerError(err) && err.code === 'ERR_CONFLICT') {
      throw new ConflictError(
        `Secret "${secretPath}" changed while it was patched (read at version ${current.version}): nothing was written; run the patch again`,
      );
    }
    throw err;
  }
  await printData(
    context.output,
    formatOf(command),
    metadata,
    () =>
      `Patched "${metadata.path}": version ${metadata.currentVersion} sets ${Object.keys(changes).sort().join(', ')} (from version ${current.version})`,
  );
}

/** `key: value` lines, keys sorted, after a header naming path and version. */
export function renderSecret(secret: SecretResponse): string {
  const keys = Object.keys(secret.data).sort();
  const lines = [`# ${secret.path} version ${secret.version} (${secret.createdAt})`];
  for (const key of keys) {
    lines.push(`${key}: ${secret.data[key]}`);
  }
  return lines.join('\n');
}

export function renderMetadata(metadata: MetadataResponse): string {
  const lines = [
    `Path:            ${metadata.path}`,
    `Current version: ${metadata.currentVersion}`,
    `Oldest version:  ${metadata.oldestVersion}`,
    `Max versions:    ${metadata.maxVersions}${metadata.maxVersionsOverride === null ? ' (default)' : ''}`,
    `Created:         ${metadata.createdAt}`,
    `Updated:         ${metadata.updatedAt}`,
  ];
  const custom = Object.entries(metadata.customMetadata);
  if (custom.length > 0) {
    lines.push('Custom metadata:');
    for (const [key, value] of custom) lines.push(`  ${key}: ${value}`);
  }
  lines.push('Versions:');
  for (const version of metadata.versions) {
    const state = version.destroyed
      ? 'destroyed'
      : version.deletedAt !== null
        ? `deleted ${version.deletedAt}`
        : 'live';
    lines.push(`  ${version.version}  created ${version.createdAt}  ${state}`);
  }
  return lines.join('\n');
}

/**
 * The first version of `path` other than `newerThan` (what a read of it
 * answers once it differs: a newer version, or not found once it is gone),
 * waiting up to `waitMs` in long-polls of at most a minute each.
 */
async function waitForOther(
  client: PilotClient,
  path: string,
  newerThan: number,
  waitMs: number,
): Promise<SecretResponse> {
  const until = Date.now() + waitMs;
  for (let left = waitMs; left > 0; left = until - Date.now()) {
    const answer = await client.getSecretNewerThan(path, newerThan, {
      waitMs: Math.min(Math.ceil(left), MAX_WATCH_WAIT_MS),
    });
    if (answer !== undefined) return answer;
  }
  throw new UnavailableError(
    `No version of "${path}" other than ${newerThan} came within ${waitMs} ms (--wait)`,
  );
}
