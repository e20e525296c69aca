/**
 * An example application: it reads its database password from SPIKE under
 * its own SPIFFE ID, through the SDK, and prints only a confirmation (its
 * SPIFFE ID, the path, the version and the password's length), never the
 * password. See docs/examples/README.md for the walk-through.
 *
 *   SPIFFE_ENDPOINT_SOCKET=unix://…/app.sock node --import tsx docs/examples/read_db_password.ts [path]
 *
 * `path` defaults to `app/example/db`; give another one to see the broker
 * refuse it. Exit status: 0 when the password was read, 1 otherwise, with
 * one line on stderr naming the error's code.
 */
import process from 'node:process';
import { createSpikeClient, isBrokerError, type SpikeClient } from '../../sdk/index.ts';

const NAME = 'read_db_password';
const DEFAULT_PATH = 'app/example/db';
const PASSWORD_KEY = 'password';
/** How long to wait for a Nexus that is still starting or unsealing. */
const RETRY_DEADLINE_MS = 15_000;

/** Reads the password and returns the confirmation line, which never contains it. */
async function readPassword(spike: SpikeClient, path: string): Promise<string> {
  const secret = await spike.getSecret(path);
  const password = secret.data[PASSWORD_KEY];
  if (password === undefined) {
    throw new Error(`the secret has no "${PASSWORD_KEY}" field`);
  }
  // Here the password would go to the database driver; only its length is shown.
  return (
    `${spike.spiffeId().toString()} read "${path}" (version ${secret.version}): ` +
    `a ${password.length}-character password`
  );
}

function describeError(err: unknown): string {
  if (isBrokerError(err)) {
    // AccessDeniedError (ERR_ACCESS_DENIED): no policy lets us read the path;
    // NotFoundError (ERR_NOT_FOUND): we may read it, but nothing is stored.
    return `${err.message} [${err.code}]`;
  }
  return err instanceof Error ? err.message : String(err);
}

const path = process.argv[2] ?? DEFAULT_PATH;
const socket = process.env.SPIFFE_ENDPOINT_SOCKET;
if (socket === undefined || socket === '') {
  process.stderr.write(
    `${NAME}: SPIFFE_ENDPOINT_SOCKET is not set; point it at this app's socket\n`,
  );
  process.exit(1);
}

let spike: SpikeClient | undefined;
let status = 0;
try {
  spike = await createSpikeClient({
    // The SDK never reads the environment; the application decides.
    workloadApiAddress: socket,
    // Unset, the SDK looks for Nexus at its default, https://localhost:8553.
    nexusUrl: process.env.SPIKE_NEXUS_API_URL,
    retryDeadlineMs: RETRY_DEADLINE_MS,
  });
  process.stdout.write(`${await readPassword(spike, path)}\n`);
} catch (err) {
  const who = spike === undefined ? 'this app' : spike.spiffeId().toString();
  process.stderr.write(`${NAME}: ${who} could not read "${path}": ${describeError(err)}\n`);
  status = 1;
} finally {
  spike?.close();
}
process.exit(status);
