import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidSpiffeIdError } from '../errors/errors.ts';
import {
  agentId,
  DEFAULT_TRUST_DOMAIN_NAME,
  isKeeper,
  isNexus,
  isPilotRecover,
  isPilotRestore,
  isPilotSuperuser,
  keeperId,
  nexusId,
  pilotRecoverId,
  pilotRestoreId,
  pilotSuperuserId,
} from './identities.ts';
import type { Matcher } from './match.ts';
import { parseSpiffeId, parseTrustDomain } from './spiffe_id.ts';

const td = parseTrustDomain('example.org');
const other = parseTrustDomain('example.com');

describe('broker identities', () => {
  test('use spike.ist as the default trust domain name, which parses', () => {
    assert.equal(DEFAULT_TRUST_DOMAIN_NAME, 'spike.ist');
    assert.equal(parseTrustDomain(DEFAULT_TRUST_DOMAIN_NAME).name, 'spike.ist');
  });

  const ids: ReadonlyArray<readonly [name: string, actual: string, expected: string]> = [
    ['nexusId', nexusId(td).toString(), 'spiffe://example.org/spike/nexus'],
    ['keeperId without a name', keeperId(td).toString(), 'spiffe://example.org/spike/keeper'],
    ['keeperId with a name', keeperId(td, '1').toString(), 'spiffe://example.org/spike/keeper/1'],
    [
      'pilotSuperuserId',
      pilotSuperuserId(td).toString(),
      'spiffe://example.org/spike/pilot/role/superuser',
    ],
    [
      'pilotRecoverId',
      pilotRecoverId(td).toString(),
      'spiffe://example.org/spike/pilot/role/recover',
    ],
    [
      'pilotRestoreId',
      pilotRestoreId(td).toString(),
      'spiffe://example.org/spike/pilot/role/restore',
    ],
    ['agentId', agentId(td).toString(), 'spiffe://example.org/spike/agent'],
  ];
  for (const [name, actual, expected] of ids) {
    test(`${name} gives ${expected}`, () => {
      assert.equal(actual, expected);
      assert.ok(parseSpiffeId(actual).isMemberOf(td));
    });
  }

  test('are equal to the same ID parsed from text', () => {
    assert.ok(nexusId(td).equals(parseSpiffeId('spiffe://example.org/spike/nexus')));
    assert.ok(!nexusId(td).equals(nexusId(other)));
  });

  test('are all distinct from one another', () => {
    const all = [
      nexusId(td),
      keeperId(td),
      pilotSuperuserId(td),
      pilotRecoverId(td),
      pilotRestoreId(td),
      agentId(td),
    ].map(String);
    assert.equal(new Set(all).size, all.length);
  });

  test('refuse a keeper name that is not exactly one valid segment', () => {
    for (const name of ['', 'a/b', '../nexus', '..', 'a b', 'k\u0435eper']) {
      assert.throws(() => keeperId(td, name), InvalidSpiffeIdError, JSON.stringify(name));
    }
  });

  test('refuse a trust domain that was never parsed', () => {
    assert.throws(() => nexusId({ name: 'evil' } as never), TypeError);
  });
});

describe('role matchers', () => {
  const roles: ReadonlyArray<
    readonly [name: string, matcher: Matcher, base: string, sibling: string]
  > = [
    ['isNexus', isNexus(td), '/spike/nexus', '/spike/nexus-evil'],
    ['isKeeper', isKeeper(td), '/spike/keeper', '/spike/keeperx/1'],
    [
      'isPilotSuperuser',
      isPilotSuperuser(td),
      '/spike/pilot/role/superuser',
      '/spike/pilot/role/superuser2',
    ],
    [
      'isPilotRecover',
      isPilotRecover(td),
      '/spike/pilot/role/recover',
      '/spike/pilot/role/recovery',
    ],
    [
      'isPilotRestore',
      isPilotRestore(td),
      '/spike/pilot/role/restore',
      '/spike/pilot/role/restorer',
    ],
  ];

  for (const [name, matcher, base, sibling] of roles) {
    test(`${name} admits ${base} and IDs under it in the same trust domain`, () => {
      assert.ok(matcher(parseSpiffeId(`spiffe://example.org${base}`)));
      assert.ok(matcher(parseSpiffeId(`spiffe://example.org${base}/instance-1`)));
    });

    test(`${name} refuses ${sibling}, the same path elsewhere, and the parent`, () => {
      assert.ok(!matcher(parseSpiffeId(`spiffe://example.org${sibling}`)));
      assert.ok(!matcher(parseSpiffeId(`spiffe://example.com${base}`)));
      assert.ok(!matcher(parseSpiffeId('spiffe://example.org/spike')));
      assert.ok(!matcher(parseSpiffeId('spiffe://example.org')));
    });

    test(`${name} describes the role for the audit log`, () => {
      assert.equal(matcher.description, `id "spiffe://example.org${base}" or under it`);
    });
  }

  test('admit only their own role', () => {
    const pilot = parseSpiffeId('spiffe://example.org/spike/pilot/role/superuser');
    assert.ok(isPilotSuperuser(td)(pilot));
    assert.ok(!isPilotRecover(td)(pilot));
    assert.ok(!isPilotRestore(td)(pilot));
    assert.ok(!isNexus(td)(pilot));
    assert.ok(!isKeeper(td)(pilot));
  });

  test('never admit the agent identity', () => {
    const agent = agentId(td);
    for (const [, matcher] of roles) {
      assert.ok(!matcher(agent));
    }
  });

  test('admit a named keeper built by keeperId', () => {
    assert.ok(isKeeper(td)(keeperId(td, 'keeper-2')));
    assert.ok(!isKeeper(other)(keeperId(td, 'keeper-2')));
  });
});
