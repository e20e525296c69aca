/**
 * What every command is given: a lazily connected client, where to print,
 * the terminal, and the loaded configuration. Commands never touch process
 * globals; pilot/main.ts builds the real context and tests a fake one.
 */

import { type Command, InvalidArgumentError, Option } from 'commander';
import type { KeyringStatusResponse, RotateDataKeyResponse } from '../../shared/api/keyring.ts';
import type {
  RecoverResponse,
  RestoreResponse,
  RotateRootKeyRequest,
  RotateRootKeyResponse,
  StatusResponse,
} from '../../shared/api/operator.ts';
import type {
  ListPoliciesResponse,
  PolicyDocument,
  PolicyResponse,
} from '../../shared/api/policies.ts';
import type { ListResponse, MetadataResponse, SecretResponse } from '../../shared/api/secrets.ts';
import type { SnapshotRestoreResponse } from '../../shared/api/snapshot.ts';
import type {
  CiphertextResult,
  HmacResult,
  KeyResponse,
  ListKeysResponse,
} from '../../shared/api/transit.ts';
import type { Env } from '../../shared/config/env.ts';
import { InvalidRequestError, isBrokerError } from '../../shared/errors/errors.ts';
import type { PilotConfig } from '../config.ts';
import { OUTPUT_FORMATS, type Output, type OutputFormat } from '../output.ts';

/** The part of the SDK's SpikeClient that Pilot uses. */
export interface PilotClient {
  /** The caller's own SPIFFE ID (a SpiffeId; its toString() is the URI). */
  spiffeId(): { toString(): string };
  getSecret(path: string, options?: { version?: number }): Promise<SecretResponse>;
  /** A long-poll: the first version other than `newerThan`, or undefined once `waitMs` passed. */
  getSecretNewerThan(
    path: string,
    newerThan: number,
    options?: { waitMs?: number },
  ): Promise<SecretResponse | undefined>;
  putSecret(
    path: string,
    data: Record<string, string>,
    options?: { cas?: number },
  ): Promise<MetadataResponse>;
  listSecrets(options?: { prefix?: string; limit?: number; after?: string }): Promise<ListResponse>;
  deleteSecret(path: string, options?: { versions?: number[] }): Promise<MetadataResponse>;
  undeleteSecret(path: string, options?: { versions?: number[] }): Promise<MetadataResponse>;
  destroySecret(path: string, versions: number[]): Promise<MetadataResponse>;
  getMetadata(path: string): Promise<MetadataResponse>;
  putMetadata(
    path: string,
    options: { maxVersions?: number | null; customMetadata?: Record<string, string> },
  ): Promise<MetadataResponse>;
  /** Removes the path with every version and its metadata. */
  deletePath(path: string, options?: { readonly onlyDeleted?: boolean }): Promise<void>;
  listPolicies(): Promise<ListPoliciesResponse>;
  getPolicy(name: string): Promise<PolicyResponse>;
  putPolicy(policy: PolicyDocument): Promise<PolicyResponse>;
  deletePolicy(name: string): Promise<void>;
  listKeys(): Promise<ListKeysResponse>;
  createKey(name: string): Promise<KeyResponse>;
  getKey(name: string): Promise<KeyResponse>;
  rotateKey(name: string): Promise<KeyResponse>;
  configureKey(name: string, options: { minDecryptionVersion: number }): Promise<KeyResponse>;
  deleteKey(name: string): Promise<void>;
  encrypt(name: string, plaintext: Uint8Array, options?: ContextArg): Promise<CiphertextResult>;
  encryptBatch(name: string, items: readonly PlaintextItem[]): Promise<CiphertextResult[]>;
  decrypt(name: string, ciphertext: string, options?: ContextArg): Promise<Uint8Array>;
  decryptBatch(name: string, items: readonly CiphertextItem[]): Promise<Uint8Array[]>;
  rewrap(name: string, ciphertext: string, options?: ContextArg): Promise<CiphertextResult>;
  rewrapBatch(name: string, items: readonly CiphertextItem[]): Promise<CiphertextResult[]>;
  generateDataKey(name: string, options?: DataKeyArg): Promise<DataKeyAnswer>;
  generateDataKeyBatch(name: string, items: readonly DataKeyArg[]): Promise<DataKeyAnswer[]>;
  hmac(name: string, input: Uint8Array): Promise<HmacResult>;
  hmacBatch(name: string, inputs: readonly Uint8Array[]): Promise<HmacResult[]>;
  verifyHmac(name: string, input: Uint8Array, hmac: string): Promise<boolean>;
  verifyHmacBatch(
    name: string,
    items: readonly { readonly input: Uint8Array; readonly hmac: string }[],
  ): Promise<boolean[]>;
  /** Ready (200) or sealed (503): both are answers. */
  status(): Promise<StatusResponse & { readonly httpStatus: number }>;
  recover(): Promise<RecoverResponse>;
  restore(shardText: string): Promise<RestoreResponse>;
  keyringStatus(): Promise<KeyringStatusResponse>;
  rotateDataKey(): Promise<RotateDataKeyResponse>;
  rotateRootKey(request: RotateRootKeyRequest): Promise<RotateRootKeyResponse>;
  /** The bytes of a snapshot file of Nexus's database. */
  saveSnapshot(): Promise<Uint8Array>;
  restoreSnapshot(
    file: Uint8Array,
    options?: { readonly force?: boolean },
  ): Promise<SnapshotRestoreResponse>;
  close(): void | Promise<void>;
}

