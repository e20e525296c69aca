/**
 * A cache of what a secret read finds in the database, as it is stored:
 * the path's metadata row and version rows with their CIPHERTEXT (and the
 * sealed custom metadata). Never plaintext: `get()` still opens the data on
 * every read, so the cache holds nothing that is not already encrypted at
 * rest (ADR 0018). It sits below the access check, inside the store, so no
 * authorisation decision depends on it.
 *
 * Shape. Least recently used first, one entry per path: its metadata row and
 * the version rows read so far. A read of the current version is served by
 * the row of `metadata.currentVersion`; a read of an explicit version by that
 * row, or by the metadata alone when the version is outside
 * oldest..current (the store keeps exactly that range, so such a version has
 * no row). Bounded by entries (paths) and by bytes (ciphertext, custom
 * metadata and a fixed estimate per path and per version); 0 for either
 * disables the cache.
 *
 * Invalidation. Every write calls `changed(path)` once it has committed, and
 * a change feed calls it for writes of other processes. A read that missed
 * takes a `ticket()` before it queries the database and hands it back to
 * `fill()`: a fill whose ticket predates any `changed()` or `clear()` is
 * dropped, so a row read before a write committed is never inserted after
 * that write evicted its path. (The epoch is one counter for all paths:
 * writes are rare, and a dropped fill costs only the next read's query.)
 *
 * Admission. A miss is kept only for a path that already missed recently
 * (its hash is in the last `maxEntries` misses' set): a path read once, as
 * in a scan or a uniform sweep over more paths than the cache holds, is
 * never kept. Keeping every miss measured +50 to +85 MiB of resident memory
 * on a uniform read over 100,000 paths with 10,000 entries, the heap
 * growing with entries that were promoted and then evicted, for no gain in
 * throughput; a hot path is kept from its second read (docs/performance.md).
 *
 * Serving gate. `isServing` (default: always) lets a change feed stop the
 * cache while it cannot vouch that it has delivered every change (the
 * PostgreSQL feed's heartbeat, `postgres/change_feed.ts`): lookups then miss
 * and fills are dropped, so reads go to the database.
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';
import type { MetadataRow, SealedVersionRow } from './_secret_rules.ts';

/**
 * What a read of one version finds: the path's metadata row and the wanted
 * version's row, undefined when that version has no row.
 */
export interface SealedRead {
  readonly metadata: MetadataRow;
  readonly row: SealedVersionRow | undefined;
}

export interface SealedRowCacheLimits {
  /** Paths held at most; 0 disables the cache. */
  readonly maxEntries: number;
  /** Bytes held at most (sealed data and the per-row estimates); 0 disables the cache. */
  readonly maxBytes: number;
}

/** A few thousand hot paths: the hot set of most deployments, well inside the memory goal. */
export const DEFAULT_CACHE_ENTRIES = 10_000;
export const DEFAULT_CACHE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_CACHE_LIMITS: SealedRowCacheLimits = Object.freeze({
  maxEntries: DEFAULT_CACHE_ENTRIES,
  maxBytes: DEFAULT_CACHE_BYTES,
});

/** What one path's entry costs besides its bytes: the objects and the map slot (estimated). */
const PATH_OVERHEAD_BYTES = 256;
/** What one cached version row costs besides its ciphertext (estimated). */
const VERSION_OVERHEAD_BYTES = 128;

interface PathEntry {
  readonly metadata: MetadataRow;
  readonly versions: Map<number, SealedVersionRow>;
  bytes: number;
}

export interface SealedRowCacheOptions {
  /** Whether lookups may be answered (and fills kept) right now. Default: always. */
  readonly isServing?: () => boolean;
}

export class SealedRowCache {
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #isServing: () => boolean;
  /** Paths, least recently used first (a Map iterates in insertion order). */
  readonly #entries = new Map<SecretPath, PathEntry>();
  #bytes = 0;
  #epoch = 0;
  /** Hashes of the paths that missed recently (see "Admission"); numbers, so nothing is allocated per miss. */
  #missed = new Set<number>();

