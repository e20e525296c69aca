/**
 * Measures the cost of encryption at rest per secret version: seal + open of
 * a 1 KiB map (16 keys of 52-character values, about 1 KiB of JSON) with
 * `nexus/store/secret_cipher.ts`, which is what one put and one get pay.
 *
 *   node --import tsx scripts/bench_secret_cipher.ts [iterations]
 *   .tools/node_modules/.bin/deno run scripts/bench_secret_cipher.ts [iterations]
 *
 * Results are recorded in docs/decisions/0002-xchacha20-poly1305-at-rest.md.
 */

import { openSecretData, sealSecretData, serializeMap } from '../nexus/store/secret_cipher.ts';
import { parseSecretPath } from '../shared/api/secret_path.ts';
import { randomBytes } from '../shared/crypto/bytes.ts';

const iterations = Number(globalThis.process?.argv[2] ?? 5000);
const WARM_UP = 500;

const key = randomBytes(32);
const path = parseSecretPath('bench/app/db/creds');
const data: Record<string, string> = {};
for (let i = 0; i < 16; i++) {
  data[`key-${String(i).padStart(2, '0')}`] = 'v'.repeat(52);
}
const jsonBytes = serializeMap(data).length;

function round(version: number): void {
  const sealed = sealSecretData(key, path, version, data);
  const opened = openSecretData(key, path, version, sealed);
  if (opened['key-00'] !== data['key-00']) throw new Error('round trip failed');
}

function measure(count: number): number {
  const start = performance.now();
  for (let i = 1; i <= count; i++) round(i);
  return performance.now() - start;
}

function sealOnly(count: number): number {
  const start = performance.now();
  for (let i = 1; i <= count; i++) sealSecretData(key, path, i, data);
  return performance.now() - start;
}

measure(WARM_UP);
const samples = [measure(iterations), measure(iterations), measure(iterations)].sort(
  (a, b) => a - b,
);
const median = samples[1] as number;
const sealMs = sealOnly(iterations);
const runtime =
  'Deno' in globalThis
    ? `Deno ${(globalThis as { Deno?: { version: { deno: string } } }).Deno?.version.deno}`
    : `Node ${globalThis.process?.version}`;
console.log(
  JSON.stringify({
    runtime,
    plaintextBytes: jsonBytes,
    iterations,
    sealPlusOpenUs: Number(((median * 1000) / iterations).toFixed(1)),
    sealOnlyUs: Number(((sealMs * 1000) / iterations).toFixed(1)),
    opsPerSecond: Math.round(iterations / (median / 1000)),
  }),
);
