/**
 * Snapshots of the database (ADR 0028, docs/backup.md), superuser only.
 *
 * `GET /v1/operator/snapshot` saves: a consistent copy of the database into
 * a scratch file beside it (0600), checked as a restore would check it, then
 * unlinked while open, hashed, and streamed as a snapshot file
 * (`shared/api/snapshot.ts`). Nothing is decrypted: the copy holds the same
 * ciphertext and the keyring sealed under the root key.
 *
 * `PUT /v1/operator/snapshot` restores, online: the upload streams into a
 * scratch file through the snapshot reader (length and SHA-256 checked), the
 * database in it is checked and brought to this schema, and only then does
 * the root key manager, in its queue, replace every row in one transaction
 * (sealing Nexus first when the snapshot is sealed under another root key,
 * which needs `?force=true`). The policy cache is reloaded after. A damaged
 * or truncated file, or one that is not this broker's database, changes
 * nothing.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { Hono } from 'hono';
import { PATHS } from '../../shared/api/paths.ts';
import {
  formatSnapshotHeader,
  parseSnapshotRestoreQuery,
  type Sha256,
  SNAPSHOT_MEDIA_TYPE,
  type SnapshotHeader,
  SnapshotReader,
  type SnapshotRestoreResponse,
} from '../../shared/api/snapshot.ts';
import {
  BodyIncompleteError,
  InternalError,
  SnapshotInvalidError,
} from '../../shared/errors/errors.ts';
import { authorize } from '../../shared/http/authorize.ts';
import { maxBodyBytesOf, tooLarge } from '../../shared/http/body_limit.ts';
import type { PeerEnv } from '../../shared/http/peer.ts';
import { validateStream } from '../../shared/http/validate.ts';
import type { Logger } from '../../shared/log/logger.ts';
import { isPilotSuperuser } from '../../shared/spiffe/identities.ts';
import type { TrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import type { PolicyCache } from '../access/policy_cache.ts';
import type { RootKey } from '../root_key/root_key.ts';
import type { RootKeyManager } from '../root_key/root_key_manager.ts';
import type { SnapshotStore } from '../store/snapshot_store.ts';

export interface SnapshotRoutesDeps {
  readonly trustDomain: TrustDomain;
  /** Undefined on a backend without snapshots (PostgreSQL, memory). */
  readonly snapshots: SnapshotStore | undefined;
  readonly manager: RootKeyManager;
  readonly rootKey: RootKey;
  readonly policyCache: PolicyCache;
  readonly logger: Logger;
  readonly now?: () => Date;
}

/** What one read of the copy takes at most: the stream's chunk. */
const CHUNK_BYTES = 256 * 1024;

export function createSnapshotRoutes(deps: SnapshotRoutesDeps): Hono<PeerEnv> {
  const { logger } = deps;
  const now = deps.now ?? (() => new Date());
  const isSuperuser = isPilotSuperuser(deps.trustDomain);
  const routes = new Hono<PeerEnv>();

  routes.get(
    PATHS.operatorSnapshot,
    authorize(isSuperuser, { logger, action: 'snapshot.save' }),
    async (c) => {
      const store = snapshotsOf(deps.snapshots);
      const createdAt = now().toISOString();
      const file = await store.scratchFile();
      let handle: FileHandle;
      try {
        await store.copyTo(file);
        // A copy a restore would refuse is never handed out.
        await store.prepare(file);
        handle = await open(file, 'r');
      } finally {
        // Unlinked while open: gone from the folder now, readable until closed.
        await store.removeScratch(file);
      }
      try {
        const { size } = await handle.stat();
        const sha256 = await hashFile(handle, size);
        const head = formatSnapshotHeader({ backend: 'sqlite', createdAt, bytes: size, sha256 });
        logger.info('Snapshot: saving the database', {
          peer: c.get('peer').id.toString(),
          bytes: size,
        });
        return c.body(fileStream(handle, head, size), 200, {
          'content-type': SNAPSHOT_MEDIA_TYPE,
          'content-length': String(head.byteLength + size),
        });
      } catch (err) {
        await handle.close();
        throw err;
      }
    },
  );

  routes.put(
    PATHS.operatorSnapshot,
    authorize(isSuperuser, { logger, action: 'snapshot.restore' }),
    validateStream(SNAPSHOT_MEDIA_TYPE),
    async (c) => {
      const { force } = parseSnapshotRestoreQuery(c.req.query());
      const store = snapshotsOf(deps.snapshots);
      const file = await store.scratchFile();
      try {
        const header = await receiveSnapshot(c.req.raw.body, file, maxBodyBytesOf(c));
        const record = await store.prepare(file);
        const { sameKey } = await deps.manager.replaceStore(record, force, () =>
          store.replaceWith(file),
        );
        await deps.policyCache.reload();
        const body: SnapshotRestoreResponse = {
          createdAt: header.createdAt,
          bytes: header.bytes,
          sameKey,
          state: deps.rootKey.state,
        };
        logger.warn('Snapshot: restored the database', {
          peer: c.get('peer').id.toString(),
          createdAt: header.createdAt,
          bytes: header.bytes,
          sameKey,
          state: body.state,
        });
        return c.json(body);
      } finally {
        await store.removeScratch(file);
      }
    },
  );

  return routes;
}

