/**
 * `spike secret …`: put, get, list, delete, undelete, destroy and metadata.
 * Values can come from a file (`key=@file`) or stdin (`key=-`) so that they
 * need not appear in shell history; only `get` ever prints a value.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseSecretPath, parseSecretPrefix } from '../../shared/api/secret_path.ts';
import type { MetadataResponse, SecretResponse } from '../../shared/api/secrets.ts';
import {
  MAX_KEPT_VERSIONS,
  MAX_VERSION,
  MAX_VERSIONS_PER_REQUEST,
} from '../../shared/api/secrets.ts';
import { InvalidRequestError, NotFoundError } from '../../shared/errors/errors.ts';
import { printData } from '../output.ts';
import {
  type CommandContext,
  confirm,
  formatOf,
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
      .option('--cas <version>', 'write only if the current version is this one (0: new only)'),
  ).action(async (path: string, pairs: string[], options: { cas?: string }, command: Command) => {
    const secretPath = parseSecretPath(path);
    const cas = options.cas === undefined ? undefined : parseCas(options.cas);
    const data = await parseKeyValues(pairs, { terminal: context.terminal });
    const client = await context.client();
    const metadata = await client.putSecret(secretPath, data, cas === undefined ? {} : { cas });
    printData(
      context.output,
      formatOf(command),
      metadata,
      () => `Wrote "${metadata.path}" version ${metadata.currentVersion}`,
    );
  });

  withFormat(
    secret
      .command('get')
      .description('Print a secret version (the current one unless --version)')
      .argument('<path>', 'secret path')
      .option('--version <n>', 'version to read')
      .option('--field <key>', 'print only this key'),
  ).action(
    async (path: string, options: { version?: string; field?: string }, command: Command) => {
      const secretPath = parseSecretPath(path);
      const version = options.version === undefined ? undefined : parseVersion(options.version);
      const client = await context.client();
      const secretValue = await client.getSecret(
        secretPath,
        version === undefined ? {} : { version },
      );
      const format = formatOf(command);
      if (options.field !== undefined) {
        const field = options.field;
        if (!Object.hasOwn(secretValue.data, field)) {
          throw new NotFoundError(
            `Secret "${secretValue.path}" version ${secretValue.version} has no key "${field}"`,
          );
        }
        const value = secretValue.data[field] as string;
        printData(context.output, format, value, () => value);
        return;
      }
      printData(context.output, format, secretValue, () => renderSecret(secretValue));
    },
  );

  withFormat(
    secret
      .command('list')
      .description('List the secret paths you may list, under an optional prefix')
      .argument('[prefix]', 'e.g. app/ (default: everything)'),
  ).action(async (prefix: string | undefined, _options: unknown, command: Command) => {
    const parsedPrefix = parseSecretPrefix(prefix ?? '');
    const client = await context.client();
    const paths: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const answer = await client.listSecrets({
        prefix: parsedPrefix,
        limit: LIST_PAGE_SIZE,
        ...(after === undefined ? {} : { after }),
      });
      paths.push(...answer.paths);
      if (answer.next === undefined) break;
      after = answer.next;
    }
    const format = formatOf(command);
    if (format === 'human' && paths.length === 0) {
      context.output.stderr('No secrets found');
      return;
    }
    printData(context.output, format, { paths }, () => paths.join('\n'));
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
        .option('--versions <list>', 'comma-separated versions, e.g. 1,2'),
    ).action(async (path: string, options: { versions?: string }, command: Command) => {
      const secretPath = parseSecretPath(path);
      const versions = options.versions === undefined ? undefined : parseVersions(options.versions);
      const client = await context.client();
      const metadata = await call(client, secretPath, versions === undefined ? {} : { versions });
      const which =
        versions === undefined ? 'the current version' : `version(s) ${versions.join(', ')}`;
      printData(
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
      .requiredOption('--versions <list>', 'comma-separated versions, e.g. 1,2')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (path: string, options: { versions: string; yes?: boolean }, command: Command) => {
    const secretPath = parseSecretPath(path);
    const versions = parseVersions(options.versions);
    await confirm(
      context,
      `Destroy version(s) ${versions.join(', ')} of "${secretPath}" for good?`,
      { yes: options.yes },
    );
    const client = await context.client();
    const metadata = await client.destroySecret(secretPath, versions);
    printData(
      context.output,
      formatOf(command),
      metadata,
      () => `Destroyed version(s) ${versions.join(', ')} of "${metadata.path}"`,
    );
  });

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
    printData(context.output, formatOf(command), answer, () => renderMetadata(answer));
  });

  withFormat(
    metadata
      .command('put')
      .description('Set the version cap or custom metadata of a secret')
      .argument('<path>', 'secret path')
      .option('--max-versions <n>', 'versions to keep ("default": the server default)')
      .option('--custom <pairs...>', 'custom metadata as key=value (replaces all of it)'),
  ).action(
    async (
      path: string,
      options: { maxVersions?: string; custom?: string[] },
      command: Command,
    ) => {
      const secretPath = parseSecretPath(path);
      const body: {
        maxVersions?: number | null;
        customMetadata?: Record<string, string>;
      } = {};
      if (options.maxVersions !== undefined) {
        body.maxVersions =
          options.maxVersions === 'default' ? null : parseMaxVersions(options.maxVersions);
      }
      if (options.custom !== undefined) {
        body.customMetadata = parseCustomMetadata(options.custom);
      }
      if (body.maxVersions === undefined && body.customMetadata === undefined) {
        throw new InvalidRequestError('Give --max-versions, --custom or both');
      }
      const client = await context.client();
      const answer = await client.putMetadata(secretPath, body);
      printData(
        context.output,
        formatOf(command),
        answer,
        () => `Updated the metadata of "${answer.path}"`,
      );
    },
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
