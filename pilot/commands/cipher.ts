/**
 * `spike cipher …`: named encryption keys (encryption as a service; see
 * docs/keys.md). The key commands are here; the data commands (encrypt,
 * decrypt, rewrap, datakey, hmac, verify) only declare their command lines,
 * and their code is imported when one of them runs (pilot/cipher/), so that
 * other commands start no slower (docs/decisions/0022).
 */
import type { Command } from 'commander';
import {
  type KeyResponse,
  MAX_DATA_KEY_BYTES,
  MIN_DATA_KEY_BYTES,
  parseKeyName,
} from '../../shared/api/transit.ts';
import { InvalidRequestError } from '../../shared/errors/errors.ts';
import {
  CIPHER_OPERATIONS,
  type CipherOperation,
  type CipherOptions,
} from '../cipher/operations.ts';
import { printData } from '../output.ts';
import { type CommandContext, confirm, formatOf, optionValue, withFormat } from './_context.ts';

const POSITIVE_INTEGER = optionValue((value: string) => {
  if (!/^[1-9][0-9]{0,9}$/.test(value)) {
    throw new InvalidRequestError(`"${value}" is not a whole number from 1`);
  }
  return Number(value);
});

const DATA_KEY_BYTES = optionValue((value: string) => {
  const bytes = Number(value);
  if (!/^[0-9]{1,3}$/.test(value) || bytes < MIN_DATA_KEY_BYTES || bytes > MAX_DATA_KEY_BYTES) {
    throw new InvalidRequestError(
      `"${value}" is not a number of bytes from ${MIN_DATA_KEY_BYTES} to ${MAX_DATA_KEY_BYTES}`,
    );
  }
  return bytes;
});

export function registerCipherCommands(program: Command, context: CommandContext): void {
  const cipher = program
    .command('cipher')
    .description('Encrypt, decrypt and sign data under named keys that never leave Nexus');
  registerKeyCommands(cipher, context);

  const describe: Record<CipherOperation, string> = {
    encrypt: 'Encrypt bytes (stdin or --in) under the latest version of a key',
    decrypt: 'Decrypt a ciphertext (stdin or --in); writes the plaintext bytes as they are',
    rewrap: 'Encrypt a ciphertext again under the latest version, without showing its plaintext',
    datakey: 'Make a random data key, wrapped under a key (and in plaintext unless --wrapped-only)',
    hmac: 'The HMAC-SHA256 of bytes (stdin or --in) under the latest version of a key',
    verify: 'Check an HMAC of bytes (stdin or --in); exits 10 when it does not verify',
  };
  for (const operation of CIPHER_OPERATIONS) {
    const command = withFormat(
      cipher.command(operation).description(describe[operation]).argument('<key>', 'the key name'),
    ).option(
      '--json-in',
      'read JSON: one item or { "batch": [...] }, as the API takes it or as -f json prints it',
    );
    if (operation !== 'datakey') {
      command.option('--in <file>', 'read this file instead of stdin');
    }
    if (operation === 'datakey') {
      command
        .option(
          '--bytes <n>',
          `bytes of the data key, ${MIN_DATA_KEY_BYTES} to ${MAX_DATA_KEY_BYTES} (default 32)`,
          DATA_KEY_BYTES,
        )
        .option('--wrapped-only', 'answer only the wrapped data key');
    }
    if (operation !== 'hmac' && operation !== 'verify') {
      command.option('--context <text>', 'the context the ciphertext is bound to (UTF-8 text)');
    }
    if (operation === 'verify') {
      command.option('--hmac <hmac>', 'the HMAC to check (spike:v<N>:…); not with --json-in');
    }
    command.action(async (key: string, options: CipherOptions, self: Command) => {
      const name = parseKeyName(key, 'key');
      const { runCipher } = await import('../cipher/run.ts');
      await runCipher(context, operation, name, options, formatOf(self));
    });
  }
}

function registerKeyCommands(cipher: Command, context: CommandContext): void {
  const keys = cipher.command('key').description('Manage named keys');
  const show = async (command: Command, key: KeyResponse, what: string) =>
    printData(context.output, formatOf(command), key, () => `${what}\n${renderKey(key)}`);

  withFormat(keys.command('list').description('List the keys you may list')).action(
    async (_options: unknown, command: Command) => {
      const client = await context.client();
      const listed = await client.listKeys();
      await printData(context.output, formatOf(command), listed, () => listed.keys.join('\n'));
    },
  );

  withFormat(
    keys.command('create').description('Create a key').argument('<name>', 'key name'),
  ).action(async (name: string, _options: unknown, command: Command) => {
    const keyName = parseKeyName(name);
    const client = await context.client();
    await show(command, await client.createKey(keyName), `Created key "${keyName}"`);
  });

  withFormat(
    keys
      .command('get')
      .description("Show a key's versions (never its material)")
      .argument('<name>', 'key name'),
  ).action(async (name: string, _options: unknown, command: Command) => {
    const client = await context.client();
    const key = await client.getKey(parseKeyName(name));
    await printData(context.output, formatOf(command), key, () => renderKey(key));
  });

  withFormat(
    keys
      .command('rotate')
      .description('Add a version; encryption uses it from now on, older ones still decrypt')
      .argument('<name>', 'key name'),
  ).action(async (name: string, _options: unknown, command: Command) => {
    const keyName = parseKeyName(name);
    const client = await context.client();
    const key = await client.rotateKey(keyName);
    await show(command, key, `Rotated key "${keyName}" to version ${key.latestVersion}`);
  });

  withFormat(
    keys
      .command('config')
      .description('Refuse ciphertext and HMACs of versions below a minimum')
      .argument('<name>', 'key name')
      .requiredOption(
        '--min-decryption-version <n>',
        'the oldest version that may still decrypt and verify',
        POSITIVE_INTEGER,
      ),
  ).action(async (name: string, options: { minDecryptionVersion: number }, command: Command) => {
    const keyName = parseKeyName(name);
    const client = await context.client();
    const key = await client.configureKey(keyName, {
      minDecryptionVersion: options.minDecryptionVersion,
    });
    await show(command, key, `Configured key "${keyName}"`);
  });

  withFormat(
    keys
      .command('delete')
      .description('Delete a key and every version (asks on a terminal; --yes otherwise)')
      .argument('<name>', 'key name')
      .option('-y, --yes', 'do not ask for confirmation'),
  ).action(async (name: string, options: { yes?: boolean }, command: Command) => {
    const keyName = parseKeyName(name);
    await confirm(
      context,
      `Delete key "${keyName}" and every version, so that nothing encrypted under it can be decrypted again?`,
      { yes: options.yes },
    );
    const client = await context.client();
    await client.deleteKey(keyName);
    await printData(
      context.output,
      formatOf(command),
      { name: keyName, deleted: true },
      () => `Deleted key "${keyName}"`,
    );
  });
}

export function renderKey(key: KeyResponse): string {
  return [
    `Name:                   ${key.name}`,
    `Latest version:         ${key.latestVersion}`,
    `Min decryption version: ${key.minDecryptionVersion}`,
    `Created:                ${key.createdAt}`,
    `Updated:                ${key.updatedAt}`,
    ...key.versions.map(
      (version) =>
        `Version ${version.version}:${' '.repeat(Math.max(1, 15 - String(version.version).length))}${version.createdAt}`,
    ),
  ].join('\n');
}