function snapshotsOf(store: SnapshotStore | undefined): SnapshotStore {
  if (store === undefined) {
    throw new SnapshotInvalidError(
      'This Nexus keeps no database file to snapshot: on PostgreSQL use pg_dump and pg_restore, and the memory backend keeps nothing (docs/backup.md)',
    );
  }
  return store;
}

function sha256(): Sha256 {
  const hash = createHash('sha256');
  return {
    update: (bytes) => {
      hash.update(bytes);
    },
    digestHex: () => hash.digest('hex'),
  };
}

async function hashFile(handle: FileHandle, size: number): Promise<string> {
  const hash = sha256();
  const buffer = new Uint8Array(Math.min(CHUNK_BYTES, Math.max(size, 1)));
  for (let position = 0; position < size; ) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position);
    if (bytesRead === 0) throw new InternalError('The snapshot copy ended before its size');
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digestHex();
}

/** The head, then the file read chunk by chunk as the client takes it; closes the file at the end. */
function fileStream(
  handle: FileHandle,
  head: Uint8Array,
  size: number,
): ReadableStream<Uint8Array> {
  let position = -1;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (position === -1) {
          position = 0;
          controller.enqueue(head);
          return;
        }
        if (position >= size) {
          await handle.close();
          controller.close();
          return;
        }
        const buffer = new Uint8Array(Math.min(CHUNK_BYTES, size - position));
        const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, position);
        if (bytesRead === 0) throw new InternalError('The snapshot copy ended before its size');
        position += bytesRead;
        controller.enqueue(buffer.subarray(0, bytesRead));
      } catch (err) {
        await handle.close().catch(() => undefined);
        controller.error(err);
      }
    },
    async cancel() {
      await handle.close();
    },
  });
}

/**
 * Streams an upload into `path` through the snapshot reader: the body's
 * parts are written as they arrive, and the header is returned only once
 * the length and checksum matched.
 */
async function receiveSnapshot(
  body: ReadableStream<Uint8Array> | null,
  path: string,
  maxBytes: number,
): Promise<SnapshotHeader> {
  const reader = new SnapshotReader(sha256());
  const handle = await open(path, 'w');
  const stream = body?.getReader();
  try {
    let received = 0;
    for (;;) {
      if (stream === undefined) break;
      let chunk: Awaited<ReturnType<typeof stream.read>>;
      try {
        chunk = await stream.read();
      } catch (err) {
        throw new BodyIncompleteError(undefined, { cause: err });
      }
      if (chunk.done) break;
      received += chunk.value.byteLength;
      if (received > maxBytes) throw tooLarge(maxBytes);
      for (const part of reader.push(chunk.value)) await writeAll(handle, part);
    }
    return reader.finish();
  } catch (err) {
    stream?.cancel().catch(() => undefined);
    throw err;
  } finally {
    await handle.close();
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.byteLength; ) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
    offset += bytesWritten;
  }
}
