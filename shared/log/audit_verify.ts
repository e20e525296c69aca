/**
 * Checks an audit log against its chain (audit_chain.ts, ADR 0027) and
 * names the first place where it is not as its writers wrote it: a line
 * edited, inserted, deleted or moved, the end cut, or a key that does not
 * fit. Each segment (one process's lines) must verify under its key, follow
 * the line its start names, and end with its close line, or be followed by
 * a segment that confirms where it stopped (a process that was killed).
 *
 * Reading stops at the first problem; lines are read in chunks, with a
 * bounded look-ahead to tell an edit from an insertion or a move, so a log
 * of any size is verified in bounded memory.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import {
  AUDIT_CHECKPOINT,
  AUDIT_CLOSE,
  AUDIT_DROPPED,
  AUDIT_OPEN,
  type ChainedLine,
  ChainKey,
  NO_KEY_ID,
  parseChainedLine,
} from './audit_chain.ts';

export type AuditProblemKind = 'edited' | 'inserted' | 'deleted' | 'reordered' | 'cut' | 'key';

export interface AuditProblem {
  readonly kind: AuditProblemKind;
  readonly file: string;
  /** 1-based; for a cut end, the first line that is missing (one past the last). */
  readonly line: number;
  readonly message: string;
}

/** How a segment ended: its close line, a later segment that confirms its last line, or not at all (the log's last, still open). */
export type SegmentEnd = 'closed' | 'stopped' | 'open';

export interface AuditSegmentSummary {
  readonly file: string;
  /** The line of its `audit.open`. */
  readonly line: number;
  readonly segment: string;
  readonly component: string;
  /** The key's id, or `none`. */
  readonly key: string;
  /** Its lines, open and close included. */
  readonly lines: number;
  readonly end: SegmentEnd;
}

export interface AuditReport {
  readonly intact: boolean;
  /** Lines read (up to and including the first problem). */
  readonly lines: number;
  /** Of them, events (every line that is not one of the chain's own). */
  readonly events: number;
  /** The segments read, up to the first problem. */
  readonly segments: readonly AuditSegmentSummary[];
  /** What an operator should know of an intact log: dropped events, a killed writer, an unlinked segment. */
  readonly notes: readonly string[];
  readonly problem: AuditProblem | null;
}

export interface VerifyOptions {
  /** The operator's audit key; needed for a log written with one, refused for one written without. */
  readonly key?: Uint8Array;
  /**
   * The log is still being written: its last segment may lack its close.
   * Its last checkpoint must then be recent (`now`), since a running writer
   * checkpoints at its interval even when idle.
   */
  readonly live?: boolean;
  readonly now?: () => number;
}

/** One line of the input, without its newline. */
export interface AuditLine {
  readonly file: string;
  readonly line: number;
  readonly text: string;
  /** Its length in bytes. */
  readonly bytes: number;
  /** False for the end of a file that has no newline. */
  readonly complete: boolean;
}

/** How far ahead a line is looked for to tell a move from a deletion. */
const LOOKAHEAD_LINES = 10_000;
/** Allowance beyond two checkpoint intervals before a live log counts as cut. */
const LIVE_SLACK_MS = 5_000;
const READ_CHUNK_BYTES = 1024 * 1024;
/** A longer line is split (and so not a chained line): no file makes the reader hold more. */
const MAX_LINE_BYTES = 4 * 1024 * 1024;

/** Verifies the files in order, as one log (a log and its rotated parts, oldest first). */
export function verifyAuditFiles(
  files: readonly string[],
  options: VerifyOptions = {},
): AuditReport {
  return verifyAuditLines(linesOfFiles(files), options);
}

/** The lines of the files in order, read in chunks. */
export function* linesOfFiles(files: readonly string[]): Generator<AuditLine> {
  for (const file of files) {
    yield* linesOfFile(file);
  }
}

