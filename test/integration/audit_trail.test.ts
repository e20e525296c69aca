/**
 * The audit trail's guarantee with a real Keeper process over real mTLS:
 * audit lines are batched per event-loop turn (ADR 0017), and still every
 * request that was answered has its line in the file, even when the process
 * is killed with SIGKILL the moment the first answer arrives, with many
 * requests in flight on several connections.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PATHS } from '../../shared/api/paths.ts';
import type { AuditEvent } from '../../shared/log/audit_log.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';
import { isKeeper } from '../../shared/spiffe/identities.ts';
import { MtlsClient } from '../../shared/spiffe/mtls_client.ts';
import { parseTrustDomain } from '../../shared/spiffe/spiffe_id.ts';
import { createX509Source, type X509Source } from '../../shared/spiffe/x509_source.ts';
import { completeLines } from '../harness/lines.ts';
import {
  describe as describeProgram,
  type RunningProgram,
  startProgram,
  stopAll,
} from '../harness/spawn.ts';

const TD_NAME = 'audit.test';
const TD = parseTrustDomain(TD_NAME);
const LISTENING_REGEXP = /"address":"(https:\/\/[^"]+)"[^\n]*"msg":"Listening"/;
const ROUNDS = 3;
const CLIENTS = 4;
const REQUESTS_PER_CLIENT = 8;

describe('the audit trail of a killed Keeper', () => {
  let dir: string;
  let source: X509Source;
  const logger = createLogger({ component: 'test', sink: createMemorySink() });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spike-audit-trail-'));
    const agent = startProgram('agent', {
      env: {
        SPIKE_TRUST_ROOT: TD_NAME,
        SPIKE_AGENT_DATA_DIR: dir,
        SPIKE_AGENT_WORKLOADS: 'nexus=/spike/nexus,keeper-1=/spike/keeper/1',
      },
    });
    await agent.waitFor(/Press Ctrl-C to stop/);
    source = await createX509Source({
      address: `unix://${join(dir, 'sockets', 'nexus.sock')}`,
      logger,
      timeoutMs: 10_000,
    });
  });

  after(async () => {
    source?.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every answered request is in the audit file after SIGKILL at the first answer', async () => {
    for (let round = 1; round <= ROUNDS; round++) {
      const auditLog = join(dir, `keeper-${round}.audit.jsonl`);
      const keeper: RunningProgram = startProgram('keeper', {
        env: {
          SPIKE_TRUST_ROOT: TD_NAME,
          SPIFFE_ENDPOINT_SOCKET: `unix://${join(dir, 'sockets', 'keeper-1.sock')}`,
          SPIKE_SPIFFE_SOURCE_TIMEOUT: '10s',
          SPIKE_KEEPER_TLS_PORT: '0',
          SPIKE_KEEPER_AUDIT_LOG: auditLog,
        },
      });
      const url = new URL(
        ((await keeper.waitFor(LISTENING_REGEXP))[1] as string) + PATHS.keeperGenerations,
      );
      const clients = Array.from(
        { length: CLIENTS },
        () => new MtlsClient({ source, authorizeServer: isKeeper(TD), timeoutMs: 10_000 }),
      );
      // Connect every client first, so the burst below is only requests.
      for (const client of clients) {
        assert.equal((await client.request({ method: 'GET', url })).status, 200);
      }
      let answered = 0;
      let killed = false;
      await Promise.all(
        clients.flatMap((client) =>
          Array.from({ length: REQUESTS_PER_CLIENT }, async () => {
            try {
              const response = await client.request({ method: 'GET', url });
              assert.equal(response.status, 200);
              answered += 1;
              if (!killed) {
                killed = true;
                keeper.child.kill('SIGKILL');
              }
            } catch {
              // Cut off by the kill: never answered, so nothing to check.
            }
          }),
        ),
      );
      for (const client of clients) client.close();
      assert.equal(await keeper.exited(), 'SIGKILL', describeProgram(keeper));
      const listed = completeLines(readFileSync(auditLog, 'utf8'))
        .map((line) => JSON.parse(line) as AuditEvent)
        .filter((event) => event.action === 'shard.list' && event.status === 200);
      assert.ok(answered >= 1, `round ${round}: no request was answered`);
      // The connecting requests, then at least every answered one of the burst.
      assert.ok(
        listed.length >= CLIENTS + answered,
        `round ${round}: ${answered} answered, ${listed.length - CLIENTS} audited`,
      );
    }
  });
});
