/**
 * The chain of an audit file (ADR 0027). Every line ends with its sequence
 * number in its segment and a MAC that covers the line and, through the MAC
 * of the line before, every line before it in the segment:
 *
 *   {…the event…,"seq":7,"mac":"<base64url HMAC-SHA256>"}
 *   mac(n) = HMAC-SHA256(key, mac(n-1) + text(n)), mac(-1) = ""
 *
 * where text(n) is the line up to (not including) `,"mac":`. A segment is
 * what one process wrote: it starts with an `audit.open` line (seq 0) that
 * names the key it is chained under and links to the last line the file held
 * when it started, holds `audit.checkpoint` lines (every so many lines and
 * every so many seconds), and ends with `audit.close` when the process stops
 * as it should. `audit.dropped` records events that a failing sink had to
 * drop. The verifier is `audit_verify.ts`.
 *
 * The key is the operator's (a file of 64 hex digits), never in the log: the
 * log names it only by an id, so a verifier given the wrong key says so. A
 * log written without a key is chained under a public key: its MACs catch
 * damage and careless edits, not a forger.
 */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** The length of an audit key in bytes (HMAC-SHA256's block of security). */
export const AUDIT_KEY_BYTES = 32;

/** The actions of the chain's own lines; every other line is an event. */
export const AUDIT_OPEN = 'audit.open';
export const AUDIT_CHECKPOINT = 'audit.checkpoint';
export const AUDIT_CLOSE = 'audit.close';
export const AUDIT_DROPPED = 'audit.dropped';

/** The version of the chain's format, in every `audit.open` line. */
export const CHAIN_FORMAT = 1;

/** The key id of a segment written without a key. */
export const NO_KEY_ID = 'none';

/** Public by design: a log without a key is chained under these bytes. */
const NO_KEY_BYTES = new TextEncoder().encode('spike-ts audit chain v1: no key');
const KEY_ID_INPUT = 'spike-ts audit chain v1: key id';
const KEY_HEX_REGEXP = /^[0-9a-f]{64}$/i;

/** What ends every chained line: `,"mac":"` 43 base64url characters `"}`. */
const MAC_SUFFIX_REGEXP = /,"mac":"([A-Za-z0-9_-]{43})"\}$/;
/** `,"mac":"` + 43 + `"}`. */
const MAC_SUFFIX_LENGTH = 53;
const SEQ_SUFFIX_REGEXP = /,"seq":(0|[1-9]\d{0,15})$/;

/** The end of a file read to find its last line: far more than any line. */
const TAIL_BYTES = 64 * 1024;

/**
 * An audit key from the text of a key file: 64 hex digits, with blank space
 * around them allowed. The error never quotes the text.
 */