function* linesOfFile(file: string): Generator<AuditLine> {
  const fd = openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(READ_CHUNK_BYTES);
    let carry: Buffer = Buffer.alloc(0);
    let number = 0;
    for (;;) {
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) {
        break;
      }
      const data =
        carry.length === 0
          ? chunk.subarray(0, read)
          : Buffer.concat([carry, chunk.subarray(0, read)]);
      let start = 0;
      for (let end = data.indexOf(0x0a, start); end !== -1; end = data.indexOf(0x0a, start)) {
        number += 1;
        yield lineOf(file, number, data, start, end, true);
        start = end + 1;
      }
      carry = Buffer.from(data.subarray(start));
      if (carry.length > MAX_LINE_BYTES) {
        number += 1;
        yield lineOf(file, number, carry, 0, carry.length, true);
        carry = Buffer.alloc(0);
      }
    }
    if (carry.length > 0) {
      yield lineOf(file, number + 1, carry, 0, carry.length, false);
    }
  } finally {
    closeSync(fd);
  }
}

function lineOf(
  file: string,
  line: number,
  data: Buffer,
  start: number,
  end: number,
  complete: boolean,
): AuditLine {
  return { file, line, text: data.toString('utf8', start, end), bytes: end - start, complete };
}

/** Verifies lines in order; see the module's comment. */
export function verifyAuditLines(
  lines: Iterable<AuditLine>,
  options: VerifyOptions = {},
): AuditReport {
  return new Verifier(lines[Symbol.iterator](), options).run();
}

interface Segment {
  readonly summary: {
    file: string;
    line: number;
    segment: string;
    component: string;
    key: string;
    lines: number;
    end: SegmentEnd;
  };
  readonly key: ChainKey;
  readonly checkpointIntervalMs: number;
  /** The next sequence number, and the MAC of the line before it. */
  seq: number;
  mac: string;
  closed: boolean;
  /** The newest time the writer said it was alive (its open or a checkpoint). */
  aliveAt: number;
  lastCheckpointLine: number;
  last: AuditLine;
}

class Verifier {
  readonly #source: Iterator<AuditLine>;
  readonly #ahead: AuditLine[] = [];
  readonly #options: VerifyOptions;
  readonly #key: ChainKey | undefined;
  readonly #segments: Segment[] = [];
  readonly #notes: string[] = [];
  #lines = 0;
  #events = 0;
  /** A line cut short by a dying writer, waiting for the next segment to confirm it. */
  #torn: AuditLine | undefined;

  constructor(source: Iterator<AuditLine>, options: VerifyOptions) {
    this.#source = source;
    this.#options = options;
    this.#key = options.key === undefined ? undefined : new ChainKey(options.key);
  }

  run(): AuditReport {
    let problem: AuditProblem | null = null;
    let previous: AuditLine | undefined;
    for (let current = this.#next(); current !== undefined; current = this.#next()) {
      this.#lines += 1;
      problem = this.#check(current);
      if (problem !== null) {
        break;
      }
      previous = current;
    }
    problem ??= this.#checkEnd(previous);
    return {
      intact: problem === null,
      lines: this.#lines,
      events: this.#events,
      segments: this.#segments.map((segment) => ({ ...segment.summary })),
      notes: this.#notes,
      problem,
    };
  }

