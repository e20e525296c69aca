/**
 * The secret read, answered straight from the `node:https` request handler
 * for the requests that need nothing else (ADR 0020): most reads. Hono's
 * adapter, its context and middleware chain cost as much CPU as the read's
 * own work (docs/performance.md), and a read is the one request a broker
 * answers by the thousand.
 *
 * It takes a request only when every check the app would make passes, and
 * decides that before it changes anything: an audit trail that can be
 * written (or does not fail closed), a plain Host, a GET of
 * `/v1/secrets/data/{path}` with at most `?version=N` or a long-poll's
 * `?newerThan=N[&wait=D]` (ADR 0024: a waiting watch then holds no Hono
 * context or middleware frames, a third of its memory), no body, a verified
 * peer whose SVID has not expired, a well-formed path (which has no percent
 * escapes, dot segments or control characters, so the app's refusal of
 * ambiguous paths has nothing to refuse) that the peer may read. Anything
 * else goes to the app untouched, which answers it (a refusal, a HEAD, a
 * query it does not know), audits and logs it as it would any request.
 * Then, in the app's order: a token of the peer's rate limit (an empty
 * bucket also goes to the app, which answers 429), the read, the audit
 * event (the same `auditRequest` the middleware writes, so the same line),
 * and only once that is written, the answer (then the request metrics, as
 * the app's outermost middleware records them), with the same status, headers
 * and body as the app's route (`secret_read.test.ts` holds the two side by side).
 */
import { Buffer } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody } from '../../shared/api/error_body.ts';
import { PATHS } from '../../shared/api/paths.ts';
import { parseVersionQuery, parseWatchQuery, type WatchQuery } from '../../shared/api/secrets.ts';
import { InternalError } from '../../shared/errors/errors.ts';
import { statusForCode } from '../../shared/errors/http_status.ts';
import { type AuditOptions, auditRequest, refusesRequests } from '../../shared/http/audit.ts';
import { toBrokerError } from '../../shared/http/error_handler.ts';
import type { TokenBuckets } from '../../shared/http/rate_limit.ts';
import type { RequestShortcut } from '../../shared/http/serve.ts';
import type { Logger } from '../../shared/log/logger.ts';
import type { RequestRecorder } from '../../shared/ops/metrics.ts';
import type { VerifiedSvid } from '../../shared/spiffe/x509_svid.ts';
import type { AccessChecker } from '../access/check_access.ts';
import type { SecretStore } from '../store/secret_store.ts';
import type { SecretWatches } from './secret_watch.ts';
import { DATA, decideSecretAccess, secretAnswer } from './secrets.ts';

export interface SecretReadDeps {
  readonly store: SecretStore;
  readonly access: AccessChecker;
  readonly logger: Logger;
  /** The connection's verified peer (the PeerVerifier's record), as the app finds it. */
  readonly peerOf: (request: IncomingMessage) => VerifiedSvid | undefined;
  /** The app's own buckets: one limit, whichever of the two answers. */
  readonly rateLimit?: TokenBuckets | undefined;
  /** The app's audit options; without them (tests) nothing is audited, as in the app. */
  readonly audit?: AuditOptions | undefined;
  /** The app's request metrics; without them nothing is counted, as in the app. */
  readonly metrics?: RequestRecorder | undefined;
  /** Where long-poll reads wait (the app's own). */
  readonly watches: SecretWatches;
}

/**
 * The path and the queries this shortcut knows: none, `version=N`, or a
 * long-poll's `newerThan=N` with or without `wait=D` after it, as the SDK
 * sends them. The path is checked by `parseSecretPath`, the values by the
 * app's own parsers.
 */
const READ_TARGET = new RegExp(
  `^${PATHS.secretData}/([^?#]+)(?:\\?(?:version=([^&#]*)|newerThan=([^&#]*)(?:&wait=([^&#]*))?))?$`,
);

/**
 * A host name or address with an optional port that `@hono/node-server`
 * admits without parsing it as a URL (its own fast test, restated); any
 * other Host goes to the app, which refuses it or admits it as it always
 * does.
 */
const PLAIN_HOST = /^[a-z0-9._-]+(?::(?:[1-5]\d{3,4}|[6-9]\d{3}))?$/;

