/**
 * The snapshot file of Nexus's database (`GET`/`PUT /v1/operator/snapshot`,
 * `spike operator snapshot`): a first line that says what the file is, a
 * header line of JSON, then the database's bytes exactly as the header
 * counts them:
 *
 *   spike-ts snapshot v1\n
 *   {"backend":"sqlite","createdAt":"…","bytes":N,"sha256":"<64 hex>"}\n
 *   <N bytes: the SQLite database, every secret in it still sealed>
 *
 * The header comes first so that a reader knows the length before the body:
 * a file that ends early is "truncated", one with more bytes is refused too,
 * and the SHA-256 of the body is checked once the last byte is in, before
 * anything is restored. The checksum finds damage, not tampering: whoever can
 * write the file can write a matching header (the data inside is sealed under
 * the keyring either way, and a restore needs that broker's root key).
 *
 * `SnapshotReader` checks a file as it streams, chunk by chunk, so neither
 * Nexus nor Pilot holds it whole. The hash is handed in (`node:crypto` in the
 * programs), which keeps this file free of any runtime API.
 */
import { InvalidRequestError, SnapshotCorruptError } from '../errors/errors.ts';

/** The first line of every snapshot file (version 1 of the format). */
export const SNAPSHOT_MAGIC = 'spike-ts snapshot v1\n';

/** The media type of a snapshot on the wire. */
export const SNAPSHOT_MEDIA_TYPE = 'application/octet-stream';

/** The header line is read up to this many bytes (a real one is about 150). */
export const MAX_SNAPSHOT_HEADER_BYTES = 1024;

/**
 * The largest database a snapshot may carry: 1 GiB. A restore holds a copy
 * beside the live database while it checks it, and Pilot reads the answer
 * of a save into memory (docs/backup.md).
 */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;

/** The whole file at most: the body and its two first lines. */
export const MAX_SNAPSHOT_FILE_BYTES =
  MAX_SNAPSHOT_BYTES + SNAPSHOT_MAGIC.length + MAX_SNAPSHOT_HEADER_BYTES;

/** The backends whose database a snapshot can carry. */
export const SNAPSHOT_BACKENDS = ['sqlite'] as const;
export type SnapshotBackend = (typeof SNAPSHOT_BACKENDS)[number];

export interface SnapshotHeader {
  readonly backend: SnapshotBackend;
  /** When Nexus copied the database (ISO 8601). */
  readonly createdAt: string;
  /** The length of the body. */
  readonly bytes: number;
  /** SHA-256 of the body, 64 lowercase hex digits. */
  readonly sha256: string;
}

/** `PUT /v1/operator/snapshot?force=true`: the query of a restore. */
export interface SnapshotRestoreQuery {
  /** Restore a snapshot sealed under another root key (Nexus then seals). */
  readonly force: boolean;
}

/** `PUT /v1/operator/snapshot` → what was restored and the state Nexus is in now. */
export interface SnapshotRestoreResponse {
  /** The snapshot's `createdAt`. */
  readonly createdAt: string;
  readonly bytes: number;
  /** Whether the snapshot was sealed under this Nexus's root key. */
  readonly sameKey: boolean;
  /** `sealed` after a restore under another key, until that key comes back. */
  readonly state: 'ready' | 'sealed';
}

/** The restore's query, strictly: only `force`, only `true` or `false`. */
export function parseSnapshotRestoreQuery(
  query: Readonly<Record<string, string>>,
): SnapshotRestoreQuery {
  const unknown = Object.keys(query).filter((key) => key !== 'force');
  if (unknown.length > 0) {
    throw new InvalidRequestError(
      `The query has ${unknown.length} unknown parameter(s); its only one is "force"`,
    );
  }
  const force = query.force;
  if (force !== undefined && force !== 'true' && force !== 'false') {
    throw new InvalidRequestError('Query parameter "force" must be "true" or "false"');
  }
  return { force: force === 'true' };
}

/** What a reader needs of SHA-256: fed in order, then read once. */
export interface Sha256 {
  update(bytes: Uint8Array): void;
  digestHex(): string;
}

const HEADER_FIELDS = ['backend', 'createdAt', 'bytes', 'sha256'] as const;
const SHA256_REGEXP = /^[0-9a-f]{64}$/;
const ENCODER = new TextEncoder();
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The magic line and the header line, as the file starts. */
export function formatSnapshotHeader(header: SnapshotHeader): Uint8Array {
  const json = JSON.stringify({
    backend: header.backend,
    createdAt: header.createdAt,
    bytes: header.bytes,
    sha256: header.sha256,
  });
  return ENCODER.encode(`${SNAPSHOT_MAGIC}${json}\n`);
}

