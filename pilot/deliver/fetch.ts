/**
 * Reading the secrets a run or a template needs, all at once, with the
 * caller's own client.
 */
import type { SecretResponse } from '../../shared/api/secrets.ts';

/** The calls delivery makes; the SDK's client has them (and Pilot's PilotClient). */
export interface DeliveryClient {
  getSecret(path: string): Promise<SecretResponse>;
}

/** What one attempt to read a set of paths gave: each path's secret or its error. */
export type Fetched = ReadonlyMap<string, { ok: true; secret: SecretResponse } | FetchFailure>;

export interface FetchFailure {
  readonly ok: false;
  readonly error: unknown;
}

/** Reads every path at once (the current version of each); never rejects. */
export async function fetchEach(
  client: DeliveryClient,
  paths: readonly string[],
): Promise<Fetched> {
  const settled = await Promise.allSettled(paths.map((path) => client.getSecret(path)));
  const fetched = new Map<string, { ok: true; secret: SecretResponse } | FetchFailure>();
  paths.forEach((path, i) => {
    const result = settled[i] as PromiseSettledResult<SecretResponse>;
    fetched.set(
      path,
      result.status === 'fulfilled'
        ? { ok: true, secret: result.value }
        : { ok: false, error: result.reason },
    );
  });
  return fetched;
}

/**
 * Reads every path; the first failure, in the order of `paths`, is thrown,
 * so that the same command line always reports the same error.
 */
export async function fetchAll(
  client: DeliveryClient,
  paths: readonly string[],
): Promise<Map<string, SecretResponse>> {
  const secrets = new Map<string, SecretResponse>();
  for (const [path, result] of await fetchEach(client, paths)) {
    if (!result.ok) throw result.error;
    secrets.set(path, result.secret);
  }
  return secrets;
}

/** The version of each secret read, for change detection. */
export function versionsOf(secrets: ReadonlyMap<string, SecretResponse>): Map<string, number> {
  return new Map([...secrets].map(([path, secret]) => [path, secret.version]));
}
