/**
 * `spike secret export` and `spike secret import` (docs/backup.md): moving
 * the secrets of a prefix, and the policies that only reach into it, from
 * one broker to another through the normal API, so that the target's
 * policies, quotas and audit trail apply to every write. Loaded only when
 * one of the two runs (`secret.ts` imports this file on demand).
 *
 * The export file is JSON. Its content is encrypted for the target under a
 * passphrase unless `--plain` is asked for (then a warning goes to stderr):
 *
 *   { "format": "spike-ts-export", "version": 1,
 *     "encryption": { "kdf": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "…",
 *                     "cipher": "aes-256-gcm", "nonce": "…" },
 *     "ciphertext": "…" }                   (base64; the tag is its last 16 bytes)
 *
 *   { "format": "spike-ts-export", "version": 1, "encryption": null, "content": { … } }
 *
 * The key is scrypt's of the passphrase with a fresh salt, so each file has
 * its own key and one nonce; the encryption object, as written, is the
 * associated data, so no parameter can be changed unnoticed. Content:
 * `{ exportedAt, prefix, secrets: [{ path, data, customMetadata,
 * maxVersions }], policies: [PolicyDocument] }`, each entry checked with the
 * wire contract's own parsers on import. Only current versions travel;
 * history stays with snapshots.
 *
 * Import also reads a Vault KV v2 export (`--from vault-kv2`): a JSON object
 * from each secret path to what `vault kv get -format=json <mount>/<path>`
 * printed for it (docs/backup.md shows the loop that builds it).
 *
 * No value is ever printed: reports name paths, policies and actions only.
 */
import { Buffer } from 'node:buffer';
import {
  createCipheriv,
  createDecipheriv,
  randomBytes,
  scrypt as scryptCallback,
} from 'node:crypto';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { type PolicyDocument, parsePolicyDocument } from '../../shared/api/policies.ts';
import { parseSecretPath, parseSecretPrefix } from '../../shared/api/secret_path.ts';
import { parsePutMetadataRequest, parsePutSecretRequest } from '../../shared/api/secrets.ts';
import {
  ConflictError,
  InvalidRequestError,
  NotFoundError,
  SnapshotCorruptError,
} from '../../shared/errors/errors.ts';
import type { CommandContext, PilotClient } from './_context.ts';

export const EXPORT_FORMAT = 'spike-ts-export';
const FILE_MODE = 0o600;
/** An import file is read up to this size. */
export const MAX_IMPORT_BYTES = 256 * 1024 * 1024;
/** At least this many characters of passphrase. */
export const MIN_PASSPHRASE_LENGTH = 12;
const SCRYPT = { n: 2 ** 15, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const LIST_PAGE_SIZE = 1000;
const MAX_LIST_PAGES = 1000;

export interface ExportedSecret {
  readonly path: string;
  readonly data: Readonly<Record<string, string>>;
  readonly customMetadata: Readonly<Record<string, string>>;
  /** The path's own cap of kept versions, or null. */
  readonly maxVersions: number | null;
}

export interface ExportContent {
  readonly exportedAt: string;
  readonly prefix: string;
  readonly secrets: readonly ExportedSecret[];
  readonly policies: readonly PolicyDocument[];
}

interface Encryption {
  readonly kdf: 'scrypt';
  readonly n: number;
  readonly r: number;
  readonly p: number;
  readonly salt: string;
  readonly cipher: 'aes-256-gcm';
  readonly nonce: string;
}

export interface ExportResult {
  readonly file: string;
  readonly prefix: string;
  readonly encrypted: boolean;
  readonly secrets: number;
  readonly policies: number;
  /** Paths left out: their current version is deleted or destroyed. */
  readonly skipped: readonly string[];
}

export type ImportAction = 'create' | 'update' | 'unchanged';

export interface ImportReport {
  readonly dryRun: boolean;
  readonly secrets: readonly { readonly path: string; readonly action: ImportAction }[];
  readonly policies: readonly {
    readonly name: string;
    readonly action: 'create' | 'replace' | 'unchanged';
  }[];
}

// ------------------------------------------------------------------ export

/** Reads the prefix's secrets and policies from Nexus and writes them into a new file (0600). */
export async function exportSecrets(
  context: CommandContext,
  prefixArgument: string,
  file: string,
  options: { readonly plain?: boolean; readonly passphraseFile?: string },
): Promise<ExportResult> {
  const prefix = parseSecretPrefix(prefixArgument);
  if (options.plain === true && options.passphraseFile !== undefined) {
    throw new InvalidRequestError('Give either --plain or --passphrase-file, not both');
  }
  if (await exists(file)) {
    throw new InvalidRequestError(`"${file}" exists: an export never replaces a file`);
  }
  const passphrase =
    options.plain === true ? undefined : await passphraseOf(context, options.passphraseFile, true);
  const client = await context.client();
  const { content, skipped } = await collect(client, prefix);
  const text =
    passphrase === undefined
      ? JSON.stringify({ format: EXPORT_FORMAT, version: 1, encryption: null, content })
      : await sealContent(content, passphrase);
  try {
    await writeFile(file, `${text}\n`, { mode: FILE_MODE, flag: 'wx' });
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'EEXIST') await rm(file, { force: true });
    throw err;
  }
  return {
    file,
    prefix,
    encrypted: passphrase !== undefined,
    secrets: content.secrets.length,
    policies: content.policies.length,
    skipped,
  };
}

