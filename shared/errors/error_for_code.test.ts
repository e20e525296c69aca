import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { errorForCode } from './error_for_code.ts';
import {
  AccessDeniedError,
  BrokerError,
  BundleInvalidError,
  DecryptionFailedError,
  ERROR_CODES,
  NotReadyError,
  RateLimitedError,
} from './errors.ts';

describe('errorForCode()', () => {
  test('gives every code the class that raises it, keeping the code and the message', () => {
    for (const code of ERROR_CODES) {
      const error = errorForCode(code, 'Something');
      assert.ok(error instanceof BrokerError, code);
      assert.equal(error.code, code);
      if (code !== 'ERR_DECRYPTION_FAILED') {
        assert.equal(error.message, 'Something', code);
      }
      // Only a configuration error, built from a list of problems, stays generic.
      assert.equal(error.name === 'BrokerError', code === 'ERR_CONFIG_INVALID', code);
    }
    assert.ok(errorForCode('ERR_ACCESS_DENIED', 'Access denied') instanceof AccessDeniedError);
    assert.ok(errorForCode('ERR_NOT_READY', 'Sealed') instanceof NotReadyError);
    assert.ok(errorForCode('ERR_BUNDLE_INVALID', 'Bad bundle') instanceof BundleInvalidError);
    assert.ok(errorForCode('ERR_RATE_LIMITED', 'Slow down') instanceof RateLimitedError);
  });

  test('a decryption failure keeps its one fixed message, whatever the sender wrote', () => {
    const error = errorForCode('ERR_DECRYPTION_FAILED', 'the key was 0x1234');
    assert.ok(error instanceof DecryptionFailedError);
    assert.equal(error.message, 'Decryption failed');
  });
});
