/**
 * Small byte helpers for DER data, shared by the SPIFFE modules and the test
 * harness: joining pieces end to end (the Workload API sends certificate
 * chains and bundles as DER concatenated without separators) and PEM armour
 * (RFC 7468), the form node:tls takes. Pure: no I/O and no runtime-specific
 * globals (`btoa` is a web standard on Node and Deno alike).
 */

/** The PEM labels this project writes. */
export type PemLabel = 'CERTIFICATE' | 'PRIVATE KEY';

/** Bytes per PEM line: 48 bytes are exactly 64 base64 characters. */
const PEM_LINE_BYTES = 48;

/** Joins byte arrays end to end into a new array. */
export function concatBytes(pieces: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const piece of pieces) {
    length += piece.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}

/** DER to PEM: base64 in lines of 64 characters, ending with a newline. */
export function derToPem(der: Uint8Array, label: PemLabel): string {
  const lines: string[] = [];
  for (let start = 0; start < der.length; start += PEM_LINE_BYTES) {
    const line = der.subarray(start, start + PEM_LINE_BYTES);
    lines.push(btoa(String.fromCharCode(...line)));
  }
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Whether two byte arrays hold the same bytes. Not constant-time: for public data only. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    return false;
  }
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      return false;
    }
  }
  return true;
}
