import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InternalError } from '../shared/errors/errors.ts';
import {
  parseListResponse,
  parseMetadataResponse,
  parseSecretResponse,
  parseStatusResponse,
} from './_wire.ts';

const T = '2026-01-02T03:04:05.000Z';
const METADATA = {
  path: 'app/db',
  createdAt: T,
  updatedAt: T,
  currentVersion: 2,
  oldestVersion: 1,
  maxVersions: 10,
  maxVersionsOverride: null,
  versions: [{ version: 1, createdAt: T, deletedAt: null, destroyed: false }],
  customMetadata: { owner: 'a' },
};

describe('response parsers', () => {
  test('parseMetadataResponse() accepts the documented shape', () => {
    assert.deepEqual(parseMetadataResponse(METADATA), METADATA);
  });

  test('ignore fields a newer Nexus may add, and do not return them', () => {
    const secret = parseSecretResponse({
      path: 'app/db',
      version: 1,
      data: { k: 'v' },
      createdAt: T,
      addedLater: true,
    });
    assert.deepEqual(secret, { path: 'app/db', version: 1, data: { k: 'v' }, createdAt: T });
  });

  test('refuse wrong types with InternalError naming the field', () => {
    assert.throws(
      () => parseMetadataResponse({ ...METADATA, currentVersion: '2' }),
      (err: unknown) => err instanceof InternalError && /"currentVersion"/.test(err.message),
    );
    assert.throws(
      () => parseSecretResponse({ path: 'app/db', version: 1, data: { k: 1 }, createdAt: T }),
      InternalError,
    );
    assert.throws(() => parseListResponse({ paths: 'app/db' }), InternalError);
    assert.throws(() => parseListResponse(null), InternalError);
  });

  test('parseListResponse() keeps the cursor only when present', () => {
    assert.deepEqual(parseListResponse({ paths: ['a'] }), { paths: ['a'] });
    assert.deepEqual(parseListResponse({ paths: ['a'], next: 'a' }), { paths: ['a'], next: 'a' });
  });

  test('parseStatusResponse() accepts only ready or sealed', () => {
    const status = {
      state: 'sealed',
      spiffeId: 'spiffe://td/spike/nexus',
      svidNotAfter: T,
      refusedHandshakes: 0,
      deniedRequests: 1,
      keepers: [{ name: 'https://k1', reachable: false, generations: [1] }],
    };
    assert.deepEqual(parseStatusResponse(status), status);
    assert.throws(() => parseStatusResponse({ ...status, state: 'open' }), InternalError);
  });
});
