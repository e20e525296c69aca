/** The one wire shape of an error: `{ "error": { "code", "message" } }`. */
import { BrokerError, ERROR_CODES, type ErrorCode } from '../errors/errors.ts';

export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string };
}

export function errorBody(err: BrokerError): ErrorBody {
  return { error: { code: err.code, message: err.message } };
}

/** Turns an error body back into a BrokerError with the same code, or undefined if malformed. */
export function errorFromBody(body: unknown): BrokerError | undefined {
  if (typeof body !== 'object' || body === null) {
    return undefined;
  }
  const error = (body as { error?: unknown }).error;
  if (typeof error !== 'object' || error === null) {
    return undefined;
  }
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || typeof message !== 'string') {
    return undefined;
  }
  if (!(ERROR_CODES as readonly string[]).includes(code)) {
    return undefined;
  }
  return new BrokerError(code as ErrorCode, message);
}
