import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  AuditChain,
  ChainKey,
  NO_KEY_ID,
  newAuditKeyText,
  parseAuditKey,
  parseChainedLine,
  readFileEnd,
} from './audit_chain.ts';

const dir = mkdtempSync(join(tmpdir(), 'spike-audit-chain-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('the audit chain', () => {
  test('each MAC is HMAC-SHA256 of the MAC before and the line up to its MAC', () => {
    const key = new Uint8Array(32).fill(1);
    const chain = new AuditChain(new ChainKey(key));
    const first = chain.seal('{"a":1}');
    const second = chain.seal('{"b":"x"}');
    const mac0 = createHmac('sha256', key).update('{"a":1,"seq":0').digest('base64url');
    const mac1 = createHmac('sha256', key).update(`${mac0}{"b":"x","seq":1`).digest('base64url');
    assert.equal(first, `{"a":1,"seq":0,"mac":"${mac0}"}\n`);
    assert.equal(second, `{"b":"x","seq":1,"mac":"${mac1}"}\n`);
    assert.deepEqual(parseChainedLine(second.trimEnd())?.fields, { b: 'x', seq: 1, mac: mac1 });
  });

  test('only one JSON object ending in its seq and MAC is a chained line', () => {
    const line = new AuditChain(new ChainKey()).seal('{"a":1}').trimEnd();
    assert.notEqual(parseChainedLine(line), undefined);
    // The raw end and the parsed fields must agree; JSON takes the last of a key given twice.
    const mac = line.slice(-45, -2);
    assert.equal(parseChainedLine(`{"a":1,"mac":"x","seq":0,"mac":"${mac}"}`)?.seq, 0);
    assert.equal(parseChainedLine(`{"a":{"seq":0,"mac":"${mac}"}}`), undefined);
    assert.equal(parseChainedLine(line.replace('"seq":0', '"seq":00')), undefined);
    assert.equal(parseChainedLine('[1,"seq":0]'), undefined);
  });

  test('keys: 64 hex digits; the id names a key without giving it away; no key is "none"', () => {
    const text = newAuditKeyText();
    assert.match(text, /^[0-9a-f]{64}\n$/);
    const key = parseAuditKey(text);
    assert.equal(key.length, 32);
    assert.notEqual(newAuditKeyText(), text);
    for (const bad of ['', 'ab', 'zz'.repeat(32), `${'ab'.repeat(32)}00`]) {
      assert.throws(() => parseAuditKey(bad), /must hold 64 hex digits/);
    }
    const id = new ChainKey(key).id;
    assert.match(id, /^[A-Za-z0-9_-]{11}$/);
    assert.equal(new ChainKey(parseAuditKey(text)).id, id);
    assert.equal(new ChainKey().id, NO_KEY_ID);
    assert.equal(new ChainKey().keyed, false);
  });

  test('readFileEnd(): new, empty, chained, torn, and a FIFO (without waiting for a writer)', () => {
    assert.deepEqual(readFileEnd(join(dir, 'missing')), { previous: null, tornBytes: 0 });
    const empty = join(dir, 'empty');
    writeFileSync(empty, '');
    assert.deepEqual(readFileEnd(empty), { previous: null, tornBytes: 0 });
    const chain = new AuditChain(new ChainKey());
    const file = join(dir, 'chained');
    writeFileSync(file, chain.seal('{"a":1}') + chain.seal('{"a":2}'));
    assert.deepEqual(readFileEnd(file), { previous: { seq: 1, mac: chain.mac }, tornBytes: 0 });
    writeFileSync(file, '{"half', { flag: 'a' });
    assert.deepEqual(readFileEnd(file), { previous: { seq: 1, mac: chain.mac }, tornBytes: 6 });
    const other = join(dir, 'other');
    writeFileSync(other, 'not a chain\n');
    assert.deepEqual(readFileEnd(other), { previous: 'unknown', tornBytes: 0 });
    const fifo = join(dir, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    assert.deepEqual(readFileEnd(fifo), { previous: 'unknown', tornBytes: 0 });
  });
});