export function createSecretReadShortcut(deps: SecretReadDeps): RequestShortcut {
  const { access, rateLimit, audit } = deps;
  const now = audit?.now ?? Date.now;
  return function shortcutSecretRead(request, response) {
    if (request.method !== 'GET') return false;
    const target = READ_TARGET.exec(request.url ?? '');
    if (target === null) return false;
    const { headers } = request;
    // The adapter refuses a missing or malformed Host (400); only a plain one is taken here.
    if (headers.host === undefined || !PLAIN_HOST.test(headers.host)) return false;
    const length = headers['content-length'];
    if (headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')) {
      return false;
    }
    // A sink that fails closed and cannot write: the app refuses (503).
    if (audit !== undefined && refusesRequests(audit.sink)) return false;
    const started = now();
    const startedMs = performance.now();
    const peer = deps.peerOf(request);
    if (peer === undefined || peer.notAfter.getTime() <= Date.now()) return false;
    let read: ReadRequest;
    try {
      const outcome = decideSecretAccess(access, peer.id, 'read', target[1]);
      if (!outcome.allowed) return false;
      const isWatch = target[3] !== undefined;
      read = {
        peer: peer.id.toString(),
        path: outcome.target,
        version: parseVersionQuery(target[2], 'version'),
        watch: isWatch ? parseWatchQuery(target[3], target[4], undefined) : undefined,
        decision: { reason: outcome.reason, policy: outcome.policy ?? null },
        started,
        startedMs,
      };
    } catch {
      return false;
    }
    if (rateLimit !== undefined && !rateLimit.take(read.peer).isAllowed) return false;
    answer(deps, read, response).catch((err: unknown) => {
      // Not reached by design (every step above settles); never leave the
      // client hanging if it is.
      deps.logger.error('Unhandled error', { error: err instanceof Error ? err.name : 'unknown' });
      response.destroy();
    });
    return true;
  };
}

interface ReadRequest {
  readonly peer: string;
  readonly path: ReturnType<typeof decideSecretAccess>['target'];
  readonly version: number | undefined;
  /** A long-poll read's queries (`secret_watch.ts`); undefined for a plain read. */
  readonly watch: WatchQuery | undefined;
  readonly decision: { readonly reason: string; readonly policy: string | null };
  readonly started: number;
  /** `performance.now()` at the start, for the request metrics. */
  readonly startedMs: number;
}

async function answer(deps: SecretReadDeps, read: ReadRequest, response: ServerResponse) {
  let status = 200;
  let errorCode: string | null = null;
  let body: string;
  try {
    if (read.watch === undefined) {
      body = secretAnswer(await deps.store.get(read.path, read.version));
    } else {
      const secret = await deps.watches.wait(read.path, read.watch, read.peer, response);
      // As the app: a wait that ended without a change is a 304 with no body.
      status = secret === undefined ? 304 : 200;
      body = secret === undefined ? '' : secretAnswer(secret);
    }
  } catch (err) {
    const error = toBrokerError(err, deps.logger);
    status = statusForCode(error.code);
    errorCode = error.code;
    body = JSON.stringify(errorBody(error));
  }
  if (deps.audit !== undefined) {
    const result = await auditRequest(deps.audit, {
      started: read.started,
      peer: read.peer,
      method: 'GET',
      route: DATA,
      annotation: {
        action: read.watch === undefined ? 'secret.read' : 'secret.watch',
        resource: read.path,
        decision: read.decision,
      },
      status,
      errorCode,
    });
    // As in the app: failing closed, an answer whose audit line is not
    // written is a 500; failing open, the answer stands.
    if (!result.written && deps.audit.sink.failClosed) {
      const error = new InternalError(undefined, { cause: result.error });
      status = statusForCode(error.code);
      body = JSON.stringify(errorBody(error));
    }
  }
  if (status === 304) {
    response.writeHead(status, { 'cache-control': 'no-store' });
    response.end();
  } else {
    response.writeHead(status, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
    });
    response.end(body);
  }
  deps.metrics?.recordRequest(DATA, 'GET', status, (performance.now() - read.startedMs) / 1000);
}
