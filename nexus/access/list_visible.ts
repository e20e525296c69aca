/**
 * One page of a listing, holding only the paths the caller may list. The
 * store pages through every path under the prefix; this walks those pages,
 * keeps what the access checker admits (never a reserved `sys/` path), and
 * stops once the page is full.
 *
 * The cursor (`next`) is always a path of the answer, so it names only
 * paths the caller may list. The first store query asks for one page, which
 * is all it takes when the caller may list everything there; later ones read
 * `MAX_LIST_LIMIT` paths at a time, so the cost is one query per thousand
 * paths under the prefix that the caller may not list.
 */
import type { SecretPath } from '../../shared/api/secret_path.ts';
import { MAX_LIST_LIMIT } from '../../shared/api/secrets.ts';
import type { SpiffeId } from '../../shared/spiffe/spiffe_id.ts';
import type { SecretStore } from '../store/secret_store.ts';
import { type AccessChecker, isReservedPath } from './check_access.ts';

export interface ListVisibleSources {
  readonly store: Pick<SecretStore, 'list'>;
  readonly access: Pick<AccessChecker, 'isAllowed'>;
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

export async function listVisible(
  sources: ListVisibleSources,
  query: ListVisibleQuery,
): Promise<VisiblePage> {
  const { store, access } = sources;
  const { peer, prefix, limit } = query;
  let after = query.after;
  const paths: SecretPath[] = [];
  for (let chunk = limit; ; chunk = MAX_LIST_LIMIT) {
    const found = await store.list(prefix, {
      limit: chunk,
      ...(after === undefined ? {} : { after }),
    });
    let index = 0;
    for (; index < found.paths.length && paths.length < limit; index++) {
      const path = found.paths[index] as SecretPath;
      if (!isReservedPath(path) && access.isAllowed(peer, 'list', path)) {
        paths.push(path);
      }
    }
    const hasMore = index < found.paths.length || found.next !== undefined;
    if (paths.length === limit && hasMore) {
      return { paths, next: paths[paths.length - 1] as SecretPath };
    }
    if (found.next === undefined) {
      return { paths };
    }
    after = found.next;
  }
}
