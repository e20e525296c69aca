import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseRestoreRequest } from './operator.ts';

describe('parseRestoreRequest()', () => {
  test('an unknown field is refused without quoting it: a shard pasted as a key stays out of the message', () => {
    const pasted = 'spike-shard:v1:g1:i1:c2VjcmV0';
    assert.throws(
      () => parseRestoreRequest({ [pasted]: true }),
      (err: Error & { code?: string }) =>
        err.code === 'ERR_INVALID_REQUEST' &&
        /only field is "shard"/.test(err.message) &&
        !err.message.includes(pasted),
    );
  });
});