  #next(): AuditLine | undefined {
    if (this.#ahead.length > 0) {
      return this.#ahead.shift();
    }
    const next = this.#source.next();
    return next.done === true ? undefined : next.value;
  }

  /** The line `index` places after the current one (0: the next), without consuming it. */
  #peek(index: number): AuditLine | undefined {
    while (this.#ahead.length <= index) {
      const next = this.#source.next();
      if (next.done === true) {
        return undefined;
      }
      this.#ahead.push(next.value);
    }
    return this.#ahead[index];
  }

  #check(current: AuditLine): AuditProblem | null {
    if (!current.complete) {
      return problemAt(
        'cut',
        current,
        `line ${current.line} is incomplete (no newline): the log was cut inside it, or its writer died while writing it`,
      );
    }
    const parsed = parseChainedLine(current.text);
    if (parsed !== undefined && parsed.seq === 0 && parsed.fields.action === AUDIT_OPEN) {
      return this.#open(current, parsed);
    }
    if (parsed === undefined && this.#isTorn(current)) {
      // Cut short by a writer that died; the next segment confirms it.
      this.#torn = current;
      return null;
    }
    const segment = this.#segments.at(-1);
    if (segment === undefined) {
      return parsed !== undefined && parsed.seq > 0
        ? problemAt(
            'deleted',
            current,
            `the log starts inside a segment (line ${current.line} has seq ${parsed.seq}): the lines before it are missing`,
          )
        : problemAt(
            'edited',
            current,
            `line ${current.line} is not the start of a segment of an audit chain`,
          );
    }
    if (segment.closed) {
      return problemAt(
        'inserted',
        current,
        `line ${current.line} follows the close of the segment that starts at line ${segment.summary.line}`,
      );
    }
    if (parsed === undefined) {
      return this.#unchained(segment, current);
    }
    if (parsed.seq === segment.seq) {
      return segment.key.mac(segment.mac, parsed.text) === parsed.mac
        ? this.#accept(segment, current, parsed)
        : this.#forged(segment, current);
    }
    return this.#outOfSequence(segment, current, parsed);
  }

  /** Whether the next line starts a segment that names this line as cut short. */
  #isTorn(current: AuditLine): boolean {
    const next = this.#peekParsed(0);
    return (
      next !== undefined &&
      next.seq === 0 &&
      next.fields.action === AUDIT_OPEN &&
      next.fields.tornBytes === current.bytes
    );
  }

  /** A line that is not a chained line at all: garbage inserted, or a line damaged. */
  #unchained(segment: Segment, current: AuditLine): AuditProblem {
    if (this.#follows(segment, this.#peekParsed(0))) {
      return problemAt(
        'inserted',
        current,
        `line ${current.line} was inserted (it is not part of the chain)`,
      );
    }
    return problemAt(
      'edited',
      current,
      `line ${current.line} was edited (it is no longer a chained line)`,
    );
  }

  /** A line at the expected seq whose MAC does not verify. */
  #forged(segment: Segment, current: AuditLine): AuditProblem {
    if (this.#follows(segment, this.#peekParsed(0))) {
      return problemAt(
        'inserted',
        current,
        `line ${current.line} was inserted (its MAC does not verify; the next line continues the chain)`,
      );
    }
    return problemAt(
      'edited',
      current,
      `line ${current.line} was edited (its MAC does not verify)`,
    );
  }

  /** A line whose seq is not the expected one. */
  #outOfSequence(segment: Segment, current: AuditLine, parsed: ChainedLine): AuditProblem {
    const expected = segment.seq;
    const next = this.#peekParsed(0);
    // The next line continues from this one as if this one held the expected
    // seq: this line is in its place, its seq was changed.
    if (
      next !== undefined &&
      next.seq === expected + 1 &&
      segment.key.mac(parsed.mac, next.text) === next.mac
    ) {
      return problemAt(
        'edited',
        current,
        `line ${current.line} was edited (its seq reads ${parsed.seq}, not ${expected})`,
      );
    }
    if (parsed.seq < expected) {
      return problemAt(
        'inserted',
        current,
        `line ${current.line} was inserted: it repeats seq ${parsed.seq} of the segment that starts at line ${segment.summary.line}`,
      );
    }
    // Is the expected line further on? Then lines were moved, else deleted.
    let found: AuditLine | undefined;
    let predecessorMac: string | undefined;
    for (let i = 0; i < LOOKAHEAD_LINES; i++) {
      const line = this.#peek(i);
      const ahead = line === undefined ? undefined : parseChainedLine(line.text);
      if (line === undefined || (ahead?.seq === 0 && ahead.fields.action === AUDIT_OPEN)) {
        break;
      }
      if (ahead === undefined) {
        continue;
      }
      if (
        found === undefined &&
        ahead.seq === expected &&
        segment.key.mac(segment.mac, ahead.text) === ahead.mac
      ) {
        found = line;
      }
      if (ahead.seq === parsed.seq - 1) {
        predecessorMac ??= ahead.mac;
      }
    }
    if (found === undefined) {
      const missing = parsed.seq - expected;
      return problemAt(
        'deleted',
        current,
        `${missing === 1 ? 'a line was' : `${missing} lines were`} deleted before line ${current.line} (the segment jumps from seq ${expected - 1} to seq ${parsed.seq})`,
      );
    }
    if (
      predecessorMac !== undefined &&
      segment.key.mac(predecessorMac, parsed.text) === parsed.mac
    ) {
      return problemAt(
        'reordered',
        current,
        `line ${current.line} (seq ${parsed.seq}) is out of order: seq ${expected}, which comes before it, is at line ${found.line}`,
      );
    }
    return problemAt(
      'inserted',
      current,
      `line ${current.line} was inserted (seq ${parsed.seq} does not verify where it claims to be)`,
    );
  }

  /** Whether `next` is the line the segment expects (the current line then does not belong). */
  #follows(segment: Segment, next: ChainedLine | undefined): boolean {
    return (
      next !== undefined &&
      next.seq === segment.seq &&
      segment.key.mac(segment.mac, next.text) === next.mac
    );
  }

  #peekParsed(index: number): ChainedLine | undefined {
    const line = this.#peek(index);
    return line === undefined ? undefined : parseChainedLine(line.text);
  }

  #accept(segment: Segment, current: AuditLine, parsed: ChainedLine): AuditProblem | null {
    const action = parsed.fields.action;
    if (action === AUDIT_CHECKPOINT || action === AUDIT_CLOSE) {
      // A genuine writer always counts right: a wrong count is not its line.
      if (parsed.fields.count !== parsed.seq) {
        return problemAt(
          'edited',
          current,
          `line ${current.line} was edited (its count is not its seq)`,
        );
      }
      segment.aliveAt = Math.max(segment.aliveAt, timeOf(parsed));
      segment.lastCheckpointLine = current.line;
      if (action === AUDIT_CLOSE) {
        segment.closed = true;
        segment.summary.end = 'closed';
      }
    } else if (action === AUDIT_DROPPED) {
      this.#notes.push(
        `${where(current)}: ${String(parsed.fields.count)} events were dropped while the audit sink could not write (since ${String(parsed.fields.since)})`,
      );
    } else {
      this.#events += 1;
    }
    segment.seq += 1;
    segment.mac = parsed.mac;
    segment.summary.lines += 1;
    segment.last = current;
    return null;
  }

  /** A segment's open line: its key, its MAC, and its link to what came before. */
  #open(current: AuditLine, parsed: ChainedLine): AuditProblem | null {
    const fields = parsed.fields;
    const keyId = String(fields.key);
    let key: ChainKey;
    if (keyId === NO_KEY_ID) {
      if (this.#key !== undefined) {
        return problemAt(
          'key',
          current,
          `the segment at line ${current.line} was written without a key, yet a key was given: if its writer had this key, the segment was rewritten`,
        );
      }
      key = new ChainKey();
    } else if (this.#key === undefined) {
      return problemAt(
        'key',
        current,
        `the segment at line ${current.line} is chained under key ${keyId}: give its key file (--key-file) to verify it`,
      );
    } else if (this.#key.id !== keyId) {
      return problemAt(
        'key',
        current,
        `the segment at line ${current.line} is chained under key ${keyId}, not the key given (${this.#key.id})`,
      );
    } else {
      key = this.#key;
    }
    if (key.mac('', parsed.text) !== parsed.mac) {
      return problemAt(
        'edited',
        current,
        `line ${current.line} was edited (the start of a segment; its MAC does not verify)`,
      );
    }
    const problem = this.#link(current, fields);
    if (problem !== null) {
      return problem;
    }
    this.#segments.push({
      summary: {
        file: current.file,
        line: current.line,
        segment: String(fields.segment),
        component: String(fields.component),
        key: keyId,
        lines: 1,
        end: 'open',
      },
      key,
      checkpointIntervalMs:
        typeof fields.checkpointIntervalMs === 'number' ? fields.checkpointIntervalMs : 0,
      seq: 1,
      mac: parsed.mac,
      closed: false,
      aliveAt: timeOf(parsed),
      lastCheckpointLine: current.line,
      last: current,
    });
    return null;
  }

  /** Whether a new segment's `previous` names the line before it. */
  #link(current: AuditLine, fields: Readonly<Record<string, unknown>>): AuditProblem | null {
    const before = this.#segments.at(-1);
    const torn = this.#torn;
    this.#torn = undefined;
    if (torn === undefined && typeof fields.tornBytes === 'number') {
      return problemAt(
        'deleted',
        current,
        `a line was deleted before line ${current.line}: the segment there names a line cut short before it, which is not there`,
      );
    }
    if (torn !== undefined) {
      if (before?.closed === true) {
        return problemAt(
          'inserted',
          torn,
          `line ${torn.line} was inserted: it follows the close of the segment that starts at line ${before.summary.line}`,
        );
      }
      this.#notes.push(
        `${where(torn)}: this line was cut short while being written (its writer died); the segment at line ${current.line} confirms it`,
      );
    }
    const previous = fields.previous;
    if (previous === 'unknown') {
      if (before !== undefined) {
        this.#notes.push(
          `${where(current)}: this segment does not name the line before it (its writer could not read the end of its file, as for stdout): the link is not checked`,
        );
        this.#endBefore(before);
      }
      return null;
    }
    if (previous === null) {
      if (before === undefined) {
        return null;
      }
      if (current.line === 1) {
        this.#notes.push(
          `${where(current)}: this file was started empty, so its link to the file before it is not checked`,
        );
        this.#endBefore(before);
        return null;
      }
      return problemAt(
        'inserted',
        current,
        `the segment at line ${current.line} was inserted: it says it started an empty file, yet lines come before it`,
      );
    }
    const link = previous as { seq?: unknown; mac?: unknown };
    if (before === undefined) {
      return problemAt(
        'deleted',
        current,
        `the lines before line ${current.line} are missing: its segment follows seq ${String(link.seq)} of a segment that is not in the log (give the older files first)`,
      );
    }
    if (link.seq === before.seq - 1 && link.mac === before.mac) {
      this.#endBefore(before);
      return null;
    }
    if (typeof link.seq === 'number' && link.seq > before.seq - 1) {
      const missing = link.seq - (before.seq - 1);
      return problemAt(
        'deleted',
        current,
        `${missing === 1 ? 'a line was' : `${missing} lines were`} deleted before line ${current.line}: the segment before ends at seq ${before.seq - 1}, but the segment at line ${current.line} followed seq ${link.seq}`,
      );
    }
    return problemAt(
      'deleted',
      current,
      `the segment at line ${current.line} does not follow the segment before it (which starts at line ${before.summary.line}): segments were deleted, inserted or moved`,
    );
  }

  /** The segment before a new one ended: closed, or stopped where the new one says. */
  #endBefore(before: Segment): void {
    if (!before.closed) {
      before.summary.end = 'stopped';
      this.#notes.push(
        `${where(before.last)}: the segment that starts at line ${before.summary.line} ends without its close line (its process stopped without closing, e.g. it was killed); the next segment confirms its last line`,
      );
    }
  }

  #checkEnd(last: AuditLine | undefined): AuditProblem | null {
    if (last === undefined) {
      return this.#lines === 0
        ? { kind: 'cut', file: '', line: 1, message: 'the log is empty' }
        : null;
    }
    const segment = this.#segments.at(-1);
    if (segment === undefined || segment.closed) {
      return null;
    }
    const end = { ...last, line: last.line + 1 };
    if (this.#options.live === true) {
      const now = this.#options.now?.() ?? Date.now();
      const interval = segment.checkpointIntervalMs;
      if (interval > 0 && now - segment.aliveAt > 2 * interval + LIVE_SLACK_MS) {
        return problemAt(
          'cut',
          end,
          `the log ends at line ${last.line}, and its last checkpoint (line ${segment.lastCheckpointLine}) is from ${new Date(segment.aliveAt).toISOString()}, while its writer checkpoints every ${interval / 1000} s: the lines after line ${last.line} are missing, or the writer is stuck`,
        );
      }
      this.#notes.push(
        `${where(segment.last)}: the segment that starts at line ${segment.summary.line} is still open (being written); verified through line ${last.line}`,
      );
      return null;
    }
    return problemAt(
      'cut',
      end,
      `the log ends at line ${last.line} without the close of the segment that starts at line ${segment.summary.line} (last checkpoint at line ${segment.lastCheckpointLine}): the lines after line ${last.line} were cut, or its writer was killed, or it is still writing (--live)`,
    );
  }
}

function problemAt(kind: AuditProblemKind, at: AuditLine, message: string): AuditProblem {
  return { kind, file: at.file, line: at.line, message };
}

function where(line: AuditLine): string {
  return `${line.file}:${line.line}`;
}

function timeOf(parsed: ChainedLine): number {
  const time = Date.parse(String(parsed.fields.ts));
  return Number.isNaN(time) ? 0 : time;
}
