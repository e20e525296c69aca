/**
 * Pilot's time budget and what it says when it cannot get going, against an
 * in-process Workload API: a socket that is not there fails at once and says
 * what to set and how to start the local broker; a wait for an SVID that
 * runs out names the setting that bounded it; a Nexus that stayed
 * unreachable until the deadline names SPIKE_PILOT_TIMEOUT. Also how
 * reportFailure shows an untrusted server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  NotFoundError,
  ServerUntrustedError,
  UnavailableError,
  WorkloadApiUnavailableError,
} from '../shared/errors/errors.ts';
import { type FakeWorkloadApi, startFakeWorkloadApi } from '../test/harness/fake_workload_api.ts';
import { loadPilotConfig, type PilotConfig } from './config.ts';
import { budgetDeadline, explainBudget, openPilotSource } from './connect.ts';
import { type Output, reportFailure } from './output.ts';

/** Far beyond the test runner's timeout: a wait this long has not been cut short. */
const NEVER = '10m';

function config(env: Record<string, string>): PilotConfig {
  return loadPilotConfig({ SPIKE_TRUST_ROOT: 'unit.test', ...env });
}

describe('openPilotSource()', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spike-pilot-connect-'));
  const fakes: FakeWorkloadApi[] = [];

  after(async () => {
    for (const fake of fakes) await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a socket that does not exist fails at once, with what to set and how to start a broker', async () => {
    const address = `unix://${join(dir, 'missing.sock')}`;
    const settings = config({
      SPIFFE_ENDPOINT_SOCKET: address,
      SPIKE_SPIFFE_SOURCE_TIMEOUT: NEVER,
      SPIKE_PILOT_TIMEOUT: NEVER,
    });
    await assert.rejects(openPilotSource(settings, budgetDeadline(settings)), (err: unknown) => {
      assert.ok(err instanceof WorkloadApiUnavailableError, String(err));
      assert.equal(
        err.message,
        `Cannot connect to the Workload API at ${address}: the socket does not exist; set SPIFFE_ENDPOINT_SOCKET to the socket of a running SPIFFE agent, or start the local broker with "npm start" (spike-local) and use the SPIFFE_ENDPOINT_SOCKET it prints`,
      );
      return true;
    });
  });

  for (const [bound, env] of [
    ['SPIKE_PILOT_TIMEOUT', { SPIKE_PILOT_TIMEOUT: '200ms', SPIKE_SPIFFE_SOURCE_TIMEOUT: NEVER }],
    [
      'SPIKE_SPIFFE_SOURCE_TIMEOUT',
      { SPIKE_PILOT_TIMEOUT: NEVER, SPIKE_SPIFFE_SOURCE_TIMEOUT: '200ms' },
    ],
  ] as const) {
    test(`a Workload API that sends no SVID is waited for until ${bound}, which is named`, async () => {
      const fake = await startFakeWorkloadApi();
      fakes.push(fake);
      const settings = config({ SPIFFE_ENDPOINT_SOCKET: fake.address, ...env });
      await assert.rejects(openPilotSource(settings, budgetDeadline(settings)), (err: unknown) => {
        assert.ok(err instanceof WorkloadApiUnavailableError, String(err));
        assert.match(
          err.message,
          new RegExp(`; spike waits at most ${bound} \\(200 ms\\) for it$`),
        );
        return true;
      });
    });
  }
});

describe('explainBudget()', () => {
  const settings = config({ SPIKE_PILOT_TIMEOUT: '5s' });
  const deadline = 1_000_000;
  const unreachable = new UnavailableError('Nexus is unreachable at https://x: timed out');

  test('names SPIKE_PILOT_TIMEOUT when Nexus was unreachable until the deadline', () => {
    const explained = explainBudget(unreachable, settings, deadline, deadline);
    assert.ok(explained instanceof UnavailableError);
    assert.equal(
      explained.message,
      'Nexus is unreachable at https://x: timed out; spike gives up after SPIKE_PILOT_TIMEOUT (5000 ms) in all',
    );
  });

  test('leaves an earlier failure, and any other error, as it is', () => {
    assert.equal(explainBudget(unreachable, settings, deadline, deadline - 1000), unreachable);
    const missing = new NotFoundError('No secret');
    assert.equal(explainBudget(missing, settings, deadline, deadline), missing);
  });
});

describe('reportFailure() of an untrusted server', () => {
  test('exits 3 and says what to check, not that Nexus is unreachable', () => {
    const lines: string[] = [];
    const output: Output = {
      stdout: () => {},
      stdoutBytes: () => {},
      stderr: (text) => lines.push(text),
    };
    const status = reportFailure(
      output,
      new ServerUntrustedError('The server at https://x is not trusted: unable to verify'),
    );
    assert.equal(status, 3);
    assert.deepEqual(lines, [
      "spike: The server at https://x is not trusted: unable to verify; check that SPIKE_NEXUS_API_URL is Nexus, that SPIKE_TRUST_ROOT names its trust domain, and that the Workload API's trust bundle holds its CA [ERR_SERVER_UNTRUSTED]",
    ]);
  });
});
