/**
 * The policies Nexus decides with, held in memory: loaded once, served
 * synchronously to the access checker (so authorization never waits on the
 * database), and refreshed after every change made through the cache and on
 * `reload()`.
 *
 * Stored documents are compiled here. One that no longer compiles (a row
 * edited by hand, a rule tightened since) is left out and logged: a policy
 * that cannot be read grants nothing, and the others keep working.
 *
 * Changes made by another Nexus process on the same database are seen at the
 * next `reload()`; the composition root decides how often to call it.
 */
import type { Logger } from '../../shared/log/logger.ts';
import type { PolicyStore, StoredPolicy } from '../store/policy_store.ts';
import { type Policy, parsePolicy } from './policy.ts';

export interface PolicyCacheOptions {
  readonly store: PolicyStore;
  readonly logger?: Logger;
}

export class PolicyCache {
  readonly #store: PolicyStore;
  readonly #logger: Logger | undefined;
  #policies: readonly Policy[] = Object.freeze([]);
  /** Bumped by every load and local change; a load older than the last applied is dropped. */
  #sequence = 0;
  #appliedSequence = 0;

  /** An empty cache (it denies everything) until `reload()`; see `loadPolicyCache()`. */
  constructor(options: PolicyCacheOptions) {
    this.#store = options.store;
    this.#logger = options.logger;
  }

  /** The current policies, sorted by name. Synchronous and cheap. */
  policies(): readonly Policy[] {
    return this.#policies;
  }

  /** Reads every policy from the store and swaps them in at once. */
  async reload(): Promise<void> {
    const sequence = this.#nextSequence();
    const stored = await this.#store.list();
    const compiled: Policy[] = [];
    for (const document of stored) {
      const policy = this.#compile(document);
      if (policy !== undefined) compiled.push(policy);
    }
    this.#apply(sequence, compiled);
  }

  /** Creates or replaces a policy in the store, then refreshes. */
  async upsert(policy: Policy): Promise<StoredPolicy> {
    const stored = await this.#store.upsert(policy.toDocument());
    const others = this.#policies.filter((held) => held.name !== policy.name);
    this.#apply(this.#nextSequence(), [...others, policy]);
    await this.#refresh();
    return stored;
  }

  /** Removes a policy from the store, then refreshes; whether there was one. */
  async delete(name: string): Promise<boolean> {
    const isDeleted = await this.#store.delete(name);
    this.#apply(
      this.#nextSequence(),
      this.#policies.filter((held) => held.name !== name),
    );
    await this.#refresh();
    return isDeleted;
  }

  /**
   * After a change the cache already holds the change itself; the reload
   * adds what other processes did. If it fails, the write still succeeded,
   * so the failure is logged rather than reported as the write's.
   */
  async #refresh(): Promise<void> {
    try {
      await this.reload();
    } catch (err) {
      this.#logger?.warn('Cannot reload policies after a change; keeping the changed set', {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  #compile(document: StoredPolicy): Policy | undefined {
    try {
      return parsePolicy({
        name: document.name,
        spiffeIdPattern: document.spiffeIdPattern,
        pathPattern: document.pathPattern,
        permissions: [...document.permissions],
      });
    } catch (err) {
      this.#logger?.error('Ignoring a stored policy that does not compile', {
        policy: document.name,
        error: err instanceof Error ? err.message : String(err),
      });
      return undefined;
    }
  }

  #nextSequence(): number {
    this.#sequence += 1;
    return this.#sequence;
  }

  #apply(sequence: number, policies: readonly Policy[]): void {
    if (sequence <= this.#appliedSequence) return;
    this.#appliedSequence = sequence;
    this.#policies = Object.freeze(
      [...policies].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    );
  }
}

/** A cache with every stored policy loaded; a store failure here fails start-up. */
export async function loadPolicyCache(options: PolicyCacheOptions): Promise<PolicyCache> {
  const cache = new PolicyCache(options);
  await cache.reload();
  return cache;
}
