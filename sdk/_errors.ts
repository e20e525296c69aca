/**
 * How the SDK turns what went wrong on the wire into the broker's typed
 * errors: an error body becomes the subclass of its code (so callers can use
 * `instanceof` as well as `err.code`; the table is
 * shared/errors/error_for_code.ts), a missing or malformed body a generic
 * `UnavailableError` or `InternalError`, and a failed connection an
 * `UnavailableError` naming the Nexus URL.
 */
import { errorFromBody } from '../shared/api/error_body.ts';
import {
  type BrokerError,
  InternalError,
  isBrokerError,
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
 * A request that got no answer. Broker errors raised on our side (no SVID
 * from the Workload API, a server that is not Nexus) are kept as they are;
 * anything else means Nexus could not be reached.
 *
 * Whether it is safe to send again is decided by what happened to the
 * connections (`isNeverSent`), not by the error code: on Deno a request that
 * Nexus executed can end in `ECONNREFUSED`, because the runtime re-sends it
 * on a new connection by itself when the kept-alive one closes first.
 */
export function transportFailure(err: unknown, origin: string): TransportFailure {
  if (isBrokerError(err) && err.code !== 'ERR_UNAVAILABLE') {
    return { error: err, isBeforeSend: false };
  }
  const reason = err instanceof Error ? err.message : String(err);
  return {
    error: new UnavailableError(`Nexus is unreachable at ${origin}: ${reason}`, { cause: err }),
    isBeforeSend: isNeverSent(err),
  };
}