async function collect(
  client: PilotClient,
  prefix: string,
): Promise<{ content: ExportContent; skipped: string[] }> {
  const paths: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < MAX_LIST_PAGES; page++) {
    const listed = await client.listSecrets({
      prefix,
      limit: LIST_PAGE_SIZE,
      ...(after === undefined ? {} : { after }),
    });
    paths.push(...listed.paths);
    if (listed.next === undefined) break;
    after = listed.next;
  }
  const secrets: ExportedSecret[] = [];
  const skipped: string[] = [];
  for (const path of paths) {
    const metadata = await client.getMetadata(path);
    const current = metadata.versions.find((v) => v.version === metadata.currentVersion);
    if (current === undefined || current.deletedAt !== null || current.destroyed) {
      skipped.push(path);
      continue;
    }
    const secret = await client.getSecret(path);
    secrets.push({
      path,
      data: secret.data,
      customMetadata: metadata.customMetadata,
      maxVersions: metadata.maxVersionsOverride,
    });
  }
  const policies = (await client.listPolicies()).policies
    .filter((policy) => reachesOnlyInto(policy.pathPattern, prefix))
    .map(({ name, spiffeIdPattern, pathPattern, permissions }) => ({
      name,
      spiffeIdPattern,
      pathPattern,
      permissions,
    }));
  return {
    content: { exportedAt: new Date().toISOString(), prefix, secrets, policies },
    skipped,
  };
}

/**
 * Whether every path a path pattern can match lies under `prefix` (the
 * prefix's segments are the pattern's first segments, all literal). The
 * empty prefix takes every policy.
 */
export function reachesOnlyInto(pathPattern: string, prefix: string): boolean {
  const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (base === '') return true;
  const wanted = base.split('/');
  const segments = pathPattern.split('/');
  return segments.length >= wanted.length && wanted.every((segment, i) => segments[i] === segment);
}