export function parseAuditKey(text: string): Uint8Array {
  const hex = text.trim();
  if (!KEY_HEX_REGEXP.test(hex)) {
    throw new Error(`must hold ${AUDIT_KEY_BYTES * 2} hex digits (${AUDIT_KEY_BYTES} bytes)`);
  }
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** A new random audit key, as the text of a key file. */
export function newAuditKeyText(): string {
  const key = crypto.getRandomValues(new Uint8Array(AUDIT_KEY_BYTES));
  const text = Buffer.from(key).toString('hex');
  key.fill(0);
  return `${text}\n`;
}

/** The key a chain is MACed under, and the id by which the log names it. */
export class ChainKey {
  readonly #key: KeyObject;
  /** 11 base64url characters (64 bits of a MAC), or `none`. */
  readonly id: string;

  /** Without `key`, the public key of logs written without one. The bytes are copied. */
  constructor(key?: Uint8Array) {
    this.#key = createSecretKey(Buffer.from(key ?? NO_KEY_BYTES));
    this.id =
      key === undefined
        ? NO_KEY_ID
        : createHmac('sha256', this.#key).update(KEY_ID_INPUT).digest('base64url').slice(0, 11);
  }

  get keyed(): boolean {
    return this.id !== NO_KEY_ID;
  }

  /** The MAC of a line's text after the line whose MAC is `previous` ("" for a segment's first). */
  mac(previous: string, text: string): string {
    return createHmac('sha256', this.#key)
      .update(previous + text)
      .digest('base64url');
  }
}

/**
 * The last line a file held when a segment started: its sequence number and
 * MAC. `null` when the file was empty; `unknown` when it could not be told
 * (not a regular file, such as stdout or a pipe, or an end that is not a
 * chained line).
 */
export type SegmentLink = { readonly seq: number; readonly mac: string } | null | 'unknown';

/** A line split into its chained parts; undefined when it is not a chained line. */
export interface ChainedLine {
  /** The line up to `,"mac":`, which the MAC covers. */
  readonly text: string;
  readonly seq: number;
  readonly mac: string;
  /** The line parsed. */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** Splits a line (without its newline) into text, seq and MAC; undefined unless it is one JSON object ending in both. */
export function parseChainedLine(line: string): ChainedLine | undefined {
  const macMatch = MAC_SUFFIX_REGEXP.exec(line);
  if (macMatch === null) {
    return undefined;
  }
  const text = line.slice(0, line.length - MAC_SUFFIX_LENGTH);
  const seqMatch = SEQ_SUFFIX_REGEXP.exec(text);
  if (seqMatch === null) {
    return undefined;
  }
  let fields: unknown;
  try {
    fields = JSON.parse(line);
  } catch {
    return undefined;
  }
  const seq = Number(seqMatch[1]);
  const mac = macMatch[1] as string;
  // The parsed fields must say what the raw ends say (a key given twice is the last one).
  if (
    typeof fields !== 'object' ||
    fields === null ||
    Array.isArray(fields) ||
    (fields as { seq?: unknown }).seq !== seq ||
    (fields as { mac?: unknown }).mac !== mac
  ) {
    return undefined;
  }
  return { text, seq, mac, fields: fields as Record<string, unknown> };
}

/** The running state of one segment as its writer seals lines. */
export class AuditChain {
  readonly #key: ChainKey;
  #seq = 0;
  #mac = '';

  constructor(key: ChainKey) {
    this.#key = key;
  }

  /** The sequence number the next line gets (the lines sealed so far). */
  get seq(): number {
    return this.#seq;
  }

  /** The MAC of the last line sealed ("" before the first). */
  get mac(): string {
    return this.#mac;
  }

  /** The whole line, newline included, of a JSON object's text: `{…,"seq":n,"mac":"…"}`. */
  seal(objectText: string): string {
    const text = `${objectText.slice(0, -1)},"seq":${this.#seq}`;
    const mac = this.#key.mac(this.#mac, text);
    this.#seq += 1;
    this.#mac = mac;
    return `${text},"mac":"${mac}"}\n`;
  }
}

/** What a new segment says of the file it is appended to. */
export interface FileEnd {
  readonly previous: SegmentLink;
  /**
   * The bytes after the file's last newline: a line cut short when a writer
   * died mid-write. The new segment ends it with a newline first and names
   * its length, so a verifier can tell it from an edit.
   */
  readonly tornBytes: number;
}

/** How a file that a new segment is appended to ends (read before it is opened for appending). */
export function readFileEnd(path: string): FileEnd {
  let fd: number;
  try {
    // Not blocking: opening a FIFO to read would wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') {
      return { previous: null, tornBytes: 0 };
    }
    return { previous: 'unknown', tornBytes: 0 };
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) {
      return { previous: 'unknown', tornBytes: 0 };
    }
    if (info.size === 0) {
      return { previous: null, tornBytes: 0 };
    }
    const length = Math.min(info.size, TAIL_BYTES);
    const tail = Buffer.alloc(length);
    readSync(fd, tail, 0, length, info.size - length);
    const lastNewline = tail.lastIndexOf(0x0a);
    const tornBytes = length - 1 - lastNewline;
    if (lastNewline === -1) {
      return { previous: 'unknown', tornBytes: info.size <= TAIL_BYTES ? tornBytes : 0 };
    }
    const before = tail.subarray(0, lastNewline);
    const start = before.lastIndexOf(0x0a) + 1;
    if (start === 0 && info.size > TAIL_BYTES) {
      // The last whole line began before what was read.
      return { previous: 'unknown', tornBytes };
    }
    const last = parseChainedLine(before.subarray(start).toString('utf8'));
    return {
      previous: last === undefined ? 'unknown' : { seq: last.seq, mac: last.mac },
      tornBytes,
    };
  } finally {
    closeSync(fd);
  }
}
