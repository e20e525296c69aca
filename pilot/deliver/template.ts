/**
 * The template language of `spike agent` (docs/delivery.md#templates): text
 * with actions between `{{` and `}}`, each one of
 *
 * - `PATH#KEY`: the value of one key, as is;
 * - `json PATH`: the whole secret as one JSON object, keys sorted;
 * - `env PATH`: the whole secret as `NAME='value'` lines, named as `spike
 *   run --secret` names them, quoted as a POSIX shell reads them;
 * - `"text"`: the text, as is (so `{{ "{{" }}` writes `{{`).
 *
 * Spaces around an action are ignored. Everything is checked when the
 * template is parsed, except what depends on the values (a missing key, a
 * key that is no variable name), which fails its render.
 */
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import type { SecretResponse } from '../../shared/api/secrets.ts';
import { InvalidRequestError, NotFoundError } from '../../shared/errors/errors.ts';
import { checkName, variableNameOf } from './names.ts';

export type TemplatePart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'key'; readonly path: string; readonly key: string }
  | { readonly kind: 'json'; readonly path: string }
  | { readonly kind: 'env'; readonly path: string };

export interface Template {
  readonly parts: readonly TemplatePart[];
  /** Every path it reads, once each, in order. */
  readonly paths: readonly string[];
}

/** A template that cannot be parsed; the message gives line and column. */
export class TemplateSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateSyntaxError';
  }
}

const OPEN = '{{';
const CLOSE = '}}';

export function parseTemplate(text: string): Template {
  const parts: TemplatePart[] = [];
  let at = 0;
  while (at < text.length) {
    const open = text.indexOf(OPEN, at);
    if (open < 0) {
      parts.push({ kind: 'text', text: text.slice(at) });
      break;
    }
    if (open > at) parts.push({ kind: 'text', text: text.slice(at, open) });
    const close = closingOf(text, open + OPEN.length);
    if (close < 0) {
      throw new TemplateSyntaxError(`${positionOf(text, open)}: "{{" is never closed by "}}"`);
    }
    parts.push(parseAction(text.slice(open + OPEN.length, close), positionOf(text, open)));
    at = close + CLOSE.length;
  }
  const paths = [...new Set(parts.flatMap((part) => ('path' in part ? [part.path] : [])))];
  return { parts, paths };
}

/** The `}}` that ends an action, skipping one inside a quoted text. */
function closingOf(text: string, from: number): number {
  let inQuotes = false;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '"') inQuotes = !inQuotes;
    else if (!inQuotes && text.startsWith(CLOSE, i)) return i;
  }
  return -1;
}

function parseAction(inner: string, where: string): TemplatePart {
  const action = inner.trim();
  if (action.startsWith('"')) {
    if (action.length < 2 || !action.endsWith('"') || action.slice(1, -1).includes('"')) {
      throw new TemplateSyntaxError(`${where}: a text action is one "quoted text" without "`);
    }
    return { kind: 'text', text: action.slice(1, -1) };
  }
  const format = /^(json|env)\s+(\S+)$/.exec(action);
  if (format !== null) {
    return { kind: format[1] as 'json' | 'env', path: pathAt(format[2] as string, where) };
  }
  const hash = action.indexOf('#');
  if (hash < 0 || /\s/.test(action)) {
    throw new TemplateSyntaxError(
      `${where}: "{{ ${action} }}" is not an action: use PATH#KEY, json PATH, env PATH or "text"`,
    );
  }
  const key = action.slice(hash + 1);
  if (key === '') {
    throw new TemplateSyntaxError(`${where}: the key after "#" is empty`);
  }
  return { kind: 'key', path: pathAt(action.slice(0, hash), where), key };
}

function pathAt(path: string, where: string): string {
  try {
    return parseSecretPath(path);
  } catch (err) {
    throw new TemplateSyntaxError(`${where}: ${(err as Error).message}`);
  }
}

function positionOf(text: string, index: number): string {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  const column = index - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

/**
 * The template with the secrets' values in it. Throws NotFoundError for a
 * missing key and InvalidRequestError for an `env` secret whose keys do not
 * make distinct variable names; messages never hold a value.
 */
export function renderTemplate(
  template: Template,
  secrets: ReadonlyMap<string, SecretResponse>,
): string {
  let out = '';
  for (const part of template.parts) {
    if (part.kind === 'text') {
      out += part.text;
      continue;
    }
    const secret = secrets.get(part.path);
    if (secret === undefined) throw new Error(`${part.path} was not fetched`);
    if (part.kind === 'key') {
      if (!Object.hasOwn(secret.data, part.key)) {
        throw new NotFoundError(
          `Secret "${part.path}" version ${secret.version} has no key "${part.key}"`,
        );
      }
      out += secret.data[part.key] as string;
    } else if (part.kind === 'json') {
      const sorted: Record<string, string> = {};
      for (const key of Object.keys(secret.data).sort()) sorted[key] = secret.data[key] as string;
      out += JSON.stringify(sorted);
    } else {
      out += envLines(part.path, secret);
    }
  }
  return out;
}

/** `NAME='value'` lines, in key order; `'` is written `'\''`. */
function envLines(path: string, secret: SecretResponse): string {
  const names = new Map<string, string>();
  let out = '';
  for (const key of Object.keys(secret.data).sort()) {
    const name = variableNameOf(key);
    checkName(name, `key "${key}" of ${path} (variable ${name})`);
    const earlier = names.get(name);
    if (earlier !== undefined) {
      throw new InvalidRequestError(`keys "${earlier}" and "${key}" of ${path} both make ${name}`);
    }
    names.set(name, key);
    out += `${name}='${(secret.data[key] as string).replaceAll("'", "'\\''")}'\n`;
  }
  return out;
}
