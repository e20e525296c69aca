import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AccessDeniedError,
  BrokerError,
  DecryptionFailedError,
  ERROR_CODES,
  InternalError,
  NotFoundError,
  NotReadyError,
  ServerUntrustedError,
  SvidInvalidError,
  UnavailableError,
  WorkloadApiUnavailableError,
} from '../shared/errors/errors.ts';
import { errorFromResponse, transportFailure } from './_errors.ts';

const ORIGIN = 'https://nexus.test:8553';

function body(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

describe('errorFromResponse()', () => {
  test('turns an error body into the subclass of its code, keeping the message', () => {
    const denied = errorFromResponse(403, body('ERR_ACCESS_DENIED', 'Access denied'), ORIGIN);
    assert.ok(denied instanceof AccessDeniedError);
    assert.equal(denied.message, 'Access denied');
    assert.ok(
      errorFromResponse(404, body('ERR_NOT_FOUND', 'No secret'), ORIGIN) instanceof NotFoundError,
    );
    assert.ok(
      errorFromResponse(503, body('ERR_NOT_READY', 'Sealed'), ORIGIN) instanceof NotReadyError,
    );
  });

  test('keeps the code of every known error code', () => {
    for (const code of ERROR_CODES) {
      const error = errorFromResponse(500, body(code, 'Something'), ORIGIN);
      assert.ok(error instanceof BrokerError);
      assert.equal(error.code, code);
    }
  });

  test('gives decryption failures their one fixed message', () => {
    const error = errorFromResponse(500, body('ERR_DECRYPTION_FAILED', 'other words'), ORIGIN);
    assert.ok(error instanceof DecryptionFailedError);
    assert.equal(error.message, 'Decryption failed');
  });

  test('makes a 502/503/504 without an error body UnavailableError naming Nexus', () => {
    for (const status of [502, 503, 504]) {
      const error = errorFromResponse(status, '<html>busy</html>', ORIGIN);
      assert.ok(error instanceof UnavailableError);
      assert.match(error.message, /^Nexus at https:\/\/nexus\.test:8553 answered 50\d/);
    }
  });

  test('makes any other unexpected answer InternalError, unknown codes included', () => {
    assert.ok(errorFromResponse(500, 'not json', ORIGIN) instanceof InternalError);
    assert.ok(errorFromResponse(418, body('ERR_TEAPOT', 'no'), ORIGIN) instanceof InternalError);
    assert.ok(errorFromResponse(400, '{"error":"flat"}', ORIGIN) instanceof InternalError);
  });
});

describe('transportFailure()', () => {
  function socketError(code: string): Error {
    return Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });
  }

  test('names the URL, and takes no error code as proof that nothing was sent', () => {
    // Deno reports ECONNREFUSED for a request it had sent on a kept-alive
    // connection and then re-sent by itself; only MtlsClient knows (isNeverSent).
    const failure = transportFailure(socketError('ECONNREFUSED'), ORIGIN);
    assert.ok(failure.error instanceof UnavailableError);
    assert.match(failure.error.message, /^Nexus is unreachable at https:\/\/nexus\.test:8553: /);
    assert.equal(failure.isBeforeSend, false);
  });

  test('does not claim a reset or a timeout happened before sending', () => {
    assert.equal(transportFailure(socketError('ECONNRESET'), ORIGIN).isBeforeSend, false);
    const timeout = transportFailure(new UnavailableError('Request timed out after 10ms'), ORIGIN);
    assert.ok(timeout.error instanceof UnavailableError);
    assert.match(timeout.error.message, /^Nexus is unreachable at .*timed out/);
    assert.equal(timeout.isBeforeSend, false);
  });

  test('makes a server that is not the expected one a trust problem, not unreachable', () => {
    const wrongServer = new SvidInvalidError('Server "spiffe://x/y" is not the expected one');
    const failure = transportFailure(wrongServer, ORIGIN);
    assert.ok(failure.error instanceof ServerUntrustedError);
    assert.equal(failure.error.code, 'ERR_SERVER_UNTRUSTED');
    assert.equal(
      failure.error.message,
      'The server at https://nexus.test:8553 is not trusted: Server "spiffe://x/y" is not the expected one',
    );
  });

  test('makes a chain the handshake refused a trust problem, naming the reason', () => {
    for (const [code, message] of [
      ['SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'],
      ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate'],
      ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'],
      ['CERT_HAS_EXPIRED', 'certificate has expired'],
    ] as const) {
      const failure = transportFailure(Object.assign(new Error(message), { code }), ORIGIN);
      assert.ok(failure.error instanceof ServerUntrustedError, code);
      assert.match(
        failure.error.message,
        /^The server at https:\/\/nexus\.test:8553 is not trusted: /,
      );
      assert.ok(failure.error.message.includes(message), failure.error.message);
    }
  });

  test('keeps other errors raised on our side as they are', () => {
    const noSvid = new WorkloadApiUnavailableError('No X509-SVID is available');
    assert.equal(transportFailure(noSvid, ORIGIN).error, noSvid);
  });
});
