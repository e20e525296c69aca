/**
 * For Pilot's unit tests: an in-memory stand-in for the SDK client that
 * records every call, a scripted terminal, a capturing output, and `run()`
 * that drives runCli like a user would.
 */

import type { KeyringStatusResponse, RotateDataKeyResponse } from '../../shared/api/keyring.ts';
import type {
  RecoverResponse,
  RestoreResponse,
  RotateRootKeyRequest,
  RotateRootKeyResponse,
} from '../../shared/api/operator.ts';
import type { PolicyDocument, PolicyResponse } from '../../shared/api/policies.ts';
import type { MetadataResponse, SecretResponse } from '../../shared/api/secrets.ts';
import type { SnapshotRestoreResponse } from '../../shared/api/snapshot.ts';
import {
  type CiphertextResult,
  decodeWireBytes,
  encodeWireBytes,
  formatVersioned,
  type HmacResult,
  type KeyResponse,
  parseVersioned,
} from '../../shared/api/transit.ts';
import {
  AccessDeniedError,
  CiphertextInvalidError,
  ConflictError,
  NotFoundError,
} from '../../shared/errors/errors.ts';
import { loadPilotConfig } from '../config.ts';
import type { Output } from '../output.ts';
import { runCli } from '../program.ts';
import type {
  CiphertextItem,
  ContextArg,
  DataKeyAnswer,
  DataKeyArg,
  PilotClient,
  PlaintextItem,
  Terminal,
} from './_context.ts';
import { isEmptied } from './secret.ts';

export const CALLER_ID = 'spiffe://unit.test/spike/pilot/role/superuser';
const T = '2026-01-01T00:00:00.000Z';

export interface Call {
  readonly method: string;
  readonly args: readonly unknown[];
}

export class FakeClient implements PilotClient {
  readonly calls: Call[] = [];
  readonly secrets = new Map<string, Record<string, string>[]>();
  readonly policies = new Map<string, PolicyResponse>();
  /** Named keys: name → latest version and minimum decryption version. */
  readonly keys = new Map<string, { latest: number; min: number }>();
  restoreAnswers: RestoreResponse[] = [];
  sealed = false;
  /** Version states by path: `deleted` or `destroyed` (a version not listed is live). */
  readonly versionStates = new Map<string, Map<number, 'deleted' | 'destroyed'>>();
  /** `method path` pairs answered with AccessDeniedError, e.g. `deletePath app/x`. */
  readonly denied = new Set<string>();
  /** Runs before a putSecret is applied (to play a concurrent writer). */
  beforePut: (() => void) | undefined;
  /** Runs when a long-poll finds nothing other than what the caller has, before it answers 304. */
  whileWaiting: (() => void) | undefined;
  /** When set, every call throws it. */
  failWith: Error | undefined;
  closed = false;
  /** What the command added to the run's time budget when it connected. */
  connectWaitMs: number | undefined;

