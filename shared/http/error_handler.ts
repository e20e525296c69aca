/**
 * The single `app.onError`: a BrokerError becomes its status (from THE table)
 * and the wire error body; anything else is logged with its stack and answered
 * with a generic 500 whose message reveals nothing.
 *
 * An error answer to a request that carries a body also closes the
 * connection: the body may be partly or not at all read (a 413 on its
 * declared length, a 403 before the guard let anything read it, a body cut
 * short), and the only way to keep a refused body unread is not to read the
 * rest of the connection. A client then cannot reuse a socket whose next
 * bytes are the tail of the refused body.
 */
import type { Context } from 'hono';
import { errorBody } from '../api/error_body.ts';
import { type BrokerError, InternalError, isBrokerError } from '../errors/errors.ts';
import { statusForCode } from '../errors/http_status.ts';
import type { Logger } from '../log/logger.ts';
import { declaresBody } from './validate.ts';

export function createErrorHandler(logger: Logger) {
  return function errorHandler(err: Error, c: Context): Response {
    const brokerError = toBrokerError(err, logger);
    c.header('Cache-Control', 'no-store');
    if (declaresBody(c)) {
      c.header('Connection', 'close');
    }
    c.set('errorCode', brokerError.code);
    return c.json(errorBody(brokerError), statusForCode(brokerError.code));
  };
}

/**
 * The error as it is answered: a BrokerError as it is, anything else logged
 * with its stack and replaced by a generic `InternalError`.
 */
export function toBrokerError(err: unknown, logger: Logger): BrokerError {
  if (isBrokerError(err)) {
    return err;
  }
  const error = err instanceof Error ? err : new Error(String(err));
  logger.error('Unhandled error', { error: error.name, stack: error.stack });
  return new InternalError();
}
