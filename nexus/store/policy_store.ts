/**
 * Where access policies are kept. Policies are stored as written (their
 * documents, in clear: they are configuration, not secrets); compiling them
 * is the access layer's job (`nexus/access/policy_cache.ts`), so the store
 * depends on the wire contract only, never on the layer above it. The
 * implementations are `sqlite/policy_store.ts` and `postgres/policy_store.ts`.
 */
import type { PolicyDocument } from '../../shared/api/policies.ts';

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
