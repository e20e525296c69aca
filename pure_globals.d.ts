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

/**
 * The one Node API the pure cores may reach: ChaCha20-Poly1305 from
 * `node:crypto`, which Node and Deno both provide, declared here as narrowly
 * as it is used. test/architecture.test.ts lets only
 * shared/crypto/_native_xchacha.ts import it, and aead.ts falls back to
 * @noble/ciphers where it fails a known-answer test (ADR 0016).
 */
declare module 'node:crypto' {
  type ChaCha20Poly1305 = 'chacha20-poly1305';
  type TagOptions = { authTagLength: 16 };
  type AadOptions = { plaintextLength: number };
  interface ChaCha20Poly1305Cipher {
    setAAD(aad: Uint8Array, options: AadOptions): this;
    update(data: Uint8Array): Uint8Array;
    final(): Uint8Array;
    getAuthTag(): Uint8Array;
  }
  interface ChaCha20Poly1305Decipher {
    setAAD(aad: Uint8Array, options: AadOptions): this;
    setAuthTag(tag: Uint8Array): this;
    update(data: Uint8Array): Uint8Array;
    final(): Uint8Array;
  }
  export function createCipheriv(
    algorithm: ChaCha20Poly1305,
    key: Uint8Array,
    iv: Uint8Array,
    options: TagOptions,
  ): ChaCha20Poly1305Cipher;
  export function createDecipheriv(
    algorithm: ChaCha20Poly1305,
    key: Uint8Array,
    iv: Uint8Array,
    options: TagOptions,
  ): ChaCha20Poly1305Decipher;
}