/** The header line's JSON (without its newline), strictly: every field, nothing else. */
export function parseSnapshotHeader(line: string): SnapshotHeader {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new SnapshotCorruptError('The snapshot header is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SnapshotCorruptError('The snapshot header is not a JSON object');
  }
  const fields = value as Record<string, unknown>;
  const keys = Object.keys(fields);
  if (keys.length !== HEADER_FIELDS.length || !HEADER_FIELDS.every((key) => key in fields)) {
    throw new SnapshotCorruptError(
      `The snapshot header must have exactly the fields ${HEADER_FIELDS.join(', ')}`,
    );
  }
  const { backend, createdAt, bytes, sha256 } = fields;
  if (typeof backend !== 'string' || !(SNAPSHOT_BACKENDS as readonly string[]).includes(backend)) {
    throw new SnapshotCorruptError(
      `The snapshot header's backend must be one of ${SNAPSHOT_BACKENDS.join(', ')}`,
    );
  }
  if (typeof createdAt !== 'string' || Number.isNaN(Date.parse(createdAt))) {
    throw new SnapshotCorruptError("The snapshot header's createdAt must be an ISO 8601 time");
  }
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 1) {
    throw new SnapshotCorruptError("The snapshot header's bytes must be a positive integer");
  }
  if (bytes > MAX_SNAPSHOT_BYTES) {
    throw new SnapshotCorruptError(
      `The snapshot declares ${bytes} bytes, more than the limit of ${MAX_SNAPSHOT_BYTES}`,
    );
  }
  if (typeof sha256 !== 'string' || !SHA256_REGEXP.test(sha256)) {
    throw new SnapshotCorruptError("The snapshot header's sha256 must be 64 lowercase hex digits");
  }
  return { backend: backend as SnapshotBackend, createdAt, bytes, sha256 };
}

/**
 * Checks a snapshot file as it arrives. `push()` each chunk in order; it
 * returns the parts of the body in that chunk (to write on), and throws
 * `SnapshotCorruptError` as soon as the start is not a snapshot's or bytes
 * go past the declared length. `finish()` after the last chunk: it throws
 * when the file ended early or its checksum does not match, else returns
 * the header. Nothing is trusted before `finish()` returned.
 */
export class SnapshotReader {
  readonly #hash: Sha256;
  /** The bytes before the body, kept until the header line is whole. */
  #head: Uint8Array = new Uint8Array(0);
  #header: SnapshotHeader | undefined;
  #bodyBytes = 0;

  constructor(hash: Sha256) {
    this.#hash = hash;
  }

  /** The header, once its line was read. */
  get header(): SnapshotHeader | undefined {
    return this.#header;
  }

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.#header === undefined) {
      const head = new Uint8Array(this.#head.byteLength + chunk.byteLength);
      head.set(this.#head);
      head.set(chunk, this.#head.byteLength);
      const body = this.#readHead(head);
      if (body === undefined) {
        return [];
      }
      chunk = body;
    }
    if (chunk.byteLength === 0) {
      return [];
    }
    const header = this.#header as SnapshotHeader;
    this.#bodyBytes += chunk.byteLength;
    if (this.#bodyBytes > header.bytes) {
      throw new SnapshotCorruptError(
        `The snapshot has bytes after the ${header.bytes} its header declares`,
      );
    }
    this.#hash.update(chunk);
    return [chunk];
  }

  finish(): SnapshotHeader {
    const header = this.#header;
    if (header === undefined) {
      throw new SnapshotCorruptError(
        this.#head.byteLength === 0
          ? 'The snapshot is empty'
          : 'The snapshot is truncated: it ends inside its header',
      );
    }
    if (this.#bodyBytes < header.bytes) {
      throw new SnapshotCorruptError(
        `The snapshot is truncated: ${this.#bodyBytes} of the ${header.bytes} bytes its header declares`,
      );
    }
    if (this.#hash.digestHex() !== header.sha256) {
      throw new SnapshotCorruptError(
        "The snapshot's checksum does not match its contents: the file is damaged",
      );
    }
    return header;
  }

  /** Reads the magic and header lines from `head`; the body bytes after them, or undefined for more. */
  #readHead(head: Uint8Array): Uint8Array | undefined {
    const magic = ENCODER.encode(SNAPSHOT_MAGIC);
    const compared = Math.min(head.byteLength, magic.byteLength);
    for (let i = 0; i < compared; i++) {
      if (head[i] !== magic[i]) {
        throw new SnapshotCorruptError('This is not a spike-ts snapshot (version 1)');
      }
    }
    const end = head.indexOf(0x0a, magic.byteLength);
    if (end === -1) {
      if (head.byteLength > magic.byteLength + MAX_SNAPSHOT_HEADER_BYTES) {
        throw new SnapshotCorruptError(
          `The snapshot header is longer than ${MAX_SNAPSHOT_HEADER_BYTES} bytes`,
        );
      }
      this.#head = head;
      return undefined;
    }
    let line: string;
    try {
      line = UTF8.decode(head.subarray(magic.byteLength, end));
    } catch {
      throw new SnapshotCorruptError('The snapshot header is not UTF-8');
    }
    this.#header = parseSnapshotHeader(line);
    this.#head = new Uint8Array(0);
    return head.subarray(end + 1);
  }
}
