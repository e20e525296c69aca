import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidRequestError } from '../errors/errors.ts';
import {
  MAX_POLICY_NAME_LENGTH,
  parseListPoliciesResponse,
  parsePolicyDocument,
  parsePolicyName,
  parsePolicyResponse,
  parsePutPolicyRequest,
  policyPath,
} from './policies.ts';

const DOCUMENT = {
  name: 'web-reads-db',
  spiffeIdPattern: 'spiffe://example.org/apps/web',
  pathPattern: 'apps/web/**',
  permissions: ['read', 'list'],
};

function assertRefused(run: () => unknown, message: RegExp) {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof InvalidRequestError, String(err));
    assert.equal(err.code, 'ERR_INVALID_REQUEST');
    assert.match(err.message, message);
    return true;
  });
}

describe('parsePolicyName()', () => {
  test('accepts 1..64 letters, digits, ".", "_" and "-"', () => {
    for (const name of ['a', 'web-reads-db', 'Team_A.v2', 'x'.repeat(MAX_POLICY_NAME_LENGTH)]) {
      assert.equal(parsePolicyName(name), name);
    }
  });

  test('refuses everything else, naming the field', () => {
    const cases: ReadonlyArray<[unknown, RegExp]> = [
      ['', /non-empty/],
      [undefined, /non-empty/],
      [42, /non-empty/],
      ['x'.repeat(MAX_POLICY_NAME_LENGTH + 1), /at most 64/],
      ['a b', /may contain only/],
      ['a/b', /may contain only/],
      ['ä', /may contain only/],
      ['.', /"\." or "\.\."/],
      ['..', /"\." or "\.\."/],
    ];
    for (const [value, message] of cases) {
      assertRefused(() => parsePolicyName(value), message);
    }
    assertRefused(() => parsePolicyName('a b', 'path name'), /Field "path name"/);
  });
});

describe('parsePolicyDocument()', () => {
  test('returns the document with permissions in canonical order', () => {
    assert.deepEqual(parsePolicyDocument({ ...DOCUMENT, permissions: ['list', 'super', 'read'] }), {
      ...DOCUMENT,
      permissions: ['read', 'list', 'super'],
    });
  });

  test('refuses missing, unknown and mistyped fields', () => {
    const { name: _name, ...withoutName } = DOCUMENT;
    const cases: ReadonlyArray<[unknown, RegExp]> = [
      [null, /JSON object/],
      [[DOCUMENT], /JSON object/],
      ['x', /JSON object/],
      [withoutName, /"name"/],
      [{ ...DOCUMENT, extra: 1 }, /Unknown field "extra"/],
      [{ ...DOCUMENT, spiffeIdPattern: '' }, /"spiffeIdPattern" must be a non-empty string/],
      [{ ...DOCUMENT, spiffeIdPattern: 5 }, /"spiffeIdPattern"/],
      [{ ...DOCUMENT, pathPattern: null }, /"pathPattern"/],
      [{ ...DOCUMENT, pathPattern: 'a'.repeat(2049) }, /"pathPattern" must be at most 2048/],
      [{ ...DOCUMENT, permissions: [] }, /"permissions" must be a non-empty array/],
      [{ ...DOCUMENT, permissions: 'read' }, /"permissions" must be a non-empty array/],
      [{ ...DOCUMENT, permissions: ['read', 'execute'] }, /"permissions" may hold only/],
      [{ ...DOCUMENT, permissions: ['READ'] }, /"permissions" may hold only/],
      [{ ...DOCUMENT, permissions: ['read', 'read'] }, /lists "read" more than once/],
    ];
    for (const [body, message] of cases) {
      assertRefused(() => parsePolicyDocument(body), message);
    }
  });
});

describe('parsePutPolicyRequest()', () => {
  test('the name is optional', () => {
    const { name: _name, ...rule } = DOCUMENT;
    assert.deepEqual(parsePutPolicyRequest(rule), rule);
    assert.equal('name' in parsePutPolicyRequest(rule), false);
    assert.deepEqual(parsePutPolicyRequest(DOCUMENT), DOCUMENT);
  });

  test('a given name must be valid; unknown fields are refused', () => {
    assertRefused(() => parsePutPolicyRequest({ ...DOCUMENT, name: 'a/b' }), /"name"/);
    assertRefused(
      () => parsePutPolicyRequest({ ...DOCUMENT, createdAt: '2026-01-01T00:00:00.000Z' }),
      /Unknown field "createdAt"/,
    );
  });
});

describe('policy responses', () => {
  const response = {
    ...DOCUMENT,
    createdAt: '2026-01-01T00:00:00.000Z',
    updatedAt: '2026-01-02T00:00:00.000Z',
  };

  test('parsePolicyResponse() and parseListPoliciesResponse() read what Nexus writes', () => {
    assert.deepEqual(parsePolicyResponse(response), response);
    assert.deepEqual(parseListPoliciesResponse({ policies: [response] }), {
      policies: [response],
    });
    assert.deepEqual(parseListPoliciesResponse({ policies: [] }), { policies: [] });
  });

  test('they refuse bad times and shapes', () => {
    assertRefused(() => parsePolicyResponse({ ...response, createdAt: 'yesterday' }), /createdAt/);
    assertRefused(() => parsePolicyResponse({ ...response, updatedAt: 1 }), /updatedAt/);
    assertRefused(() => parseListPoliciesResponse({ policies: {} }), /"policies" must be an array/);
    assertRefused(() => parseListPoliciesResponse({ policies: [], more: 1 }), /Unknown field/);
  });
});

describe('policyPath()', () => {
  test('builds the path of one policy and refuses a bad name', () => {
    assert.equal(policyPath('web-reads-db'), '/v1/policies/web-reads-db');
    assertRefused(() => policyPath('../x'), /may contain only/);
  });
});