async function sealContent(content: ExportContent, passphrase: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const encryption: Encryption = {
    kdf: 'scrypt',
    ...SCRYPT,
    salt: salt.toString('base64'),
    cipher: 'aes-256-gcm',
    nonce: nonce.toString('base64'),
  };
  const key = await deriveKey(passphrase, salt, encryption);
  try {
    const cipher = createCipheriv('aes-256-gcm', key, nonce);
    cipher.setAAD(associatedData(encryption));
    const sealed = Buffer.concat([
      cipher.update(JSON.stringify(content), 'utf8'),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    return JSON.stringify({
      format: EXPORT_FORMAT,
      version: 1,
      encryption,
      ciphertext: sealed.toString('base64'),
    });
  } finally {
    key.fill(0);
  }
}

// ------------------------------------------------------------------ import

/**
 * Imports a file into Nexus: reads what is there first (the plan), then,
 * unless `dryRun`, writes what differs, policies first. A policy of the
 * same name with other rules is a conflict that stops the import before
 * any write, unless `replacePolicies`.
 */
export async function importSecrets(
  context: CommandContext,
  file: string,
  options: {
    readonly from?: string;
    readonly passphraseFile?: string;
    readonly dryRun?: boolean;
    readonly replacePolicies?: boolean;
  },
): Promise<ImportReport> {
  const text = await readImportFile(file);
  let content: ExportContent;
  if (options.from === 'vault-kv2') {
    content = parseVaultKv2Export(text);
  } else if (options.from === undefined || options.from === EXPORT_FORMAT) {
    content = await openExport(text, () => passphraseOf(context, options.passphraseFile, false));
  } else {
    throw new InvalidRequestError(
      `Unknown --from "${options.from}": use ${EXPORT_FORMAT} (the default) or vault-kv2`,
    );
  }
  const client = await context.client();
  const policies = await Promise.all(
    content.policies.map(async (policy) => ({
      policy,
      action: await policyAction(client, policy),
    })),
  );
  const conflicts = policies.filter((entry) => entry.action === 'replace');
  if (conflicts.length > 0 && options.replacePolicies !== true && options.dryRun !== true) {
    throw new ConflictError(
      `Policies ${conflicts.map((entry) => `"${entry.policy.name}"`).join(', ')} exist with other rules: nothing was imported; give --replace-policies to replace them`,
    );
  }
  const secrets: { entry: ExportedSecret; action: ImportAction; metadata: boolean }[] = [];
  for (const entry of content.secrets) {
    secrets.push({ entry, ...(await secretAction(client, entry)) });
  }
  if (options.dryRun !== true) {
    for (const { policy, action } of policies) {
      if (action !== 'unchanged') await client.putPolicy(policy);
    }
    for (const { entry, action, metadata } of secrets) {
      if (action !== 'unchanged') await client.putSecret(entry.path, { ...entry.data });
      if (metadata) {
        await client.putMetadata(entry.path, {
          maxVersions: entry.maxVersions,
          customMetadata: { ...entry.customMetadata },
        });
      }
    }
  }
  return {
    dryRun: options.dryRun === true,
    secrets: secrets.map(({ entry, action, metadata }) => ({
      path: entry.path,
      action: action === 'unchanged' && metadata ? 'update' : action,
    })),
    policies: policies.map(({ policy, action }) => ({ name: policy.name, action })),
  };
}

async function policyAction(
  client: PilotClient,
  policy: PolicyDocument,
): Promise<'create' | 'replace' | 'unchanged'> {
  let existing: PolicyDocument;
  try {
    existing = await client.getPolicy(policy.name);
  } catch (err) {
    if (err instanceof NotFoundError) return 'create';
    throw err;
  }
  const same =
    existing.spiffeIdPattern === policy.spiffeIdPattern &&
    existing.pathPattern === policy.pathPattern &&
    [...existing.permissions].sort().join(',') === [...policy.permissions].sort().join(',');
  return same ? 'unchanged' : 'replace';
}

async function secretAction(
  client: PilotClient,
  entry: ExportedSecret,
): Promise<{ action: ImportAction; metadata: boolean }> {
  let action: ImportAction;
  try {
    const current = await client.getSecret(entry.path);
    action = sameMap(current.data, entry.data) ? 'unchanged' : 'update';
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    // A path with no readable current version (deleted, destroyed) gets a new one.
    action = 'create';
  }
  const wantsMetadata = entry.maxVersions !== null || Object.keys(entry.customMetadata).length > 0;
  if (!wantsMetadata) return { action, metadata: false };
  if (action === 'create') return { action, metadata: true };
  const metadata = await client.getMetadata(entry.path);
  const metadataDiffers =
    metadata.maxVersionsOverride !== entry.maxVersions ||
    !sameMap(metadata.customMetadata, entry.customMetadata);
  return { action, metadata: metadataDiffers };
}

function sameMap(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) {
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length &&
    keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key])
  );
}