  #record(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.failWith !== undefined) throw this.failWith;
    if (typeof args[0] === 'string' && this.denied.has(`${method} ${args[0]}`)) {
      throw new AccessDeniedError();
    }
  }

  #mark(path: string, versions: readonly number[], state: 'deleted' | 'destroyed'): void {
    const states = this.versionStates.get(path) ?? new Map();
    for (const version of versions) states.set(version, state);
    this.versionStates.set(path, states);
  }

  #metadata(path: string): MetadataResponse {
    const versions = this.secrets.get(path) ?? [];
    return {
      path,
      createdAt: T,
      updatedAt: T,
      currentVersion: versions.length,
      oldestVersion: versions.length === 0 ? 0 : 1,
      maxVersions: 10,
      maxVersionsOverride: null,
      versions: versions.map((_, i) => {
        const state = this.versionStates.get(path)?.get(i + 1);
        return {
          version: i + 1,
          createdAt: T,
          deletedAt: state === undefined ? null : T,
          destroyed: state === 'destroyed',
        };
      }),
      customMetadata: {},
    };
  }

  spiffeId() {
    return { toString: () => CALLER_ID };
  }
  async getSecret(path: string, options: { version?: number } = {}): Promise<SecretResponse> {
    this.#record('getSecret', path, options);
    const versions = this.secrets.get(path);
    const version = options.version ?? versions?.length ?? 0;
    const data = versions?.[version - 1];
    if (data === undefined || this.versionStates.get(path)?.has(version)) {
      throw new NotFoundError(`Secret "${path}" not found`);
    }
    return { path, version, data, createdAt: T };
  }
  async getSecretNewerThan(
    path: string,
    newerThan: number,
    options: { waitMs?: number } = {},
  ): Promise<SecretResponse | undefined> {
    this.#record('getSecretNewerThan', path, newerThan, options);
    if ((this.secrets.get(path)?.length ?? 0) === newerThan) {
      this.whileWaiting?.();
      return undefined;
    }
    return this.getSecret(path);
  }
  async putSecret(path: string, data: Record<string, string>, options: { cas?: number } = {}) {
    this.#record('putSecret', path, data, options);
    this.beforePut?.();
    const current = this.secrets.get(path)?.length ?? 0;
    if (options.cas !== undefined && options.cas !== current) {
      throw new ConflictError(`Check-and-set failed: expected version ${options.cas}`);
    }
    this.secrets.set(path, [...(this.secrets.get(path) ?? []), data]);
    return this.#metadata(path);
  }
  async listSecrets(options: { prefix?: string; limit?: number; after?: string } = {}) {
    this.#record('listSecrets', options);
    const all = [...this.secrets.keys()]
      .filter((path) => path.startsWith(options.prefix ?? ''))
      .sort();
    const start = options.after === undefined ? 0 : all.indexOf(options.after) + 1;
    const page = all.slice(start, start + 1);
    const next = start + 1 < all.length ? page[0] : undefined;
    return next === undefined ? { paths: page } : { paths: page, next };
  }
  async deleteSecret(path: string, options: { versions?: number[] } = {}) {
    this.#record('deleteSecret', path, options);
    this.#mark(path, options.versions ?? [this.secrets.get(path)?.length ?? 0], 'deleted');
    return this.#metadata(path);
  }
  async undeleteSecret(path: string, options: { versions?: number[] } = {}) {
    this.#record('undeleteSecret', path, options);
    return this.#metadata(path);
  }
  async destroySecret(path: string, versions: number[]) {
    this.#record('destroySecret', path, versions);
    this.#mark(path, versions, 'destroyed');
    return this.#metadata(path);
  }
  async getMetadata(path: string) {
    this.#record('getMetadata', path);
    if (!this.secrets.has(path)) throw new NotFoundError(`Secret "${path}" not found`);
    return this.#metadata(path);
  }
  async deletePath(path: string, options: { readonly onlyDeleted?: boolean } = {}) {
    this.#record('deletePath', path, ...(options.onlyDeleted === true ? [options] : []));
    if (!this.secrets.has(path)) throw new NotFoundError(`Secret "${path}" not found`);
    if (options.onlyDeleted === true && !isEmptied(this.#metadata(path))) {
      throw new ConflictError(
        `Secret "${path}" has a version that is neither deleted nor destroyed`,
      );
    }
    this.secrets.delete(path);
    this.versionStates.delete(path);
  }
  async putMetadata(
    path: string,
    options: { maxVersions?: number | null; customMetadata?: Record<string, string> },
  ) {
    this.#record('putMetadata', path, options);
    return this.#metadata(path);
  }
  async listPolicies() {
    this.#record('listPolicies');
    return { policies: [...this.policies.values()] };
  }
  async getPolicy(name: string) {
    this.#record('getPolicy', name);
    const found = this.policies.get(name);
    if (found === undefined) throw new NotFoundError(`Policy "${name}" not found`);
    return found;
  }
  async putPolicy(policy: PolicyDocument) {
    this.#record('putPolicy', policy);
    const stored = { ...policy, createdAt: T, updatedAt: T };
    this.policies.set(policy.name, stored);
    return stored;
  }
  async deletePolicy(name: string) {
    this.#record('deletePolicy', name);
    if (!this.policies.delete(name)) throw new NotFoundError(`Policy "${name}" not found`);
  }
  async status() {
    this.#record('status');
    return {
      httpStatus: this.sealed ? 503 : 200,
      state: this.sealed ? ('sealed' as const) : ('ready' as const),
      spiffeId: 'spiffe://unit.test/spike/nexus',
      svidNotAfter: T,
      refusedHandshakes: 0,
      deniedRequests: 0,
      keepers: [{ name: 'https://127.0.0.1:1', reachable: true, generations: [1] }],
    };
  }
  async recover(): Promise<RecoverResponse> {
    this.#record('recover');
    return { generation: 1, threshold: 2, shards: [] };
  }
  async restore(shard: string) {
    this.#record('restore', shard);
    const answer = this.restoreAnswers.shift();
    if (answer === undefined) throw new Error('no scripted restore answer');
    return answer;
  }
  /** What keyringStatus() answers. */
  keyring: KeyringStatusResponse = {
    activeTerm: 2,
    terms: [
      { term: 1, createdAt: null, activeFrom: null },
      { term: 2, createdAt: T, activeFrom: T },
    ],
    rowsByTerm: { '1': 40, '2': 60 },
    sweep: {
      state: 'sweeping',
      remaining: 40,
      term: 2,
      rewrapped: 60,
      failed: 0,
      startedAt: T,
      finishedAt: null,
    },
  };
  async keyringStatus(): Promise<KeyringStatusResponse> {
    this.#record('keyringStatus');
    return this.keyring;
  }
  async rotateDataKey(): Promise<RotateDataKeyResponse> {
    this.#record('rotateDataKey');
    return { term: { term: 3, createdAt: T, activeFrom: T } };
  }
  async rotateRootKey(request: RotateRootKeyRequest): Promise<RotateRootKeyResponse> {
    this.#record('rotateRootKey', request);
    return {
      generation: 9,
      shares: request.shares ?? 3,
      threshold: request.threshold ?? 2,
      keepers: ['keeper-1', 'keeper-2', 'keeper-3'].slice(0, request.shares ?? 3),
      rotatedAt: '2030-01-01T00:00:00.000Z',
    };
  }
  /** What saveSnapshot() answers; what restoreSnapshot() was given. */
  snapshot: Uint8Array = new Uint8Array(0);
  restoredSnapshots: { readonly file: Uint8Array; readonly force: boolean }[] = [];
  async saveSnapshot(): Promise<Uint8Array> {
    this.#record('saveSnapshot');
    return this.snapshot;
  }
  async restoreSnapshot(
    file: Uint8Array,
    options: { readonly force?: boolean } = {},
  ): Promise<SnapshotRestoreResponse> {
    this.#record('restoreSnapshot');
    this.restoredSnapshots.push({ file, force: options.force === true });
    return {
      createdAt: T,
      bytes: file.byteLength,
      sameKey: options.force !== true,
      state: 'ready',
    };
  }
  // A stand-in for Nexus's cipher: a "ciphertext" is the key, the context
  // and the plaintext in clear, so tests can see what was sent; it opens
  // under its own key and context only, like the real one.

  #key(name: string): { latest: number; min: number } {
    const key = this.keys.get(name);
    if (key === undefined) throw new NotFoundError(`Key "${name}" does not exist`);
    return key;
  }

  #keyAnswer(name: string): KeyResponse {
    const { latest, min } = this.#key(name);
    return {
      name,
      createdAt: T,
      updatedAt: T,
      latestVersion: latest,
      minDecryptionVersion: min,
      versions: Array.from({ length: latest }, (_, i) => ({ version: i + 1, createdAt: T })),
    };
  }

  #seal(
    name: string,
    plaintext: Uint8Array,
    context: Uint8Array = new Uint8Array(0),
  ): CiphertextResult {
    const { latest } = this.#key(name);
    const text = JSON.stringify({
      name,
      c: encodeWireBytes(context),
      p: encodeWireBytes(plaintext),
    });
    return {
      ciphertext: formatVersioned(latest, new TextEncoder().encode(text)),
      keyVersion: latest,
    };
  }

  #open(name: string, ciphertext: string, context: Uint8Array = new Uint8Array(0)): Uint8Array {
    const { version, bytes } = parseVersioned(ciphertext, 'ciphertext');
    const key = this.#key(name);
    const sealed = JSON.parse(new TextDecoder().decode(bytes)) as {
      name: string;
      c: string;
      p: string;
    };
    if (sealed.name !== name || sealed.c !== encodeWireBytes(context) || version > key.latest) {
      throw new CiphertextInvalidError();
    }
    return decodeWireBytes(sealed.p, 'plaintext');
  }

  async listKeys() {
    this.#record('listKeys');
    return { keys: [...this.keys.keys()].sort() };
  }
  async createKey(name: string) {
    this.#record('createKey', name);
    if (this.keys.has(name)) throw new ConflictError(`Key "${name}" already exists`);
    this.keys.set(name, { latest: 1, min: 1 });
    return this.#keyAnswer(name);
  }
  async getKey(name: string) {
    this.#record('getKey', name);
    return this.#keyAnswer(name);
  }
  async rotateKey(name: string) {
    this.#record('rotateKey', name);
    this.#key(name).latest += 1;
    return this.#keyAnswer(name);
  }
  async configureKey(name: string, options: { minDecryptionVersion: number }) {
    this.#record('configureKey', name, options);
    this.#key(name).min = options.minDecryptionVersion;
    return this.#keyAnswer(name);
  }
  async deleteKey(name: string) {
    this.#record('deleteKey', name);
    this.#key(name);
    this.keys.delete(name);
  }
  async encrypt(name: string, plaintext: Uint8Array, options: ContextArg = {}) {
    this.#record('encrypt', name, options);
    return this.#seal(name, plaintext, options.context);
  }
  async encryptBatch(name: string, items: readonly PlaintextItem[]) {
    this.#record('encryptBatch', name, items.length);
    return items.map((item) => this.#seal(name, item.plaintext, item.context));
  }
  async decrypt(name: string, ciphertext: string, options: ContextArg = {}) {
    this.#record('decrypt', name, options);
    return this.#open(name, ciphertext, options.context);
  }
  async decryptBatch(name: string, items: readonly CiphertextItem[]) {
    this.#record('decryptBatch', name, items.length);
    return items.map((item) => this.#open(name, item.ciphertext, item.context));
  }
  async rewrap(name: string, ciphertext: string, options: ContextArg = {}) {
    this.#record('rewrap', name, options);
    return this.#seal(name, this.#open(name, ciphertext, options.context), options.context);
  }
  async rewrapBatch(name: string, items: readonly CiphertextItem[]) {
    this.#record('rewrapBatch', name, items.length);
    return items.map((item) =>
      this.#seal(name, this.#open(name, item.ciphertext, item.context), item.context),
    );
  }
  async generateDataKey(name: string, options: DataKeyArg = {}): Promise<DataKeyAnswer> {
    this.#record('generateDataKey', name, options);
    return this.#dataKey(name, options);
  }
  async generateDataKeyBatch(name: string, items: readonly DataKeyArg[]) {
    this.#record('generateDataKeyBatch', name, items.length);
    return items.map((item) => this.#dataKey(name, item));
  }
  #dataKey(name: string, options: DataKeyArg): DataKeyAnswer {
    const material = crypto.getRandomValues(new Uint8Array(options.bytes ?? 32));
    const wrapped = this.#seal(name, material, options.context);
    return options.wrappedOnly === true ? wrapped : { ...wrapped, plaintext: material };
  }
  async hmac(name: string, input: Uint8Array) {
    this.#record('hmac', name);
    return this.#mac(name, input);
  }
  async hmacBatch(name: string, inputs: readonly Uint8Array[]) {
    this.#record('hmacBatch', name, inputs.length);
    return inputs.map((input) => this.#mac(name, input));
  }
  #mac(name: string, input: Uint8Array): HmacResult {
    const { latest } = this.#key(name);
    const text = new TextEncoder().encode(`${name}:${encodeWireBytes(input)}`);
    return { hmac: formatVersioned(latest, text), keyVersion: latest };
  }
  async verifyHmac(name: string, input: Uint8Array, hmac: string) {
    this.#record('verifyHmac', name);
    return this.#mac(name, input).hmac === hmac;
  }
  async verifyHmacBatch(name: string, items: readonly { input: Uint8Array; hmac: string }[]) {
    this.#record('verifyHmacBatch', name, items.length);
    return items.map((item) => this.#mac(name, item.input).hmac === item.hmac);
  }

  close() {
    this.closed = true;
  }
}

export interface FakeTerminalOptions {
  readonly interactive?: boolean;
  readonly stdin?: string | Uint8Array;
  /** Answers to prompt() and promptHidden(), in order. */
  readonly answers?: readonly string[];
}

export function createFakeTerminal(options: FakeTerminalOptions = {}): Terminal & {
  readonly prompts: string[];
} {
  const answers = [...(options.answers ?? [])];
  const prompts: string[] = [];
  const answer = async (question: string) => {
    prompts.push(question);
    const next = answers.shift();
    if (next === undefined) throw new Error(`unexpected prompt ${question}`);
    return next;
  };
  return {
    prompts,
    isInteractive: () => options.interactive ?? false,
    readStdin: async () =>
      typeof options.stdin === 'string'
        ? options.stdin
        : new TextDecoder().decode(options.stdin ?? new Uint8Array(0)),
    readStdinBytes: async () =>
      typeof options.stdin === 'string'
        ? new TextEncoder().encode(options.stdin)
        : (options.stdin ?? new Uint8Array(0)),
    prompt: answer,
    promptHidden: answer,
  };
}

export interface RunResult {
  readonly status: number;
  readonly stdout: string;
  /** What was written to stdout as bytes (`stdoutBytes`), joined. */
  readonly stdoutBytes: Uint8Array;
  readonly stderr: string;
  readonly client: FakeClient;
}

/** Runs `spike <args>` against a fake client; nothing touches the network. */
export async function run(
  args: readonly string[],
  options: { client?: FakeClient; terminal?: Terminal; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const client = options.client ?? new FakeClient();
  let stdout = '';
  const chunks: Uint8Array[] = [];
  let stderr = '';
  const output: Output = {
    stdout: (text) => {
      stdout += text.endsWith('\n') ? text : `${text}\n`;
    },
    stdoutBytes: (bytes) => {
      chunks.push(bytes.slice());
    },
    stderr: (text) => {
      stderr += text.endsWith('\n') ? text : `${text}\n`;
    },
  };
  const status = await runCli(args, {
    config: () => loadPilotConfig({ SPIKE_TRUST_ROOT: 'unit.test', ...options.env }),
    connect: async (_config, waitMs) => {
      client.connectWaitMs = waitMs;
      return client;
    },
    whoami: async () => ({ spiffeId: CALLER_ID, trustDomain: 'unit.test', notAfter: T }),
    output,
    terminal: options.terminal ?? createFakeTerminal(),
    environment: { PATH: '/usr/local/bin:/usr/bin:/bin', ...options.env },
  });
  return { status, stdout, stdoutBytes: Buffer.concat(chunks), stderr, client };
}
