/** The one wire shape of an error: `{ "error": { "code", "message" } }`. */
import { errorForCode } from '../errors/error_for_code.ts';
import { type BrokerError, ERROR_CODES, type ErrorCode } from '../errors/errors.ts';

export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string };
}

export function errorBody(err: BrokerError): ErrorBody {
  return { error: { code: err.code, message: err.message } };
}

/**
 * Turns an error body back into the error of its code (the subclass, so
 * `instanceof` works), or undefined if the body is malformed or the code
 * unknown.
 */
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
  return errorForCode(code as ErrorCode, message);
}
