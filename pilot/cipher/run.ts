/**
 * The data commands of `spike cipher` (encrypt, decrypt, rewrap, datakey,
 * hmac, verify): read the input, call Nexus through the SDK, print.
 *
 * Input. By default the bytes of stdin (or of `--in`) as they are: the
 * plaintext to encrypt or sign, or the text of one ciphertext (surrounding
 * whitespace ignored). With `--json-in`, JSON: one item or `{ "batch":
 * [...] }`, with the fields the API takes (bytes in base64), or what `-f
 * json` of the command before it in a pipe printed.
 *
 * Output. `-f json` prints what the API answers, plus the item's `context`
 * (and, for hmac, its `input`), so that each output feeds the next command
 * with `--json-in`: encrypt → decrypt or rewrap, rewrap → decrypt, datakey →
 * decrypt, decrypt → encrypt, hmac → verify (SPIKE's issue #256 was a JSON
 * mode whose output could not be decrypted). `human` prints a ciphertext
 * or HMAC as a line, a decrypted plaintext as its bytes (one item) or one
 * base64 line per item (a batch), and `valid` or `invalid`.
 */
import { readFile } from 'node:fs/promises';
import {
  type CiphertextResult,
  decodeWireBytes,
  encodeWireBytes,
  type HmacResult,
  MAX_TRANSIT_ITEM_BYTES,
} from '../../shared/api/transit.ts';
import { InvalidRequestError, UsageError } from '../../shared/errors/errors.ts';
import type { CommandContext, DataKeyAnswer, PilotClient } from '../commands/_context.ts';
import { EXIT_BY_CODE, type OutputFormat, printData, renderHuman } from '../output.ts';
import type { CipherOperation, CipherOptions } from './operations.ts';

/** JSON input larger than this is refused before parsing (Nexus bounds a body more tightly). */
const MAX_JSON_INPUT_BYTES = 64 * 1024 * 1024;

/** One item as read: bytes decoded, context as bytes, the fields an operation takes. */
interface Item {
  readonly plaintext?: Uint8Array;
  readonly ciphertext?: string;
  readonly context?: Uint8Array;
  readonly input?: Uint8Array;
  readonly hmac?: string;
  readonly bytes?: number;
  readonly wrappedOnly?: boolean;
}

/** The fields each operation reads, and those it accepts and ignores (another command's output). */
const FIELDS: Record<CipherOperation, { read: string[]; ignored: string[] }> = {
  encrypt: { read: ['plaintext', 'context'], ignored: [] },
  decrypt: { read: ['ciphertext', 'context'], ignored: ['keyVersion', 'plaintext'] },
  rewrap: { read: ['ciphertext', 'context'], ignored: ['keyVersion', 'plaintext'] },
  datakey: { read: ['bytes', 'wrappedOnly', 'context'], ignored: [] },
  hmac: { read: ['input'], ignored: ['hmac', 'keyVersion'] },
  verify: { read: ['input', 'hmac'], ignored: ['keyVersion', 'valid'] },
};

export async function runCipher(
  context: CommandContext,
  operation: CipherOperation,
  key: string,
  options: CipherOptions,
  format: OutputFormat,
): Promise<void> {
  if (options.jsonIn === true && (options.context !== undefined || options.hmac !== undefined)) {
    throw new UsageError(
      '--context and --hmac are for raw input; with --json-in each item carries its own',
    );
  }
  const { items, isBatch } =
    options.jsonIn === true
      ? parseJsonInput(operation, await readInput(context, options.in, MAX_JSON_INPUT_BYTES))
      : { items: [await rawItem(context, operation, options)], isBatch: false };
  const client = await context.client();
  const results = await call(client, operation, key, items, isBatch);
  const echoed = results.map((result, i) => withEcho(operation, result, items[i] as Item));
  const data = isBatch ? { batch: echoed } : echoed[0];
  if (operation === 'verify' && results.some((result) => result.valid !== true)) {
    context.exitWith(EXIT_BY_CODE.ERR_CIPHERTEXT_INVALID);
  }
  if (format === 'human' && operation === 'decrypt' && !isBatch) {
    context.output.stdoutBytes(
      decodeWireBytes((results[0] as { plaintext: string }).plaintext, 'plaintext'),
    );
    return;
  }
  await printData(context.output, format, data, () => human(operation, echoed, isBatch));
}