/** An export file of ours, opened (`passphrase` is asked only for an encrypted one). */
export async function openExport(
  text: string,
  passphrase: () => Promise<string>,
): Promise<ExportContent> {
  const file = jsonObject(text, 'The export file');
  if (file.format !== EXPORT_FORMAT || file.version !== 1) {
    throw new InvalidRequestError(
      `The file is not a ${EXPORT_FORMAT} file of version 1 (a Vault KV v2 export needs --from vault-kv2)`,
    );
  }
  if (file.encryption === null) {
    onlyFields(file, ['format', 'version', 'encryption', 'content'], 'The export file');
    return parseContent(file.content);
  }
  onlyFields(file, ['format', 'version', 'encryption', 'ciphertext'], 'The export file');
  const encryption = parseEncryption(file.encryption);
  if (typeof file.ciphertext !== 'string') {
    throw new SnapshotCorruptError('The export file\'s "ciphertext" must be base64 text');
  }
  const sealed = Buffer.from(file.ciphertext, 'base64');
  if (sealed.byteLength < TAG_BYTES) {
    throw new SnapshotCorruptError('The export file\'s "ciphertext" is too short');
  }
  const key = await deriveKey(
    await passphrase(),
    Buffer.from(encryption.salt, 'base64'),
    encryption,
  );
  let plain: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(encryption.nonce, 'base64'));
    decipher.setAAD(associatedData(encryption));
    decipher.setAuthTag(sealed.subarray(sealed.byteLength - TAG_BYTES));
    plain = Buffer.concat([
      decipher.update(sealed.subarray(0, sealed.byteLength - TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  } catch {
    throw new InvalidRequestError(
      'Cannot open the export file: a wrong passphrase, or the file was changed',
    );
  } finally {
    key.fill(0);
  }
  return parseContent(jsonObject(plain, 'The export content'));
}

function parseEncryption(value: unknown): Encryption {
  const fields = jsonFields(value, 'The export file\'s "encryption"');
  onlyFields(
    fields,
    ['kdf', 'n', 'r', 'p', 'salt', 'cipher', 'nonce'],
    'The export file\'s "encryption"',
  );
  if (
    fields.kdf !== 'scrypt' ||
    fields.cipher !== 'aes-256-gcm' ||
    fields.n !== SCRYPT.n ||
    fields.r !== SCRYPT.r ||
    fields.p !== SCRYPT.p ||
    typeof fields.salt !== 'string' ||
    Buffer.from(fields.salt, 'base64').byteLength !== SALT_BYTES ||
    typeof fields.nonce !== 'string' ||
    Buffer.from(fields.nonce, 'base64').byteLength !== NONCE_BYTES
  ) {
    throw new InvalidRequestError(
      `The export file's "encryption" must be scrypt (n ${SCRYPT.n}, r ${SCRYPT.r}, p ${SCRYPT.p}) with aes-256-gcm, a 16-byte salt and a 12-byte nonce`,
    );
  }
  return fields as unknown as Encryption;
}

function parseContent(value: unknown): ExportContent {
  const fields = jsonFields(value, 'The export content');
  onlyFields(fields, ['exportedAt', 'prefix', 'secrets', 'policies'], 'The export content');
  if (typeof fields.exportedAt !== 'string' || Number.isNaN(Date.parse(fields.exportedAt))) {
    throw new InvalidRequestError('The export content\'s "exportedAt" must be an ISO 8601 time');
  }
  const prefix = parseSecretPrefix(fields.prefix);
  if (!Array.isArray(fields.secrets) || !Array.isArray(fields.policies)) {
    throw new InvalidRequestError('The export content\'s "secrets" and "policies" must be arrays');
  }
  const secrets = fields.secrets.map((entry, i) => parseExportedSecret(entry, i));
  noDuplicates(
    secrets.map((secret) => secret.path),
    'secret path',
  );
  const policies = fields.policies.map((entry, i) => {
    try {
      return parsePolicyDocument(entry);
    } catch (err) {
      throw new InvalidRequestError(`Policy #${i + 1}: ${(err as Error).message}`);
    }
  });
  noDuplicates(
    policies.map((policy) => policy.name),
    'policy name',
  );
  return { exportedAt: fields.exportedAt, prefix, secrets, policies };
}

function parseExportedSecret(value: unknown, i: number): ExportedSecret {
  const fields = jsonFields(value, `Secret #${i + 1}`);
  onlyFields(fields, ['path', 'data', 'customMetadata', 'maxVersions'], `Secret #${i + 1}`);
  const path = parseSecretPath(fields.path);
  return checkedSecret(path, fields.data, fields.customMetadata, fields.maxVersions);
}

/** One secret, its data and metadata checked as Nexus would check them. */
function checkedSecret(
  path: string,
  data: unknown,
  customMetadata: unknown,
  maxVersions: unknown,
): ExportedSecret {
  try {
    const put = parsePutSecretRequest({ data });
    const metadata = parsePutMetadataRequest({ customMetadata, maxVersions });
    return {
      path,
      data: put.data,
      customMetadata: metadata.customMetadata ?? {},
      maxVersions: metadata.maxVersions ?? null,
    };
  } catch (err) {
    throw new InvalidRequestError(`Secret "${path}": ${(err as Error).message}`);
  }
}

/** The fields `vault kv get -format=json` prints around a secret. */
const VAULT_RESPONSE_FIELDS = [
  'request_id',
  'lease_id',
  'lease_duration',
  'renewable',
  'data',
  'warnings',
  'wrap_info',
  'auth',
  'mount_type',
];
const VAULT_METADATA_FIELDS = [
  'created_time',
  'custom_metadata',
  'deletion_time',
  'destroyed',
  'version',
];

/**
 * A Vault KV v2 export: `{ "<path>": <vault kv get -format=json output>, … }`.
 * Strict: only the fields Vault prints, string values only, a live current
 * version (not deleted, not destroyed), each path valid here.
 */
export function parseVaultKv2Export(text: string): ExportContent {
  const file = jsonObject(text, 'The Vault export');
  const secrets = Object.entries(file).map(([path, response]) => {
    const where = `Vault secret "${path}"`;
    let parsedPath: string;
    try {
      parsedPath = parseSecretPath(path);
    } catch (err) {
      throw new InvalidRequestError(`${where}: ${(err as Error).message}`);
    }
    const fields = jsonFields(response, where);
    onlyFields(fields, VAULT_RESPONSE_FIELDS, where);
    const body = jsonFields(fields.data, `${where}: "data"`);
    onlyFields(body, ['data', 'metadata'], `${where}: "data"`);
    const metadata = jsonFields(body.metadata, `${where}: "data.metadata"`);
    onlyFields(metadata, VAULT_METADATA_FIELDS, `${where}: "data.metadata"`);
    if (metadata.destroyed !== false || (metadata.deletion_time ?? '') !== '') {
      throw new InvalidRequestError(
        `${where}: its current version is deleted or destroyed; export a live version`,
      );
    }
    if (body.data === null || body.data === undefined) {
      throw new InvalidRequestError(`${where}: "data.data" is missing`);
    }
    const custom = metadata.custom_metadata ?? undefined;
    return checkedSecret(parsedPath, body.data, custom, undefined);
  });
  return { exportedAt: new Date().toISOString(), prefix: '', secrets, policies: [] };
}

// ------------------------------------------------------------------ helpers

async function readImportFile(file: string): Promise<string> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch {
    throw new InvalidRequestError(`Cannot read the import file "${file}"`);
  }
  if (size > MAX_IMPORT_BYTES) {
    throw new InvalidRequestError(
      `"${file}" has ${size} bytes, more than an import reads (${MAX_IMPORT_BYTES})`,
    );
  }
  return readFile(file, 'utf8');
}

/** The passphrase: the first line of a file, or asked on the terminal (twice for an export). */
async function passphraseOf(
  context: CommandContext,
  file: string | undefined,
  confirmIt: boolean,
): Promise<string> {
  let passphrase: string;
  if (file !== undefined) {
    passphrase = (await readFile(file, 'utf8')).split(/\r?\n/)[0] ?? '';
  } else if (context.terminal.isInteractive()) {
    passphrase = await context.terminal.promptHidden('Passphrase: ');
    if (confirmIt && (await context.terminal.promptHidden('Passphrase again: ')) !== passphrase) {
      throw new InvalidRequestError('The two passphrases differ: nothing was exported');
    }
  } else {
    throw new InvalidRequestError(
      'No passphrase: give --passphrase-file (off a terminal), or --plain for an unencrypted export',
    );
  }
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw new InvalidRequestError(
      `The passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`,
    );
  }
  return passphrase;
}

