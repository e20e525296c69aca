/**
 * A/B of the two AEAD implementations in one process: seal and open of
 * 1 KiB under a path-sized AAD, through `node:crypto` and through
 * `@noble/ciphers`, alternating which goes first in each round so that the
 * load of a shared machine falls on both alike. Prints CPU µs per operation
 * for each round and the median (ADR 0016).
 *
 *   node --import tsx scripts/bench_aead.ts [rounds] [iterations]
 *   .tools/node_modules/.bin/deno run --no-check scripts/bench_aead.ts [rounds] [iterations]
 */
import process from 'node:process';
import { nativeXChaCha } from '../shared/crypto/_native_xchacha.ts';
import { nobleXChaCha, type XChaCha20Poly1305 } from '../shared/crypto/_xchacha.ts';
import { aeadImplementation, openWith, sealWith } from '../shared/crypto/aead.ts';
import { randomBytes } from '../shared/crypto/bytes.ts';

const rounds = Number(process.argv[2] ?? 6);
const iterations = Number(process.argv[3] ?? 5000);
const PLAINTEXT_BYTES = 1024;

const key = randomBytes(32);
const plaintext = randomBytes(PLAINTEXT_BYTES);
const aad = new TextEncoder().encode('secret/bench/app/db/creds\u00001');

/**
 * The CPU time of this process in µs (user + system), which counts only the
 * time it ran: on a machine shared with other work, wall-clock time would
 * also count the time it waited for a core.
 */
function cpuMicros(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** CPU µs per seal and per open through `implementation`. */
function measure(implementation: XChaCha20Poly1305): { seal: number; open: number } {
  const sealed = sealWith(implementation, { key, plaintext, aad });
  let start = cpuMicros();
  for (let i = 0; i < iterations; i++) sealWith(implementation, { key, plaintext, aad });
  const seal = (cpuMicros() - start) / iterations;
  start = cpuMicros();
  for (let i = 0; i < iterations; i++) openWith(implementation, { key, sealed, aad });
  const open = (cpuMicros() - start) / iterations;
  return { seal, open };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

const implementations = [nativeXChaCha, nobleXChaCha];
const results = new Map(
  implementations.map((impl) => [impl.name, { seal: [] as number[], open: [] as number[] }]),
);
// Warm both up (JIT, the runtime's cipher tables) before measuring.
for (const implementation of implementations) {
  for (let i = 0; i < 1000; i++) {
    openWith(implementation, {
      key,
      sealed: sealWith(implementation, { key, plaintext, aad }),
      aad,
    });
  }
}
console.log(
  `seal() and open() use ${aeadImplementation()}; ${PLAINTEXT_BYTES} B, ${iterations} each`,
);
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? implementations : [...implementations].reverse();
  const line: string[] = [];
  for (const implementation of order) {
    const { seal, open } = measure(implementation);
    const result = results.get(implementation.name);
    result?.seal.push(seal);
    result?.open.push(open);
    line.push(`${implementation.name} seal ${seal.toFixed(1)} open ${open.toFixed(1)}`);
  }
  console.log(`round ${round + 1}: ${line.join(' | ')} µs`);
}
for (const [name, { seal, open }] of results) {
  console.log(
    `median ${name}: seal ${median(seal).toFixed(1)} µs, open ${median(open).toFixed(1)} µs`,
  );
}
