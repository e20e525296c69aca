/**
 * PolicyStore in memory, with the same semantics as SqlitePolicyStore, for
 * tests (the `memory` backend is SQLite in memory). Each operation reads and
 * changes the map in one synchronous step, as atomic as the SQL statement it
 * stands for. Every read returns fresh objects, so no caller can change a
 * stored policy through a reference it holds.
 */
import { type PolicyDocument, parsePolicyDocument } from '../../../shared/api/policies.ts';
import type { PolicyStore, PolicyStoreOptions, StoredPolicy } from '../policy_store.ts';

interface Entry {
  readonly document: PolicyDocument;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
}

export class MemoryPolicyStore implements PolicyStore {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(options: PolicyStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  list(): Promise<StoredPolicy[]> {
    const names = [...this.#entries.keys()].sort(compareBytes);
    return Promise.resolve(names.map((name) => toStoredPolicy(this.#entries.get(name) as Entry)));
  }

  get(name: string): Promise<StoredPolicy | undefined> {
    const entry = this.#entries.get(name);
    return Promise.resolve(entry === undefined ? undefined : toStoredPolicy(entry));
  }

  upsert(policy: PolicyDocument): Promise<StoredPolicy> {
    try {
      const document = parsePolicyDocument(policy);
      const nowMs = this.#now();
      const entry: Entry = {
        document,
        createdAtMs: this.#entries.get(document.name)?.createdAtMs ?? nowMs,
        updatedAtMs: nowMs,
      };
      this.#entries.set(document.name, entry);
      return Promise.resolve(toStoredPolicy(entry));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  delete(name: string): Promise<boolean> {
    return Promise.resolve(this.#entries.delete(name));
  }
}

function toStoredPolicy(entry: Entry): StoredPolicy {
  return Object.freeze({
    ...entry.document,
    permissions: [...entry.document.permissions],
    createdAt: new Date(entry.createdAtMs),
    updatedAt: new Date(entry.updatedAtMs),
  });
}

/** Byte order for ASCII names, as SQLite's BINARY collation sorts them. */
function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
