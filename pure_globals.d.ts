/**
 * The only globals the runtime-pure cores may use (tsconfig.pure.json):
 * web standards that Node, Deno and browsers all have. Anything else, such
 * as `process`, `Buffer` or a `node:` import, fails that type check.
 */
declare function atob(data: string): string;
declare function btoa(data: string): string;

declare var crypto: {
  getRandomValues<T extends ArrayBufferView | null>(array: T): T;
  randomUUID(): string;
};

declare class TextEncoder {
  encode(input?: string): Uint8Array;
}

declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  decode(input?: ArrayBufferView | ArrayBuffer, options?: { stream?: boolean }): string;
}
