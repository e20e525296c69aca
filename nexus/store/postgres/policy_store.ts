/**
 * PolicyStore on PostgreSQL (drizzle + pg). Every operation is one SQL
 * statement, so it is atomic against any other Nexus process on the same
 * database. Rows are written and read through the shared `_policy_rows.ts`,
 * so both backends store and check policies alike.
 */
import { asc, eq, sql } from 'drizzle-orm';
import { type PolicyDocument, parsePolicyDocument } from '../../../shared/api/policies.ts';
import { InternalError } from '../../../shared/errors/errors.ts';
import { policyRule, toStoredPolicy } from '../_policy_rows.ts';
import type { PolicyStore, PolicyStoreOptions, StoredPolicy } from '../policy_store.ts';
import type { PgDb } from './db.ts';
import { policies } from './schema.ts';

export class PgPolicyStore implements PolicyStore {
  readonly #db: PgDb;
  readonly #now: () => number;

  /** Uses `db` without owning it: whoever opened the database closes it. */
  constructor(db: PgDb, options: PolicyStoreOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
  }

  async list(): Promise<StoredPolicy[]> {
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    const rows = await this.#db
      .select()
      .from(policies)
      .orderBy(asc(sql`${policies.name} COLLATE "C"`));
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
