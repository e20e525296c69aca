/**
 * RootKeyStore on PostgreSQL (drizzle + pg). The same single statements as
 * `SqliteRootKeyStore`: each WHERE clause carries the whole decision, so every
 * operation is atomic against any other Nexus process on the same database.
 * Initialisation is decided by the primary key: of several processes
 * inserting the single row (`id = 1`) at once, PostgreSQL lets exactly one
 * insert and the others' `ON CONFLICT DO NOTHING` return no row.
 */
import { and, eq, isNotNull, isNull, lt, or, sql } from 'drizzle-orm';
import { InternalError } from '../../../shared/errors/errors.ts';
import {
  checkDate,
  checkGeneration,
  checkInitialiseRequest,
  checkOwner,
  checkRotationCommit,
  checkSealedKeyring,
} from '../_root_key_checks.ts';
import {
  explainNoCommit,
  FIRST_GENERATION,
  ROOT_KEY_ROW_ID as ROW_ID,
  toRootKeyRecord,
} from '../_root_key_rows.ts';
import type {
  InitialiseRequest,
  RootKeyRecord,
  RootKeyStore,
  RotationCommit,
} from '../root_key_store.ts';
import type { PgDb, PostgresDatabase } from './db.ts';
import { rootKey } from './schema.ts';

export class PgRootKeyStore implements RootKeyStore {
  readonly #database: PostgresDatabase;
  #isClosed = false;

  /** Takes ownership of `database`: `close()` closes it. */
  constructor(database: PostgresDatabase) {
    this.#database = database;
  }

  async read(): Promise<RootKeyRecord | undefined> {
    const rows = await this.#db().select().from(rootKey).where(eq(rootKey.id, ROW_ID)).limit(1);
    const row = rows[0];
    return row === undefined ? undefined : toRootKeyRecord(row);
  }

  async tryInitialise(request: InitialiseRequest): Promise<boolean> {
    checkInitialiseRequest(request);
    const nowMs = Date.now();
    const inserted = await this.#db()
      .insert(rootKey)
      .values({
        id: ROW_ID,
        sealedKeyring: request.sealedKeyring,
        lastGeneration: FIRST_GENERATION,
        committedGeneration: null,
        initOwner: request.owner,
        initDeadlineMs: request.deadline.getTime(),
        createdAtMs: nowMs,
        updatedAtMs: nowMs,
      })
      .onConflictDoNothing({ target: rootKey.id })
      .returning({ id: rootKey.id });
    return inserted.length === 1;
  }

  async tryTakeOver(request: InitialiseRequest, now: Date): Promise<number | undefined> {
    checkInitialiseRequest(request);
    checkDate('now', now);
    const updated = await this.#db()
      .update(rootKey)
      .set({
        sealedKeyring: request.sealedKeyring,
        lastGeneration: sql`${rootKey.lastGeneration} + 1`,
        initOwner: request.owner,
        initDeadlineMs: request.deadline.getTime(),
        updatedAtMs: Date.now(),
      })
      .where(
        and(
          eq(rootKey.id, ROW_ID),
          isNull(rootKey.committedGeneration),
          lt(rootKey.initDeadlineMs, now.getTime()),
        ),
      )
      .returning({ generation: rootKey.lastGeneration });
    return updated[0]?.generation;
  }

  async allocateGeneration(): Promise<number> {
    const updated = await this.#db()
      .update(rootKey)
      .set({ lastGeneration: sql`${rootKey.lastGeneration} + 1`, updatedAtMs: Date.now() })
      .where(eq(rootKey.id, ROW_ID))
      .returning({ generation: rootKey.lastGeneration });
    const generation = updated[0]?.generation;
    if (generation === undefined) {
      throw new InternalError('Cannot allocate a generation: the root key record does not exist');
    }
    return generation;
  }

  async commitGeneration(
    generation: number,
    owner: string,
    sealedKeyring: Uint8Array,
  ): Promise<boolean> {
    checkGeneration(generation);
    checkOwner(owner);
    checkSealedKeyring(sealedKeyring);
    // committed = GREATEST(committed, generation); GREATEST ignores NULLs.
    const updated = await this.#db()
      .update(rootKey)
      .set({
        committedGeneration: sql`GREATEST(${rootKey.committedGeneration}, ${generation}::integer)`,
        initOwner: null,
        initDeadlineMs: null,
        updatedAtMs: Date.now(),
      })
      .where(
        and(
          eq(rootKey.id, ROW_ID),
          sql`${generation}::integer <= ${rootKey.lastGeneration}`,
          or(isNotNull(rootKey.committedGeneration), eq(rootKey.initOwner, owner)),
          eq(rootKey.sealedKeyring, sealedKeyring),
        ),
      )
      .returning({ committed: rootKey.committedGeneration });
    if (updated.length === 1) return true;
    // Nothing changed: a lost race (false) or a caller's bug (throws).
    return explainNoCommit(await this.read(), generation);
  }

  async commitRotation(rotation: RotationCommit): Promise<boolean> {
    checkRotationCommit(rotation);
    const updated = await this.#db()
      .update(rootKey)
      .set({
        sealedKeyring: rotation.nextSealed,
        committedGeneration: rotation.generation,
        splitShares: rotation.shares,
        splitThreshold: rotation.threshold,
        updatedAtMs: Date.now(),
      })
      .where(
        and(
          eq(rootKey.id, ROW_ID),
          eq(rootKey.sealedKeyring, rotation.expectedSealed),
          sql`${rootKey.committedGeneration} < ${rotation.generation}::integer`,
          sql`${rotation.generation}::integer <= ${rootKey.lastGeneration}`,
        ),
      )
      .returning({ id: rootKey.id });
    if (updated.length === 1) return true;
    return explainNoCommit(await this.read(), rotation.generation);
  }

  async replaceSealedKeyring(expected: Uint8Array, next: Uint8Array): Promise<boolean> {
    checkSealedKeyring(expected);
    checkSealedKeyring(next);
    const updated = await this.#db()
      .update(rootKey)
      .set({ sealedKeyring: next, updatedAtMs: Date.now() })
      .where(
        and(
          eq(rootKey.id, ROW_ID),
          eq(rootKey.sealedKeyring, expected),
          isNotNull(rootKey.committedGeneration),
        ),
      )
      .returning({ id: rootKey.id });
    return updated.length === 1;
  }

  close(): Promise<void> {
    this.#isClosed = true;
    return this.#database.close();
  }

  #db(): PgDb {
    if (this.#isClosed) throw new InternalError('The root key store is closed');
    return this.#database.db;
  }
}
