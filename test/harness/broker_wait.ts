/**
 * Waits until a condition on a running broker holds, asking again every
 * 50 ms; a check that throws (Nexus not reachable yet, or a kept-alive
 * connection to one that is gone) counts as not yet. Past the deadline it
 * throws with the end of the broker's logs.
 */
import { delay } from '../../shared/runtime/delay.ts';
import type { Broker } from './broker.ts';

export async function waitUntilBroker(
  broker: Broker,
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // Not reachable yet, or a kept-alive connection to a Nexus that is gone.
      broker.closeClients();
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting until ${what}\n${broker.logs().slice(-4000)}`);
    }
    await delay(50);
  }
}

/** Writers and readers that run until stopped, tallying every answer that is not a success. */
