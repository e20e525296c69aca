import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import { randomBytes } from '../../shared/crypto/bytes.ts';
import { DecryptionFailedError, NotReadyError } from '../../shared/errors/errors.ts';
import { withIntegrityAlarm } from './integrity_alarm.ts';
import type { KeyringAccess } from './secret_store.ts';
import { openMemoryDatabase } from './sqlite/db.ts';
import { secretMetadata, secrets } from './sqlite/schema.ts';
import { SqliteSecretStore } from './sqlite/secret_store.ts';

const PATH = parseSecretPath('alarm/db');

describe('withIntegrityAlarm()', () => {
  test('sounds once per stored row that fails to open, and the read still fails as before', async () => {
    const database = await openMemoryDatabase();
    try {
      const key = randomBytes(32);
      let alarms = 0;
      const store = new SqliteSecretStore({
        database,
        keyring: withIntegrityAlarm(
          (use) => use(key, 1),
          () => (alarms += 1),
        ),
        maxVersionsDefault: 10,
      });
      await store.put(PATH, { password: 'hunter2' });
      await store.writeMetadata(PATH, { customMetadata: { owner: 'db-team' } });
      assert.deepEqual((await store.get(PATH)).data, { password: 'hunter2' });
      assert.equal(alarms, 0);

      const [row] = await database.db
        .select({ ciphertext: secrets.ciphertext })
        .from(secrets)
        .where(and(eq(secrets.path, PATH), eq(secrets.version, 1)));
      assert.ok(row?.ciphertext instanceof Uint8Array);
      const tampered = row.ciphertext.slice();
      tampered[30] = (tampered[30] as number) ^ 0x01;
      await database.db
        .update(secrets)
        .set({ ciphertext: tampered })
        .where(and(eq(secrets.path, PATH), eq(secrets.version, 1)));
      await assert.rejects(store.get(PATH), DecryptionFailedError);
      assert.equal(alarms, 1);

      // Custom metadata is a stored ciphertext too.
      await database.db
        .update(secretMetadata)
        .set({ customMetadata: randomBytes(64) })
        .where(eq(secretMetadata.path, PATH));
      await assert.rejects(store.readMetadata(PATH), DecryptionFailedError);
      assert.equal(alarms, 2);
    } finally {
      await database.close();
    }
  });

  test('stays silent while sealed and for errors that are not a failed authentication', () => {
    let alarms = 0;
    const sealed = withIntegrityAlarm(
      () => {
        throw new NotReadyError();
      },
      () => (alarms += 1),
    );
    assert.throws(() => sealed(() => 1), NotReadyError);
    const plain: KeyringAccess = withIntegrityAlarm(
      (use) => use(randomBytes(32), 1),
      () => (alarms += 1),
    );
    assert.throws(
      () =>
        plain(() => {
          throw new RangeError('not an integrity failure');
        }),
      RangeError,
    );
    assert.equal(
      plain(() => 'opened'),
      'opened',
    );
    assert.equal(alarms, 0);
  });
});
