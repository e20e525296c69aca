/**
 * Everything Pilot prints: data to stdout, diagnostics to stderr, and the
 * mirror of the HTTP status table: error code → exit status. Commands print
 * through an `Output`, so tests capture what a user would see.
 */
import { ENV_TRUST_ROOT } from '../shared/config/common.ts';
import { type ErrorCode, isBrokerError } from '../shared/errors/errors.ts';
import { ENV_NEXUS_API_URL } from './config.ts';

export const EXIT_BY_CODE = {
  ERR_UNAUTHENTICATED: 3,
  ERR_ACCESS_DENIED: 3,
  ERR_INVALID_REQUEST: 2,
  ERR_NOT_FOUND: 4,
  ERR_CONFLICT: 5,
  ERR_PAYLOAD_TOO_LARGE: 2,
  ERR_NOT_READY: 6,
  ERR_DECRYPTION_FAILED: 1,
  ERR_INTERNAL: 1,
  ERR_CONFIG_INVALID: 2,
  ERR_SPIFFE_ID_INVALID: 2,
  ERR_SVID_INVALID: 3,
  ERR_BUNDLE_INVALID: 1,
  ERR_WORKLOAD_API_UNAVAILABLE: 7,
  ERR_WORKLOAD_API_REJECTED: 7,
  ERR_UNAVAILABLE: 7,
  ERR_SERVER_UNTRUSTED: 3,
  ERR_SHAMIR_INVALID_SHARDS: 2,
  ERR_SHAMIR_NOT_ENOUGH_SHARDS: 2,
  ERR_ALREADY_UNSEALED: 5,
  ERR_RATE_LIMITED: 8,
  ERR_RESPONSE_TOO_LARGE: 7,
  ERR_USAGE: 2,
  ERR_QUOTA_EXCEEDED: 9,
  ERR_BODY_INCOMPLETE: 2,
  ERR_AUDIT_UNAVAILABLE: 7,
  ERR_AUDIT_NOT_INTACT: 10,
  ERR_SNAPSHOT_CORRUPT: 2,
  ERR_SNAPSHOT_INVALID: 2,
  ERR_TOO_MANY_WATCHES: 8,
  ERR_CIPHERTEXT_INVALID: 10,
  ERR_KEY_VERSION_TOO_OLD: 10,
  ERR_KEEPERS_UNAVAILABLE: 7,
} as const satisfies Record<ErrorCode, number>;

/** Exit status of a failure that is not a broker error (a bug, or a canceled prompt). */
export const EXIT_FAILURE = 1;

export const OUTPUT_FORMATS = ['human', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Where Pilot writes. Each text call writes one block; a final newline is added when missing. */
export interface Output {
  stdout(text: string): void;
  /** Bytes to stdout exactly as they are (a decrypted plaintext): nothing is added. */
  stdoutBytes(bytes: Uint8Array): void;
  stderr(text: string): void;
}

/** The process's stdout and stderr; `stdout` (process.stdout) takes the bytes written as they are. */
export function createConsoleOutput(stdout: { write(bytes: Uint8Array): unknown }): Output {
  return {
    stdout(text) {
      console.log(text.endsWith('\n') ? text.slice(0, -1) : text);
    },
    stdoutBytes(bytes) {
      stdout.write(bytes);
    },
    stderr(text) {
      console.error(text.endsWith('\n') ? text.slice(0, -1) : text);
    },
  };
}

/**
 * Prints a command's result: JSON or YAML of `data` as is (its fields are the
 * stable machine interface), or the `human` rendering. The YAML library is
 * loaded only when YAML is asked for: it is larger than the rest of Pilot's
 * own code, and every run would otherwise pay for compiling it.
 */
export async function printData(
  output: Output,
  format: OutputFormat,
  data: unknown,
  human: (data: unknown) => string = renderHuman,
): Promise<void> {
  if (format === 'json') {
    output.stdout(JSON.stringify(data, null, 2));
  } else if (format === 'yaml') {
    output.stdout((await loadYaml()).stringify(data));
  } else {
    const text = human(data);
    if (text !== '') {
      output.stdout(text);
    }
  }
}

/**
 * The YAML library, loaded on first use. It is CommonJS: its exports object is
 * the default export under Node and Deno alike, and the only export of the
 * chunk the bundle (scripts/bundle.js) makes of it.
 */
export async function loadYaml(): Promise<typeof import('yaml')> {
  return (await import('yaml')).default;
}

/** A plain object as `key: value` lines; nested values as compact JSON. */
export function renderHuman(data: unknown): string {
  if (typeof data !== 'object' || data === null) {
    return String(data);
  }
  return Object.entries(data)
    .map(
      ([key, value]) =>
        `${key}: ${typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)}`,
    )
    .join('\n');
}

export interface FailureContext {
  /** The caller's SPIFFE ID, when Pilot got as far as holding an SVID. */
  readonly callerId?: string | undefined;
}

/**
 * Prints one short line for a failure and returns its exit status. A broker
 * error is shown with its code; access denied names the caller, sealed says
 * how to unseal, an untrusted server what to check. Messages come from the
 * SDK or Nexus, which never carry secret values.
 */
export function reportFailure(output: Output, err: unknown, context: FailureContext = {}): number {
  if (isBrokerError(err)) {
    output.stderr(`spike: ${describeBrokerError(err.code, err.message, context)} [${err.code}]`);
    return EXIT_BY_CODE[err.code];
  }
  output.stderr(`spike: ${err instanceof Error ? err.message : String(err)}`);
  return EXIT_FAILURE;
}

function describeBrokerError(code: ErrorCode, message: string, context: FailureContext): string {
  switch (code) {
    case 'ERR_ACCESS_DENIED':
    case 'ERR_UNAUTHENTICATED':
      return context.callerId === undefined ? message : `${message} for ${context.callerId}`;
    case 'ERR_NOT_READY':
      return `${message}; an operator can unseal it with "spike operator restore"`;
    case 'ERR_SERVER_UNTRUSTED':
      return `${message}; check that ${ENV_NEXUS_API_URL} is Nexus, that ${ENV_TRUST_ROOT} names its trust domain, and that the Workload API's trust bundle holds its CA`;
    default:
      return message;
  }
}
