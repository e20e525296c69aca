/**
 * The single `app.onError`: a BrokerError becomes its status (from THE table)
 * and the wire error body; anything else is logged with its stack and answered
 * with a generic 500 whose message reveals nothing.
 */
import type { Context } from 'hono';
import { errorBody } from '../api/error_body.ts';
import { type BrokerError, InternalError, isBrokerError } from '../errors/errors.ts';
import { statusForCode } from '../errors/http_status.ts';
import type { Logger } from '../log/logger.ts';

export function createErrorHandler(logger: Logger) {
  return function errorHandler(err: Error, c: Context): Response {
    let brokerError: BrokerError;
    if (isBrokerError(err)) {
      brokerError = err;
    } else {
      logger.error('Unhandled error', { error: err.name, stack: err.stack });
      brokerError = new InternalError();
    }
    c.header('Cache-Control', 'no-store');
    c.set('errorCode', brokerError.code);
    return c.json(errorBody(brokerError), statusForCode(brokerError.code));
  };
}
