import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClient, run } from './_testing.ts';

describe('spike operator keyring and rotate-data-key', () => {
  test('keyring shows terms, rows per term and the sweep; JSON is the answer as it came', async () => {
    const client = new FakeClient();
    const human = await run(['operator', 'keyring'], { client });
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /Active term: 2/);
    assert.match(human.stdout, /^ {2}1 {2}created with the keyring {2}rows: 40$/m);
    assert.match(human.stdout, /Sweep: sweeping, 40 rows left under older terms/);
    const json = await run(['operator', 'keyring', '-f', 'json'], { client });
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), client.keyring);
    assert.deepEqual(
      client.calls.map((call) => call.method),
      ['keyringStatus', 'keyringStatus'],
    );
  });

  test('rotate-data-key prints the new term, as text or JSON', async () => {
    const client = new FakeClient();
    const human = await run(['operator', 'rotate-data-key'], { client });
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /Rotated the data key: term 3/);
    const json = await run(['operator', 'rotate-data-key', '-f', 'json'], { client });
    assert.equal(JSON.parse(json.stdout).term.term, 3);
  });
});