  constructor(limits: SealedRowCacheLimits, options: SealedRowCacheOptions = {}) {
    for (const [name, value] of Object.entries(limits)) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(`Expected ${name} to be an integer >= 0, got ${value}`);
      }
    }
    this.#maxEntries = limits.maxEntries;
    this.#maxBytes = limits.maxBytes;
    this.#isServing = options.isServing ?? (() => true);
  }

  /** Whether the limits allow anything at all. */
  get isEnabled(): boolean {
    return this.#maxEntries > 0 && this.#maxBytes > 0;
  }

  /** Paths held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held now, as counted against `maxBytes`. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * What a read of `version` (undefined: the current one) of `path` would
   * find, or undefined when the cache cannot say (not held, or not serving).
   */
  lookup(path: SecretPath, version: number | undefined): SealedRead | undefined {
    const entry = this.#entries.get(path);
    if (entry === undefined || !this.#isServing()) return undefined;
    const { metadata } = entry;
    const number = version ?? metadata.currentVersion;
    let row = entry.versions.get(number);
    if (row === undefined) {
      if (number >= metadata.oldestVersion && number <= metadata.currentVersion) return undefined;
      // Outside the kept range: no row, whatever the database holds.
      row = undefined;
    }
    this.#entries.delete(path);
    this.#entries.set(path, entry);
    return { metadata, row };
  }

  /**
   * What `query` finds for a read of `version` (undefined: the current one)
   * of `path`: from the cache when it holds it, else from `query`, kept for
   * the next read unless a change was reported meanwhile (the ticket).
   */
  async read(
    path: SecretPath,
    version: number | undefined,
    query: () => Promise<SealedRead | undefined>,
  ): Promise<SealedRead | undefined> {
    if (!this.isEnabled) return await query();
    const held = this.lookup(path, version);
    if (held !== undefined) return held;
    const ticket = this.ticket();
    const found = await query();
    if (found !== undefined && this.#admits(path)) this.fill(ticket, path, found);
    return found;
  }

  /** Whether a miss of `path` is worth keeping: it missed recently before (see "Admission"). */
  #admits(path: SecretPath): boolean {
    const hash = hashOf(path);
    if (this.#missed.has(hash)) return true;
    if (this.#missed.size >= this.#maxEntries) this.#missed.clear();
    this.#missed.add(hash);
    return false;
  }

  /** Taken before a read queries the database; hand it to `fill()`. */
  ticket(): number {
    return this.#epoch;
  }

  /**
   * Keeps what a read found, unless a change was reported since `ticket`
   * was taken (the row may predate it) or the cache is not serving.
   */
  fill(ticket: number, path: SecretPath, found: SealedRead): void {
    if (!this.isEnabled || ticket !== this.#epoch || !this.#isServing()) return;
    let entry = this.#entries.get(path);
    if (entry !== undefined && !isSameMetadata(entry.metadata, found.metadata)) {
      // Two reads in one epoch saw different states (a write committed and
      // its change is about to be reported): keep the later one only.
      this.#remove(path, entry);
      entry = undefined;
    }
    if (entry === undefined) {
      const metadata = copyMetadata(found.metadata);
      entry = {
        metadata,
        versions: new Map(),
        bytes: PATH_OVERHEAD_BYTES + 2 * path.length + (metadata.customMetadata?.length ?? 0),
      };
      this.#bytes += entry.bytes;
    } else {
      this.#entries.delete(path);
    }
    this.#entries.set(path, entry);
    const row = found.row;
    if (row !== undefined && !entry.versions.has(row.version)) {
      const copy = Object.freeze({
        version: row.version,
        createdAtMs: row.createdAtMs,
        deletedAtMs: row.deletedAtMs,
        destroyed: row.destroyed,
        ciphertext: row.ciphertext === null ? null : row.ciphertext.slice(),
        keyTerm: row.keyTerm,
      });
      const cost = VERSION_OVERHEAD_BYTES + (copy.ciphertext?.length ?? 0);
      entry.versions.set(row.version, copy);
      entry.bytes += cost;
      this.#bytes += cost;
    }
    if (entry.bytes > this.#maxBytes) {
      this.#remove(path, entry);
    }
    this.#shrink();
  }

  /** `path` changed (a write committed): forget it, and drop fills under way. */
  changed(path: SecretPath): void {
    this.#epoch += 1;
    const entry = this.#entries.get(path);
    if (entry !== undefined) this.#remove(path, entry);
  }

  /** Anything may have changed (a change feed reconnected): forget everything. */
  clear(): void {
    this.#epoch += 1;
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** Evicts the least recently used paths until both limits hold. */
  #shrink(): void {
    for (const [path, entry] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) return;
      this.#remove(path, entry);
    }
  }

  #remove(path: SecretPath, entry: PathEntry): void {
    this.#entries.delete(path);
    this.#bytes -= entry.bytes;
  }
}

/** A metadata row the cache owns, its sealed custom metadata copied. */
function copyMetadata(row: MetadataRow): MetadataRow {
  return Object.freeze({
    createdAtMs: row.createdAtMs,
    updatedAtMs: row.updatedAtMs,
    currentVersion: row.currentVersion,
    oldestVersion: row.oldestVersion,
    maxVersions: row.maxVersions,
    customMetadata: row.customMetadata === null ? null : row.customMetadata.slice(),
    metadataKeyTerm: row.metadataKeyTerm,
  });
}

function isSameMetadata(a: MetadataRow, b: MetadataRow): boolean {
  if (
    a.currentVersion !== b.currentVersion ||
    a.oldestVersion !== b.oldestVersion ||
    a.updatedAtMs !== b.updatedAtMs ||
    a.createdAtMs !== b.createdAtMs ||
    a.maxVersions !== b.maxVersions ||
    a.metadataKeyTerm !== b.metadataKeyTerm
  ) {
    return false;
  }
  const x = a.customMetadata;
  const y = b.customMetadata;
  if (x === null || y === null) return x === y;
  return x.length === y.length && x.every((byte, i) => byte === y[i]);
}

/** FNV-1a over the path's UTF-16 code units: a collision only admits a path one read early. */
function hashOf(path: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) {
    hash = Math.imul(hash ^ path.charCodeAt(i), 0x01000193);
  }
  return hash | 0;
}

/** The cache of a store built without one: holds nothing. */
export const NO_CACHE = new SealedRowCache({ maxEntries: 0, maxBytes: 0 });
