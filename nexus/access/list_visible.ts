/**
 * One page of a listing, holding only the paths the caller may list, at a
 * cost that follows what the caller may see rather than what the store holds.
 *
 * The access checker says where the paths the caller may list can lie (the
 * reach of each policy that grants it `list`: the literal segments of its
 * pattern before the first wildcard). Those reaches, narrowed to the
 * requested prefix and merged, become the store ranges this reads, in path
 * order: a path granted exactly is looked up (`listExisting`), a subtree is
 * paged through (`list`). So a caller that may list nothing costs no store
 * query at all, and one granted a few paths under a large subtree reads
 * those few rows. Only the superuser and patterns that start with a wildcard
 * reach everywhere, and they may see everything there.
 *
 * Every path read still goes through the access checker (never a reserved
 * `sys/` path), and the page stops once it is full. The cursor (`next`) is
 * always a path of the answer, so it names only paths the caller may list.
 * Store queries ask for one page, which is all it takes when the caller may
 * list everything there; once some path read was hidden, they read
 * `MAX_LIST_LIMIT` paths at a time.
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';
import { MAX_LIST_LIMIT } from '../../shared/api/secrets.ts';
import type { SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import type { SecretStore } from '../store/secret_store.ts';
import { type AccessChecker, isReservedPath } from './check_access.ts';
import type { PathReach } from './pattern.ts';

export interface ListVisibleSources {
  readonly store: Pick<SecretStore, 'list' | 'listExisting'>;
  readonly access: Pick<AccessChecker, 'isAllowed' | 'listReach'>;
}

export interface ListVisibleQuery {
  readonly peer: SpiffeId;
  /** Only paths under this prefix (already parsed; `''` for all). */
  readonly prefix: string;
  /** At most this many paths (1..`MAX_LIST_LIMIT`). */
  readonly limit: number;
  /** Continue after this path (the `next` of the previous page). */
  readonly after?: SecretPath | undefined;
}

export interface VisiblePage {
  readonly paths: readonly SecretPath[];
  /** The last path of `paths` when more visible ones may follow; absent on the last page. */
  readonly next?: SecretPath;
}

/**
 * A store range: one path looked up (`path`), or a store prefix paged
 * through (`prefix`, in the grammar of `SecretStore.list`).
 */
type StoreRange = { readonly path: SecretPath } | { readonly prefix: '' | `${string}/` };

export async function listVisible(
  sources: ListVisibleSources,
  query: ListVisibleQuery,
): Promise<VisiblePage> {
  const { store, access } = sources;
  const { peer, prefix, limit } = query;
  const ranges = storeRanges(access.listReach(peer), prefix, query.after);
  let after = query.after;
  const paths: SecretPath[] = [];
  let chunk = limit;
  for (let index = 0; index < ranges.length; ) {
    let found: readonly SecretPath[];
    const range = ranges[index] as StoreRange;
    if ('path' in range) {
      // A run of paths granted one by one: one lookup for up to a chunk of them.
      const run = leadingPaths(ranges, index, chunk);
      index += run.length;
      found = await store.listExisting(run);
    } else {
      const page = await store.list(range.prefix, {
        limit: chunk,
        ...(after === undefined ? {} : { after }),
      });
      found = page.paths;
      if (page.next === undefined) {
        index += 1;
      } else {
        after = page.next;
      }
    }
    let read = 0;
    for (; read < found.length && paths.length < limit; read++) {
      const path = found[read] as SecretPath;
      if (!isReservedPath(path) && access.isAllowed(peer, 'list', path)) {
        paths.push(path);
      } else {
        // Hidden paths here: read on in large chunks to fill the page.
        chunk = MAX_LIST_LIMIT;
      }
    }
    const hasMore = read < found.length || index < ranges.length;
    if (paths.length === limit && hasMore) {
      return { paths, next: paths[paths.length - 1] as SecretPath };
    }
  }
  return { paths };
}

/**
 * The store ranges to read, in path order and disjoint: the reaches narrowed
 * to the requested prefix, those inside another dropped, and those wholly at
 * or before `after` left out. Empty when nothing can be visible.
 */
function storeRanges(
  reaches: readonly PathReach[],
  prefix: string,
  after: SecretPath | undefined,
): StoreRange[] {
  const requested = reachOfPrefix(prefix);
  // Each narrowed reach as byte ranges: its base alone, and the subtree under
  // it (`base/` up to `base0`, as `'/' + 1` is `'0'`). They stay apart, even
  // for the store prefix `a` that covers both: siblings such as `a-b` sort
  // between `a` and `a/`, and reading them would cost what is not visible.
  const pieces: { readonly start: string; readonly isSubtree: boolean }[] = [];
  for (const reach of reaches) {
    const narrowed = intersect(reach, requested);
    if (narrowed === undefined) continue;
    if (narrowed.base === '') return [{ prefix: '' }];
    if (narrowed.self) pieces.push({ start: narrowed.base, isSubtree: false });
    if (narrowed.below) pieces.push({ start: `${narrowed.base}/`, isSubtree: true });
  }
  pieces.sort((a, b) => compare(a.start, b.start));
  const ranges: StoreRange[] = [];
  let subtree: string | undefined;
  let previous: string | undefined;
  for (const piece of pieces) {
    // Sorted by start, a piece inside an earlier subtree starts with it.
    if (subtree !== undefined && piece.start.startsWith(subtree)) continue;
    if (piece.start === previous) continue;
    previous = piece.start;
    if (piece.isSubtree) {
      subtree = piece.start;
      const end = `${piece.start.slice(0, -1)}0`;
      if (after !== undefined && after >= end) continue;
      ranges.push({ prefix: piece.start as `${string}/` });
    } else if (after === undefined || piece.start > after) {
      ranges.push({ path: piece.start as SecretPath });
    }
  }
  return ranges;
}

/** The paths of the path ranges from `start` on, at most `max` of them. */
function leadingPaths(ranges: readonly StoreRange[], start: number, max: number): SecretPath[] {
  const run: SecretPath[] = [];
  for (let index = start; index < ranges.length && run.length < max; index++) {
    const range = ranges[index] as StoreRange;
    if (!('path' in range)) break;
    run.push(range.path);
  }
  return run;
}

/** A checked list prefix as a reach: `''` everywhere, `a/` under a, `a` also a itself. */
function reachOfPrefix(prefix: string): PathReach {
  if (prefix === '') return { base: '', self: false, below: true };
  return prefix.endsWith('/')
    ? { base: prefix.slice(0, -1), self: false, below: true }
    : { base: prefix, self: true, below: true };
}

/** The paths two reaches share, as a reach; undefined when none. */
function intersect(a: PathReach, b: PathReach): PathReach | undefined {
  if (a.base === '') return b;
  if (b.base === '') return a;
  if (a.base === b.base) {
    const self = a.self && b.self;
    const below = a.below && b.below;
    return self || below ? { base: a.base, self, below } : undefined;
  }
  if (a.base.startsWith(`${b.base}/`)) return b.below ? a : undefined;
  if (b.base.startsWith(`${a.base}/`)) return a.below ? b : undefined;
  return undefined;
}

/** Byte order, that of the stores (paths are ASCII). */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
