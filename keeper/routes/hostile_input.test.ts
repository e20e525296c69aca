/**
 * Hostile input on every route of the Keeper, property-based (fast-check),
 * through the whole app (`createApp`) with a real ShardHolder and Nexus as
 * the injected peer (the only caller the routes admit). Each generated
 * request is malformed in one known way and must get what
 * `assertRefused` in test/harness/hostile.ts asserts (the specific 4xx and
 * error code, no-store, one audit event, nothing echoed or logged), and
 * leave the held shards untouched: the holder's mutating methods are never
 * even called.
 *
 * The routes are read from `app.routes`: a route added later fails the
 * coverage test until it has a generator here.
 *
 * Replay a failure with `FC_SEED=<seed>` (and `FC_RUNS=<n>` for more runs).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { shardToWire } from '../../shared/api/keeper.ts';
import { PATHS } from '../../shared/api/paths.ts';
import {
  MAX_GENERATION,
  MAX_SHARES,
  SHARD_VALUE_BYTES,
  type Shard,
} from '../../shared/crypto/shard.ts';
import { createMemoryAuditSink } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { nexusId } from '../../shared/spiffe/identities.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import * as hostile from '../../test/harness/hostile.ts';
import { createApp, KEEPER_MAX_BODY_BYTES } from '../app.ts';
import { ShardHolder } from '../shard_holder.ts';

const TD = parseTrustDomain('keeper.test');
const NEXUS = nexusId(TD);
const FC = hostile.fcParameters('keeper', 60);

/** A holder that records every call that could change it. */
class WatchedHolder extends ShardHolder {
  readonly changes: string[] = [];
  override store(shard: Shard) {
    this.changes.push('store');
    return super.store(shard);
  }
  override prune(keepFrom: number) {
    this.changes.push('prune');
    return super.prune(keepFrom);
  }
  override clear() {
    this.changes.push('clear');
    super.clear();
  }
}

function shardValue(seed: number): Uint8Array {
  return Uint8Array.from({ length: SHARD_VALUE_BYTES }, (_, i) => (seed * 31 + i * 7 + 3) & 255);
}

const HELD: readonly Shard[] = [
  { generation: 1, index: 2, threshold: 2, value: shardValue(1) },
  { generation: 2, index: 2, threshold: 2, value: shardValue(2) },
];

function keeperApp() {
  const logSink = createMemorySink();
  const logger = createLogger({ component: 'keeper', level: 'debug', sink: logSink });
  const holder = new WatchedHolder({ logger });
  for (const shard of HELD) holder.store({ ...shard, value: shard.value.slice() });
  holder.changes.length = 0;
  const audit = createMemoryAuditSink();
  const app = createApp({
    getPeer: hostile.injectedPeer(() => NEXUS),
    logger,
    trustDomain: TD,
    holder,
    auditSink: audit,
  });
  return {
    app,
    audit,
    logSink,
    send: (target: string, init: RequestInit) => hostile.send(app, target, init),
    snapshot(): string {
      return JSON.stringify({
        shards: holder.list().map((shard) => ({ ...shard, value: [...shard.value] })),
        changes: holder.changes,
      });
    },
  };
}

const GOOD_SHARD = shardToWire({ generation: 3, index: 2, threshold: 2, value: shardValue(3) });

/** Shard bytes in base64 as the wire carries them, never to be answered or logged. */
const NEVER_SAID = [...HELD.map((shard) => shardToWire(shard).shard), GOOD_SHARD.shard];

const GENERIC: hostile.GenericOptions = {
  bodyLimit: KEEPER_MAX_BODY_BYTES,
  oversizedUpTo: 16,
  maxNesting: 600,
  brokenJson: ['{"generation":', "{'keepFrom':1}", '{"keepFrom":1,}', '{keepFrom:1}'],
  suffixes: true,
};

