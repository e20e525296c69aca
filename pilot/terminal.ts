/**
 * The terminal behind Pilot's prompts, over streams that pilot/main.ts
 * passes in (process.stdin and process.stderr): whole-stdin reads with a
 * cap, a y/N question, and hidden input for recovery shards.
 */
import { createInterface } from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';
import { InvalidRequestError } from '../shared/errors/errors.ts';
import { CanceledError, type Terminal } from './commands/_context.ts';

/** What a TTY stdin offers beyond a Readable. */
interface TtyInput extends Readable {
  readonly isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const BACKSPACE = '\u007f';

export function createTerminal(streams: { stdin: TtyInput; stderr: Writable }): Terminal {
  const { stdin, stderr } = streams;

  /** All of stdin, refused once it passes `maxBytes`. */
  async function readAll(maxBytes: number): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of stdin) {
      const bytes =
        typeof chunk === 'string' ? new TextEncoder().encode(chunk) : (chunk as Uint8Array);
      size += bytes.length;
      if (size > maxBytes) {
        throw new InvalidRequestError(`Stdin holds more than ${maxBytes} bytes`);
      }
      chunks.push(bytes);
    }
    const all = new Uint8Array(size);
    let offset = 0;
    for (const chunk of chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return all;
  }

  return {
    isInteractive: () => stdin.isTTY === true,

    async readStdin(maxBytes) {
      return new TextDecoder().decode(await readAll(maxBytes));
    },

    readStdinBytes: readAll,

    async prompt(question) {
      const rl = createInterface({ input: stdin, output: stderr, terminal: true });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },

    promptHidden(question) {
      if (typeof stdin.setRawMode !== 'function') {
        throw new InvalidRequestError('Cannot read hidden input: stdin is not a terminal');
      }
      const setRawMode = stdin.setRawMode.bind(stdin);
      stderr.write(question);
      return new Promise<string>((resolve, reject) => {
        let typed = '';
        const finish = (error?: Error) => {
          stdin.off('data', onData);
          setRawMode(false);
          stdin.pause();
          stderr.write('\n');
          if (error === undefined) resolve(typed);
          else reject(error);
        };
        const onData = (chunk: Uint8Array | string) => {
          const text = typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
          for (const char of text) {
            if (char === '\r' || char === '\n') return finish();
            if (char === CTRL_C || char === CTRL_D) {
              return finish(new CanceledError('Canceled: no more shards were submitted'));
            }
            if (char === BACKSPACE || char === '\b') typed = typed.slice(0, -1);
            else typed += char;
          }
        };
        setRawMode(true);
        stdin.resume();
        stdin.on('data', onData);
      });
    },
  };
}