function deriveKey(passphrase: string, salt: Uint8Array, params: Encryption): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCallback(
      passphrase,
      salt,
      32,
      { N: params.n, r: params.r, p: params.p, maxmem: 128 * params.n * params.r * 2 },
      (err, key) => (err === null ? resolve(key) : reject(err)),
    );
  });
}

/** The encryption object in a fixed field order: what the ciphertext is bound to. */
function associatedData(encryption: Encryption): Buffer {
  const { kdf, n, r, p, salt, cipher, nonce } = encryption;
  return Buffer.from(
    `${EXPORT_FORMAT} v1 ${JSON.stringify({ kdf, n, r, p, salt, cipher, nonce })}`,
  );
}

function jsonObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // No cause: the SyntaxError quotes part of the text, which may be a secret.
    throw new InvalidRequestError(`${what} is not JSON`);
  }
  return jsonFields(value, what);
}

function jsonFields(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError(`${what} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function onlyFields(fields: Record<string, unknown>, allowed: readonly string[], what: string) {
  const unknown = Object.keys(fields).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) {
    throw new InvalidRequestError(
      `${what} has ${unknown.length} unknown field(s); the fields are ${allowed.join(', ')}`,
    );
  }
}

function noDuplicates(names: readonly string[], what: string): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw new InvalidRequestError(`The ${what} "${name}" appears twice`);
    seen.add(name);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