/** `shard` values that are not canonical padded base64 of exactly 33 bytes. */
const badShardBytes = fc.oneof(
  hostile.notAString('AAAA').map((value) => JSON.stringify(value)),
  fc.constantFrom(
    '""',
    '"="',
    '"===="',
    '"AAAA"',
    // 33 bytes are 44 characters without padding; these are near misses.
    JSON.stringify('A'.repeat(43)),
    JSON.stringify(`${'A'.repeat(43)}=`),
    JSON.stringify(`${'A'.repeat(44)}==`),
    JSON.stringify(`${'A'.repeat(40)}AA==`),
    JSON.stringify(`${'-'.repeat(44)}`),
    JSON.stringify(`${'_'.repeat(44)}`),
    JSON.stringify(` ${'A'.repeat(44)}`),
    JSON.stringify(`${'A'.repeat(22)}\n${'A'.repeat(22)}`),
    JSON.stringify(`${'A'.repeat(43)}\u00e9`),
    JSON.stringify(`${'A'.repeat(43)}\u0000`),
  ),
  // The right length, with a character outside the alphabet.
  fc
    .tuple(fc.nat({ max: 43 }), fc.constantFrom('-', '_', '.', ' ', '%', '\u0000', '\u00c0', '='))
    .map(([at, char]) => JSON.stringify(`${'A'.repeat(at)}${char}${'A'.repeat(43 - at)}`)),
  // Valid base64 of the wrong number of bytes.
  fc
    .uint8Array({ maxLength: 80 })
    .filter((bytes) => bytes.length !== SHARD_VALUE_BYTES)
    .map((bytes) => JSON.stringify(shardToWire({ ...HELD[0], value: bytes } as Shard).shard)),
);

function specs(): Record<string, hostile.RouteSample> {
  const put = (kind: string, body: string) =>
    hostile.jsonCase(kind, 'PUT', PATHS.keeperShards, body);
  const prune = (kind: string, body: string) =>
    hostile.jsonCase(kind, 'POST', PATHS.keeperPrune, body);
  return {
    [`GET ${PATHS.health}`]: { target: PATHS.health },
    [`GET ${PATHS.keeperShards}`]: { target: PATHS.keeperShards },
    [`GET ${PATHS.keeperGenerations}`]: { target: PATHS.keeperGenerations },
    [`PUT ${PATHS.keeperShards}`]: {
      target: PATHS.keeperShards,
      body: GOOD_SHARD,
      specific: fc.oneof(
        hostile
          .badIntegerText(1, MAX_GENERATION)
          .map((n) => put(`generation ${n}`, hostile.withMember(GOOD_SHARD, 'generation', n))),
        hostile
          .badIntegerText(1, MAX_SHARES)
          .map((n) => put(`index ${n}`, hostile.withMember(GOOD_SHARD, 'index', n))),
        hostile
          .badIntegerText(2, MAX_SHARES)
          .map((n) => put(`threshold ${n}`, hostile.withMember(GOOD_SHARD, 'threshold', n))),
        badShardBytes.map((text) =>
          put(`shard ${text.slice(0, 50)}`, hostile.withMember(GOOD_SHARD, 'shard', text)),
        ),
        fc
          .constantFrom('generation', 'index', 'threshold', 'shard')
          .map((missing) =>
            put(`missing ${missing}`, JSON.stringify({ ...GOOD_SHARD, [missing]: undefined })),
          ),
        hostile
          .unknownField(['generation', 'index', 'threshold', 'shard'])
          .map((name) =>
            put(`unknown field ${JSON.stringify(name)}`, hostile.withMember(GOOD_SHARD, name, '1')),
          ),
      ),
    },
    [`POST ${PATHS.keeperPrune}`]: {
      target: PATHS.keeperPrune,
      body: { keepFrom: 2 },
      specific: fc.oneof(
        hostile
          .badIntegerText(1, MAX_GENERATION)
          .map((n) => prune(`keepFrom ${n}`, `{"keepFrom":${n}}`)),
        fc.constant(prune('no keepFrom', '{}')),
        hostile
          .unknownField(['keepFrom'])
          .map((name) =>
            prune(
              `unknown field ${JSON.stringify(name)}`,
              hostile.withMember({ keepFrom: 2 }, name, '1'),
            ),
          ),
      ),
    },
  };
}

describe('Keeper under hostile input', () => {
  test('every route of the app has a hostile generator, and every generator a route', () => {
    hostile.assertEveryRouteCovered(
      hostile.routesOf(keeperApp().app),
      Object.keys(specs()).sort(),
      'keeper/routes/hostile_input.test.ts',
    );
  });

  test('each route answers the well-formed sample its hostile cases are made from', async () => {
    for (const [key, spec] of Object.entries(specs())) {
      const answer = await keeperApp().send(spec.target, hostile.sampleInit(key, spec));
      assert.equal(answer.status, 200, `${key}: ${answer.text.slice(0, 200)}`);
    }
  });

  for (const [key, spec] of Object.entries(specs())) {
    test(`${key}: hostile requests get a specific 4xx, change nothing and are audited once`, async () => {
      const keeper = keeperApp();
      const expected = { peer: NEXUS.toString(), never: NEVER_SAID };
      await fc.assert(
        fc.asyncProperty(hostile.hostileCases(key, spec, GENERIC), (attack) =>
          hostile.assertRefused(keeper, attack, expected),
        ),
        FC,
      );
    });
  }
});