/** A context bound to a ciphertext, as the SDK takes it. */
export interface ContextArg {
  readonly context?: Uint8Array | undefined;
}
export interface PlaintextItem extends ContextArg {
  readonly plaintext: Uint8Array;
}
export interface CiphertextItem extends ContextArg {
  readonly ciphertext: string;
}
export interface DataKeyArg extends ContextArg {
  readonly bytes?: number | undefined;
  readonly wrappedOnly?: boolean | undefined;
}
export interface DataKeyAnswer extends CiphertextResult {
  readonly plaintext?: Uint8Array;
}

/** The terminal Pilot runs in: stdin, prompts and hidden input. */
export interface Terminal {
  /** Whether stdin is an interactive terminal. */
  isInteractive(): boolean;
  /** All of stdin as text (at most `maxBytes`, else InvalidRequestError). */
  readStdin(maxBytes: number): Promise<string>;
  /** All of stdin as bytes, unchanged (at most `maxBytes`, else InvalidRequestError). */
  readStdinBytes(maxBytes: number): Promise<Uint8Array>;
  /** Asks a question on the terminal and returns the answer line. */
  prompt(question: string): Promise<string>;
  /** Like prompt, without echoing what is typed. */
  promptHidden(question: string): Promise<string>;
}

export interface CommandContext {
  readonly config: () => PilotConfig;
  /**
   * Connects on first use (after arguments were checked) and keeps the
   * client. `waitMs` adds to the run's time budget (SPIKE_PILOT_TIMEOUT): a
   * command that waits for a change says for how long.
   */
  readonly client: (options?: { readonly waitMs?: number }) => Promise<PilotClient>;
  readonly output: Output;
  readonly terminal: Terminal;
  /** The environment spike runs in (`spike run` passes it on to its command). */
  readonly environment: Env;
  /**
   * Sets the status `spike` exits with when the command ends without an
   * error (0 unless set): `spike run` passes on its command's.
   */
  readonly exitWith: (status: number) => void;
}

/** The `--format` of a command: its own, else the one given before the subcommand. */
export function formatOf(command: Command): OutputFormat {
  let current: Command | null = command;
  while (current !== null) {
    const format = current.opts<{ format?: string }>().format;
    if (format !== undefined) {
      return parseFormat(format);
    }
    current = current.parent;
  }
  return 'human';
}

export function parseFormat(value: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) {
    return value as OutputFormat;
  }
  throw new InvalidRequestError(
    `Unknown output format "${value}": use ${OUTPUT_FORMATS.join(', ')}`,
  );
}

/** Adds `--format` to a leaf command (so it may follow the command's arguments). */
export function withFormat(command: Command): Command {
  return command.addOption(formatOption());
}

/** `-f, --format human|json|yaml`, refused at parse time when unknown. */
export function formatOption(): Option {
  return new Option('-f, --format <format>', 'output format').choices(OUTPUT_FORMATS);
}

/**
 * An option's value parser for commander: a value of the wrong kind (not a
 * number, not a list of versions) is then a usage error of that option,
 * reported before the command runs.
 */
export function optionValue<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      if (isBrokerError(err)) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

/**
 * Asks before an irreversible step: `--yes` skips the question; on a
 * terminal the user must answer y; without a terminal the step is refused.
 */
export async function confirm(
  context: CommandContext,
  question: string,
  options: { readonly yes: boolean | undefined },
): Promise<void> {
  if (options.yes === true) {
    return;
  }
  if (!context.terminal.isInteractive()) {
    throw new InvalidRequestError(
      `${question.replace(/\?$/, '')}: refused without --yes because stdin is not a terminal`,
    );
  }
  const answer = (await context.terminal.prompt(`${question} [y/N] `)).trim().toLowerCase();
  if (answer !== 'y' && answer !== 'yes') {
    throw new CanceledError('Canceled: nothing was changed');
  }
}

/** The user answered no to a confirmation: exit status 1, nothing changed. */
export class CanceledError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CanceledError';
  }
}
