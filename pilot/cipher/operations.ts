/**
 * The data commands of `spike cipher` and their options: what the command
 * lines (pilot/commands/cipher.ts, loaded by every run) and their code
 * (run.ts, loaded when one of them runs) share.
 */

export const CIPHER_OPERATIONS = [
  'encrypt',
  'decrypt',
  'rewrap',
  'datakey',
  'hmac',
  'verify',
] as const;
export type CipherOperation = (typeof CIPHER_OPERATIONS)[number];

/** The options of a data command, as commander parses them. */
export interface CipherOptions {
  readonly in?: string;
  readonly jsonIn?: boolean;
  readonly context?: string;
  readonly hmac?: string;
  readonly bytes?: number;
  readonly wrappedOnly?: boolean;
}
