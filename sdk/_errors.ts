/**
 * How the SDK turns what went wrong on the wire into the broker's typed
 * errors: an error body becomes the subclass of its code (so callers can use
 * `instanceof` as well as `err.code`; the table is
 * shared/errors/error_for_code.ts), a missing or malformed body a generic
 * `UnavailableError` or `InternalError`, a server we do not trust a
 * `ServerUntrustedError`, and any other failed connection an
 * `UnavailableError` naming the Nexus URL.
 */
import { errorFromBody } from '../shared/api/error_body.ts';
import {
  type BrokerError,
  InternalError,
  isBrokerError,
  ServerUntrustedError,
  UnavailableError,
} from '../shared/errors/errors.ts';
import { isNeverSent } from '../shared/spiffe/mtls_client.ts';

/** The error a non-2xx answer stands for. `body` is the raw response text. */
export function errorFromResponse(status: number, text: string, origin: string): BrokerError {
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    body = undefined;
  }
  const error = errorFromBody(body);
  if (error !== undefined) {
    return error;
  }
  if (status === 502 || status === 503 || status === 504) {
    return new UnavailableError(`Nexus at ${origin} answered ${status} without an error body`);
  }
  return new InternalError(`Nexus at ${origin} answered ${status} with an unexpected body`);
}

/** What a failed request means, and whether sending it again is harmless. */
export interface TransportFailure {
  readonly error: BrokerError;
  /** True when Nexus cannot have acted on the request (it never got it). */
  readonly isBeforeSend: boolean;
}

/**
 * OpenSSL's reasons (as Node and Deno name them in `err.code`) for refusing
 * the server's certificate chain during the handshake: it does not chain to
 * our bundle (another CA or trust domain), or is expired or malformed.
 */
const CHAIN_REFUSED_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

/**
 * A request that got no answer. A server we do not trust is a trust
 * problem, not an unreachable Nexus: its chain refused by the handshake, or
 * refused by our SPIFFE check (`SvidInvalidError` from `checkServerSvid`:
 * not an X509-SVID of our bundle, or not Nexus's ID) becomes a
 * `ServerUntrustedError`. Other broker errors raised on our side (no SVID
 * from the Workload API) are kept as they are; anything else means Nexus
 * could not be reached.
 *
 * Whether it is safe to send again is decided by what happened to the
 * connections (`isNeverSent`), not by the error code: on Deno a request that
 * Nexus executed can end in `ECONNREFUSED`, because the runtime re-sends it
 * on a new connection by itself when the kept-alive one closes first.
 */
export function transportFailure(err: unknown, origin: string): TransportFailure {
  const untrusted = untrustedReason(err);
  if (untrusted !== undefined) {
    return {
      error: new ServerUntrustedError(`The server at ${origin} is not trusted: ${untrusted}`, {
        cause: err,
      }),
      isBeforeSend: isNeverSent(err),
    };
  }
  if (isBrokerError(err) && err.code !== 'ERR_UNAVAILABLE') {
    return { error: err, isBeforeSend: false };
  }
  const reason = err instanceof Error ? err.message : String(err);
  return {
    error: new UnavailableError(`Nexus is unreachable at ${origin}: ${reason}`, { cause: err }),
    isBeforeSend: isNeverSent(err),
  };
}

/** Why the server's certificate was refused, or undefined when `err` is not such a refusal. */
function untrustedReason(err: unknown): string | undefined {
  if (isBrokerError(err)) {
    return err.code === 'ERR_SVID_INVALID' ? err.message : undefined;
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CHAIN_REFUSED_CODES.has(code)) {
    return `its certificate does not verify against our trust bundle (${(err as Error).message})`;
  }
  return undefined;
}
