/**
 * Finds a key that appears twice in one object of a JSON text. `JSON.parse`
 * keeps the last of them silently, so `{"cas":1,"cas":9}` would be read as
 * something other than what a reviewer or a proxy in front of us sees; a
 * request body with one is refused instead. Keys are compared decoded, so
 * `"a"` and `"\u0061"` are the same key.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COMMA = 0x2c;

/**
 * The offset of the second occurrence of a key within one object, or -1.
 * `text` must be JSON that `JSON.parse` accepted (the scan relies on it).
 */
export function duplicateKeyOffset(text: string): number {
  // One entry per open object (its keys so far) or array (null).
  const open: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      const start = i;
      let escaped = false;
      for (i += 1; text.charCodeAt(i) !== QUOTE; i++) {
        if (text.charCodeAt(i) === BACKSLASH) {
          escaped = true;
          i += 1;
        }
      }
      const keys = open[open.length - 1];
      if (expectKey && keys !== undefined && keys !== null) {
        const key = escaped
          ? (JSON.parse(text.slice(start, i + 1)) as string)
          : text.slice(start + 1, i);
        if (keys.has(key)) {
          return start;
        }
        keys.add(key);
        expectKey = false;
      }
    } else if (code === OPEN_BRACE) {
      open.push(new Set());
      expectKey = true;
    } else if (code === OPEN_BRACKET) {
      open.push(null);
      expectKey = false;
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      open.pop();
      expectKey = false;
    } else if (code === COMMA) {
      expectKey = open[open.length - 1] instanceof Set;
    }
  }
  return -1;
}
