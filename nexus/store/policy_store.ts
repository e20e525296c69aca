/**
 * Where access policies are kept, and `SqlPolicyStore`, the SQLite one
 * (drizzle + libsql). Policies are stored as written (their documents, in
 * clear: they are configuration, not secrets); compiling them is the access
 * layer's job (`nexus/access/policy_cache.ts`), so the store depends on the
 * wire contract only, never on the layer above it.
 *
 * Every operation is one SQL statement, so it is atomic against any other
 * connection or process on the same database. Outcomes come from RETURNING
 * rows, never from `rowsAffected` (libsql reports 0 with RETURNING).
 */
import { asc, eq } from 'drizzle-orm';
import { type PolicyDocument, parsePolicyDocument } from '../../shared/api/policies.ts';
import { InternalError } from '../../shared/errors/errors.ts';
import { policyRule, toStoredPolicy } from './_policy_rows.ts';
import type { SqliteDb } from './db.ts';
import { policies } from './schema.ts';

/** A policy document with its bookkeeping. */
export interface StoredPolicy extends PolicyDocument {
  /** When the policy was first created; a replace keeps it. */
  readonly createdAt: Date;
  /** The last create or replace. */
  readonly updatedAt: Date;
}

export interface PolicyStore {
  /** Every policy, sorted by name (byte order). */
  list(): Promise<StoredPolicy[]>;
  get(name: string): Promise<StoredPolicy | undefined>;
  /** Creates the policy, or replaces the one of the same name (keeping its `createdAt`). */
  upsert(policy: PolicyDocument): Promise<StoredPolicy>;
  /** Removes the policy; whether there was one. */
  delete(name: string): Promise<boolean>;
}

export interface PolicyStoreOptions {
  /** The clock for `createdAt` and `updatedAt`, in epoch milliseconds. */
  readonly now?: () => number;
}

export class SqlPolicyStore implements PolicyStore {
  readonly #db: SqliteDb;
  readonly #now: () => number;

  /** Uses `db` without owning it: whoever opened the database closes it. */
  constructor(db: SqliteDb, options: PolicyStoreOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
  }

  async list(): Promise<StoredPolicy[]> {
    const rows = await this.#db.select().from(policies).orderBy(asc(policies.name));
    return rows.map(toStoredPolicy);
  }

  async get(name: string): Promise<StoredPolicy | undefined> {
    const rows = await this.#db.select().from(policies).where(eq(policies.name, name)).limit(1);
    const row = rows[0];
    return row === undefined ? undefined : toStoredPolicy(row);
  }

  async upsert(policy: PolicyDocument): Promise<StoredPolicy> {
    const document = parsePolicyDocument(policy);
    const nowMs = this.#now();
    const rule = policyRule(document);
    const rows = await this.#db
      .insert(policies)
      .values({ name: document.name, ...rule, createdAtMs: nowMs, updatedAtMs: nowMs })
      .onConflictDoUpdate({ target: policies.name, set: { ...rule, updatedAtMs: nowMs } })
      .returning();
    const row = rows[0];
    if (row === undefined) {
      throw new InternalError(`Cannot store policy ${JSON.stringify(document.name)}`);
    }
    return toStoredPolicy(row);
  }

  async delete(name: string): Promise<boolean> {
    const rows = await this.#db
      .delete(policies)
      .where(eq(policies.name, name))
      .returning({ name: policies.name });
    return rows.length === 1;
  }
}
