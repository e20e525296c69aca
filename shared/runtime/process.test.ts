/**
 * runService(): a SIGTERM sent the moment a program says it is ready (from
 * inside `start`, as every program does) stops it cleanly through its stop
 * function, and so does one sent while `start` is still running.
 * exitWhenFlushed(): a program that writes more than a pipe holds and exits
 * loses nothing, however slowly the other end reads.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const dir = mkdtempSync(join(tmpdir(), 'spike-run-service-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const PROCESS_MODULE = fileURLToPath(new URL('./process.ts', import.meta.url));

/** A program (an ES module outside any package, hence .mts) that says "ready" inside start, then takes `afterReadyMs` more to return its stop. */
function program(afterReadyMs: number): string {
  const file = join(dir, `program-${afterReadyMs}.mts`);
  writeFileSync(
    file,
    `import { runService, writeStdout } from ${JSON.stringify(PROCESS_MODULE)};
await runService('test-program', async () => {
  writeStdout('ready');
  await new Promise((resolve) => setTimeout(resolve, ${afterReadyMs}));
  return async () => { writeStdout('stopped cleanly'); };
});
setInterval(() => {}, 1000);
`,
  );
  return file;
}

function spawnProgram(file: string) {
  const isDeno = 'Deno' in globalThis;
  return isDeno
    ? spawn(join(process.cwd(), '.tools/node_modules/.bin/deno'), [
        'run',
        '-A',
        '--quiet',
        '--no-check',
        file,
      ])
    : spawn(process.execPath, ['--import', 'tsx', file]);
}

function run(file: string): Promise<{ status: number | string; out: string }> {
  const child = spawnProgram(file);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    if (out.includes('ready') && !child.killed) child.kill('SIGTERM');
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no exit; output: ${out}`)), 20_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code ?? signal ?? 'unknown', out });
    });
  });
}

for (const [when, afterReadyMs] of [
  ['right after it says it is ready', 0],
  ['while start is still running', 300],
] as const) {
  test(`a SIGTERM ${when} runs the stop function and exits 0`, async () => {
    const { status, out } = await run(program(afterReadyMs));
    assert.match(out, /stopped cleanly/);
    // Deno's child_process reports the signal it sent, not the child's status.
    if (!('Deno' in globalThis)) assert.equal(status, 0);
  });
}

test('exitWhenFlushed() exits with its status after a slow reader took all of stdout', async () => {
  const bytes = 2 * 1024 * 1024;
  const file = join(dir, 'flush.mts');
  writeFileSync(
    file,
    `import { exitWhenFlushed, writeStderr, writeStdout } from ${JSON.stringify(PROCESS_MODULE)};
writeStdout('x'.repeat(${bytes - 1}));
writeStderr('done');
await exitWhenFlushed(3);
`,
  );
  const child = spawnProgram(file);
  let received = 0;
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  // Take one chunk at a time and pause after each, so the pipe stays full
  // while the program reaches its exit.
  child.stdout.on('data', (chunk: Uint8Array) => {
    received += chunk.length;
    child.stdout.pause();
    setTimeout(() => child.stdout.resume(), 2);
  });
  const status = await new Promise<number | string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no exit; ${received} bytes`)), 60_000);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  assert.equal(received, bytes);
  assert.equal(err, 'done\n');
  assert.equal(status, 3);
});