/** What a call answers, as the API would have: bytes in base64. */
type Answer = Partial<CiphertextResult & HmacResult> & {
  readonly plaintext?: string;
  readonly valid?: boolean;
};

async function call(
  client: PilotClient,
  operation: CipherOperation,
  key: string,
  items: readonly Item[],
  isBatch: boolean,
): Promise<Answer[]> {
  const one = items[0] as Item;
  const context = (item: Item) => (item.context === undefined ? {} : { context: item.context });
  switch (operation) {
    case 'encrypt': {
      const toSeal = items.map((item) => ({
        plaintext: need(item.plaintext, 'plaintext'),
        ...context(item),
      }));
      return isBatch
        ? client.encryptBatch(key, toSeal)
        : [await client.encrypt(key, toSeal[0]?.plaintext as Uint8Array, context(one))];
    }
    case 'decrypt': {
      const toOpen = items.map((item) => ({
        ciphertext: need(item.ciphertext, 'ciphertext'),
        ...context(item),
      }));
      const opened = isBatch
        ? await client.decryptBatch(key, toOpen)
        : [await client.decrypt(key, toOpen[0]?.ciphertext as string, context(one))];
      return opened.map((plaintext) => ({ plaintext: encodeWireBytes(plaintext) }));
    }
    case 'rewrap': {
      const toRewrap = items.map((item) => ({
        ciphertext: need(item.ciphertext, 'ciphertext'),
        ...context(item),
      }));
      return isBatch
        ? client.rewrapBatch(key, toRewrap)
        : [await client.rewrap(key, toRewrap[0]?.ciphertext as string, context(one))];
    }
    case 'datakey': {
      const asks = items.map((item) => ({
        ...(item.bytes === undefined ? {} : { bytes: item.bytes }),
        ...(item.wrappedOnly === undefined ? {} : { wrappedOnly: item.wrappedOnly }),
        ...context(item),
      }));
      const made: DataKeyAnswer[] = isBatch
        ? await client.generateDataKeyBatch(key, asks)
        : [await client.generateDataKey(key, asks[0])];
      return made.map((answer) => ({
        ciphertext: answer.ciphertext,
        keyVersion: answer.keyVersion,
        ...(answer.plaintext === undefined ? {} : { plaintext: encodeWireBytes(answer.plaintext) }),
      }));
    }
    case 'hmac': {
      const inputs = items.map((item) => need(item.input, 'input'));
      return isBatch
        ? client.hmacBatch(key, inputs)
        : [await client.hmac(key, inputs[0] as Uint8Array)];
    }
    case 'verify': {
      const checks = items.map((item) => ({
        input: need(item.input, 'input'),
        hmac: need(item.hmac, 'hmac'),
      }));
      const valid = isBatch
        ? await client.verifyHmacBatch(key, checks)
        : [await client.verifyHmac(key, checks[0]?.input as Uint8Array, checks[0]?.hmac as string)];
      return valid.map((isValid) => ({ valid: isValid }));
    }
  }
}

/** The answer with what the next command needs of its item: its context, and for hmac its input. */
function withEcho(operation: CipherOperation, answer: Answer, item: Item): Answer & object {
  const echo: Record<string, string> = {};
  if (item.context !== undefined && item.context.length > 0)
    echo.context = encodeWireBytes(item.context);
  if (operation === 'hmac' && item.input !== undefined) echo.input = encodeWireBytes(item.input);
  return { ...answer, ...echo };
}

function human(operation: CipherOperation, answers: readonly Answer[], isBatch: boolean): string {
  const line = (answer: Answer): string => {
    switch (operation) {
      case 'decrypt':
        return answer.plaintext ?? '';
      case 'hmac':
        return answer.hmac ?? '';
      case 'verify':
        return answer.valid === true ? 'valid' : 'invalid';
      case 'datakey':
        return isBatch
          ? [answer.ciphertext, answer.plaintext].filter((part) => part !== undefined).join(' ')
          : renderHuman({
              ciphertext: answer.ciphertext,
              keyVersion: answer.keyVersion,
              ...(answer.plaintext === undefined ? {} : { plaintext: answer.plaintext }),
            });
      default:
        return answer.ciphertext ?? '';
    }
  };
  // Each line ends with a newline, so that an empty last line (an empty plaintext) is kept.
  return isBatch ? `${answers.map(line).join('\n')}\n` : answers.map(line).join('\n');
}

