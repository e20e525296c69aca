/**
 * The leak scan of the integration tests: values that must never leave the
 * broker (secret values, shard texts, keys) are registered as needles, the
 * places where a test can see what the broker wrote or said are registered
 * as places (named texts, read when scanned, and files or whole folders), and
 * `assertNoLeaks()` fails listing each place that holds a needle.
 *
 * A needle is looked for as its UTF-8 bytes, and also base64- and
 * hex-encoded, so that a value written into a database blob or a JSON field
 * in one of those encodings is found as well. A failure names the place and
 * the needle's label, never the value itself.
 */
import { Buffer } from 'node:buffer';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Shorter values would be found by chance in unrelated text. */
export const MIN_NEEDLE_LENGTH = 8;

/**
 * What to scan for to find a recovery shard's text (shared/api/shard_text.ts):
 * the whole text, and its value field alone (the share bytes, base64url).
 */
export function shardNeedles(text: string): string[] {
  const value = text.trim().split(':')[5];
  return value === undefined || value.length < MIN_NEEDLE_LENGTH
    ? [text.trim()]
    : [text.trim(), value];
}

export interface FilePlaceOptions {
  /** Files (full paths) left out, e.g. those that hold a needle by design. */
  readonly exclude?: (path: string) => boolean;
}

export interface Leak {
  /** The place: a text's name or a file's path. */
  readonly place: string;
  /** The needle's label (never its value). */
  readonly label: string;
  /** How the value was written there: as is, or in an encoding. */
  readonly encoding: 'utf8' | 'base64' | 'hex';
}

export interface LeakScan {
  /** Registers a value that must appear in no place; the label names it in failures. */
  needle(value: string, label?: string): void;
  /** A named text; a function is called at scan time, so it may still grow. */
  text(name: string, text: string | (() => string)): void;
  /** A file, or every file under a folder, read at scan time (missing ones are skipped). */
  files(path: string, options?: FilePlaceOptions): void;
  /** Every place that holds a needle, in registration order. */
  findLeaks(): Leak[];
  /** Throws an Error listing each leak (place and label), when there is one. */
  assertNoLeaks(): void;
}

interface Needle {
  readonly label: string;
}

/** One form of a needle, as a latin1 string (one character per byte). */
interface Form {
  readonly needle: number;
  readonly encoding: Leak['encoding'];
  readonly text: string;
}

type Place =
  | { readonly kind: 'text'; readonly name: string; readonly read: () => string }
  | { readonly kind: 'files'; readonly path: string; readonly options: FilePlaceOptions };

/** Every form is at least this long (a value of MIN_NEEDLE_LENGTH characters in UTF-8). */
const KEY_LENGTH = MIN_NEEDLE_LENGTH;

/**
 * The forms in which a needle is searched. Base64 encodes three bytes at a
 * time, so a value inside a longer encoded text starts at one of three
 * offsets in a group; for each, the whole groups that hold only the value's
 * bytes are encoded (standard and URL-safe alphabets).
 */
function formsOf(value: string): [Leak['encoding'], string][] {
  const bytes = Buffer.from(value, 'utf8');
  const hex = bytes.toString('hex');
  const forms: [Leak['encoding'], string][] = [
    ['utf8', bytes.toString('latin1')],
    ['hex', hex],
    ['hex', hex.toUpperCase()],
  ];
  for (const start of [0, 1, 2]) {
    const usable = Math.floor((bytes.length - start) / 3) * 3;
    if (usable < 6) continue;
    const core = bytes.subarray(start, start + usable);
    forms.push(['base64', core.toString('base64')], ['base64', core.toString('base64url')]);
  }
  return forms.filter(([, text], i) => forms.findIndex(([, other]) => other === text) === i);
}

/**
 * All forms indexed by their last KEY_LENGTH characters, with a table of
 * their last two characters that rules out most positions at once: a scan
 * costs about one lookup per byte, however many needles there are.
 */
class FormIndex {
  readonly #byKey = new Map<string, Form[]>();
  readonly #lastPairs = new Uint8Array(65_536);

  add(form: Form): void {
    const key = form.text.slice(-KEY_LENGTH);
    const known = this.#byKey.get(key);
    if (known === undefined) this.#byKey.set(key, [form]);
    else known.push(form);
    const n = form.text.length;
    this.#lastPairs[(form.text.charCodeAt(n - 2) << 8) | form.text.charCodeAt(n - 1)] = 1;
  }

  /** The first form found of each needle that `haystack` (latin1) holds. */
  search(haystack: string): Map<number, Form> {
    const found = new Map<number, Form>();
    let pair = 0;
    for (let end = 1; end <= haystack.length; end += 1) {
      pair = ((pair << 8) | haystack.charCodeAt(end - 1)) & 0xffff;
      if (end < KEY_LENGTH || this.#lastPairs[pair] === 0) continue;
      const candidates = this.#byKey.get(haystack.slice(end - KEY_LENGTH, end));
      for (const form of candidates ?? []) {
        if (found.has(form.needle)) continue;
        const start = end - form.text.length;
        if (start >= 0 && haystack.startsWith(form.text, start)) found.set(form.needle, form);
      }
    }
    return found;
  }
}

function filesUnder(path: string, options: FilePlaceOptions): string[] {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return [];
  if (stat.isFile()) return options.exclude?.(path) === true ? [] : [path];
  if (!stat.isDirectory()) return [];
  return readdirSync(path)
    .sort()
    .flatMap((entry) => filesUnder(join(path, entry), options));
}

export function createLeakScan(): LeakScan {
  const values = new Map<string, number>();
  const needles: Needle[] = [];
  const index = new FormIndex();
  const places: Place[] = [];

  function findLeaks(): Leak[] {
    if (needles.length === 0) return [];
    const leaks: Leak[] = [];
    const search = (place: string, haystack: string) => {
      const found = index.search(haystack);
      for (const [i, form] of [...found].sort(([a], [b]) => a - b)) {
        leaks.push({ place, label: needles[i]?.label ?? '', encoding: form.encoding });
      }
    };
    for (const place of places) {
      if (place.kind === 'text') {
        search(place.name, Buffer.from(place.read(), 'utf8').toString('latin1'));
        continue;
      }
      for (const file of filesUnder(place.path, place.options)) {
        let text: string;
        try {
          text = readFileSync(file, 'latin1');
        } catch (err) {
          // Removed between the listing and the read (a temporary file).
          if ((err as { code?: unknown }).code === 'ENOENT') continue;
          throw err;
        }
        search(file, text);
      }
    }
    return leaks;
  }

  return {
    needle(value, label) {
      if (value.length < MIN_NEEDLE_LENGTH) {
        throw new RangeError(
          `A value to scan for must have at least ${MIN_NEEDLE_LENGTH} characters`,
        );
      }
      if (values.has(value)) return;
      const i = needles.length;
      values.set(value, i);
      needles.push({ label: label ?? `value #${i + 1}` });
      for (const [encoding, text] of formsOf(value)) index.add({ needle: i, encoding, text });
    },
    text(name, text) {
      places.push({ kind: 'text', name, read: typeof text === 'string' ? () => text : text });
    },
    files(path, options = {}) {
      places.push({ kind: 'files', path, options });
    },
    findLeaks,
    assertNoLeaks() {
      const leaks = findLeaks();
      if (leaks.length === 0) return;
      const lines = leaks.map(
        (leak) =>
          `${leak.place} holds ${leak.label}${leak.encoding === 'utf8' ? '' : ` (${leak.encoding})`}`,
      );
      throw new Error(`Secrets leaked:\n${[...new Set(lines)].join('\n')}`);
    },
  };
}