/** The one item of raw input: the bytes read, with the options' context and HMAC. */
async function rawItem(
  context: CommandContext,
  operation: CipherOperation,
  options: CipherOptions,
): Promise<Item> {
  const bound =
    options.context === undefined ? {} : { context: new TextEncoder().encode(options.context) };
  switch (operation) {
    case 'datakey':
      return {
        ...bound,
        ...(options.bytes === undefined ? {} : { bytes: options.bytes }),
        ...(options.wrappedOnly === true ? { wrappedOnly: true } : {}),
      };
    case 'encrypt':
      return { ...bound, plaintext: await readInput(context, options.in, MAX_TRANSIT_ITEM_BYTES) };
    case 'hmac':
      return { input: await readInput(context, options.in, MAX_TRANSIT_ITEM_BYTES) };
    case 'verify':
      if (options.hmac === undefined) {
        throw new UsageError(
          "verify needs --hmac (or --json-in); see 'spike cipher verify --help'",
        );
      }
      return {
        input: await readInput(context, options.in, MAX_TRANSIT_ITEM_BYTES),
        hmac: options.hmac,
      };
    default: {
      const text = new TextDecoder().decode(
        await readInput(context, options.in, MAX_TRANSIT_ITEM_BYTES * 2),
      );
      return { ...bound, ciphertext: text.trim() };
    }
  }
}

/** The bytes of `--in`, or of stdin, at most `maxBytes`. */
async function readInput(
  context: CommandContext,
  file: string | undefined,
  maxBytes: number,
): Promise<Uint8Array> {
  if (file === undefined) {
    return context.terminal.readStdinBytes(maxBytes);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const reason = (err as { code?: string }).code ?? 'unreadable';
    throw new InvalidRequestError(`Cannot read "${file}" (${reason})`);
  }
  if (bytes.length > maxBytes) {
    throw new InvalidRequestError(`"${file}" is larger than ${maxBytes} bytes`);
  }
  return bytes;
}

/** JSON input: one item or `{ batch: [...] }`, each checked for the fields `operation` reads. */
export function parseJsonInput(
  operation: CipherOperation,
  bytes: Uint8Array,
): { items: Item[]; isBatch: boolean } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new InvalidRequestError('The input is not JSON (--json-in)');
  }
  if (isObject(parsed) && 'batch' in parsed) {
    const { batch } = parsed;
    if (!Array.isArray(batch) || Object.keys(parsed).length !== 1) {
      throw new InvalidRequestError('A batch is { "batch": [item, …] } and nothing else');
    }
    return {
      items: batch.map((item: unknown, i: number) =>
        itemOf(operation, item, `Item ${i + 1} of the batch`),
      ),
      isBatch: true,
    };
  }
  return { items: [itemOf(operation, parsed, 'The input')], isBatch: false };
}

function itemOf(operation: CipherOperation, value: unknown, where: string): Item {
  if (!isObject(value)) {
    throw new InvalidRequestError(`${where} must be a JSON object`);
  }
  const { read, ignored } = FIELDS[operation];
  for (const field of Object.keys(value)) {
    if (!read.includes(field) && !ignored.includes(field)) {
      throw new InvalidRequestError(
        `${where} has a field "${field.slice(0, 40)}" that ${operation} does not take; it takes ${read.map((name) => `"${name}"`).join(', ')}`,
      );
    }
  }
  const item: Record<string, unknown> = {};
  for (const field of read) {
    const fieldValue = value[field];
    if (fieldValue === undefined) continue;
    if (field === 'plaintext' || field === 'context' || field === 'input') {
      item[field] = base64Field(fieldValue, field, where);
    } else {
      // Strings, numbers and booleans go to the SDK, which checks them as the API does.
      item[field] = fieldValue;
    }
  }
  return item as Item;
}

function base64Field(value: unknown, field: string, where: string): Uint8Array {
  try {
    return decodeWireBytes(value, field);
  } catch (err) {
    throw new InvalidRequestError(`${where}: ${(err as Error).message}`);
  }
}

function need<T>(value: T | undefined, field: string): T {
  if (value === undefined) {
    throw new InvalidRequestError(`Field "${field}" is missing`);
  }
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
