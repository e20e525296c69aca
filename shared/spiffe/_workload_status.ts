/**
 * What the end of a Workload API call means, for both transports: the
 * watching streams over grpc-js (`workload_stream.ts`) and the one-shot fetch
 * over node:http2 (`workload_fetch_once.ts`). Both hand over a gRPC status
 * (code and details) and get the same error and the same verdict, so that a
 * program sees the same failure whichever transport it uses. No transport
 * here.
 */
import { WorkloadApiRejectedError, WorkloadApiUnavailableError } from '../errors/errors.ts';

/** The gRPC status codes this code tells apart (the gRPC spec's numbers). */
export const GRPC_STATUS = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
});

/** Every code's name, by number, as the spec (and grpc-js's `status` enum) spells it. */
const STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/**
 * The details of `Unavailable` when no connection could be made, as grpc-js
 * writes them ("No connection established. Last error: Error: connect ENOENT
 * /x.sock"); the one-shot fetch writes its connection errors the same way.
 */
const NO_CONNECTION = 'No connection established';

/** The details a transport gives for a connection that could not be made. */
export function noConnectionDetails(error: unknown): string {
  return `${NO_CONNECTION}. Last error: ${String(error)}`;
}

export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}

/** A call's end, classified: what to tell the program, and how the caller goes on. */
export type WorkloadCallEnd =
  /** `InvalidArgument`, `Unimplemented` or a runtime permission: no retry can help. */
  | { readonly kind: 'rejected'; readonly error: WorkloadApiRejectedError }
  /** `PermissionDenied`: the Workload API has no identity for this workload (now). */
  | { readonly kind: 'denied'; readonly error: WorkloadApiUnavailableError }
  /** Anything else, `OK` included: the stream ended or failed, and may work again. */
  | { readonly kind: 'failed'; readonly error: WorkloadApiUnavailableError };

export interface WorkloadCallStatus {
  readonly code: number;
  readonly details: string;
}

/**
 * The verdict on a call of `method` to the Workload API at `address` (its
 * display form) that ended with `status`.
 */
export function classifyWorkloadCallEnd(
  status: WorkloadCallStatus,
  method: string,
  address: string,
): WorkloadCallEnd {
  const codeName = statusName(status.code);
  const details = status.details === '' ? 'no details' : status.details;
  const denied = status.code === GRPC_STATUS.UNAVAILABLE ? runtimeDenial(details) : undefined;
  if (denied !== undefined) {
    return {
      kind: 'rejected',
      error: new WorkloadApiRejectedError(
        `The runtime does not allow connecting to the Workload API at ${address}: ${denied}; not retrying`,
      ),
    };
  }
  if (status.code === GRPC_STATUS.INVALID_ARGUMENT || status.code === GRPC_STATUS.UNIMPLEMENTED) {
    return {
      kind: 'rejected',
      error: new WorkloadApiRejectedError(
        `The Workload API rejected ${method} with ${codeName} ("${details}"); not retrying`,
      ),
    };
  }
  if (status.code === GRPC_STATUS.PERMISSION_DENIED) {
    return {
      kind: 'denied',
      error: new WorkloadApiUnavailableError(
        `The Workload API has no identity for this workload (${codeName}: "${details}")`,
      ),
    };
  }
  const what = status.code === GRPC_STATUS.OK ? 'ended' : `failed with ${codeName}`;
  const unreachable = status.code === GRPC_STATUS.UNAVAILABLE ? connectFailure(details) : undefined;
  return {
    kind: 'failed',
    error: new WorkloadApiUnavailableError(
      unreachable === undefined
        ? `The Workload API stream ${method} ${what} ("${details}")`
        : `Cannot connect to the Workload API at ${address}: ${unreachable}`,
    ),
  };
}

/**
 * Deno's refusal of the socket, as it appears in the details of
 * `Unavailable` ("… NotCapable: Requires write access to "/x.sock", run
 * again with the --allow-write flag …"; `PermissionDenied` before Deno 2).
 * The permission cannot be granted while the program runs, so it is final.
 */
const RUNTIME_DENIAL_REGEXP =
  /\b(?:NotCapable|PermissionDenied): (Requires .+? --allow-[a-z-]+ flag)/;

function runtimeDenial(details: string): string | undefined {
  return RUNTIME_DENIAL_REGEXP.exec(details)?.[1];
}

/**
 * Why no connection could be made, in words, from the system error in the
 * details of `Unavailable`; undefined for any other failure.
 */
function connectFailure(details: string): string | undefined {
  if (!details.includes(NO_CONNECTION)) {
    return undefined;
  }
  if (/\bENOENT\b/.test(details)) {
    return 'the socket does not exist';
  }
  if (/\bECONNREFUSED\b/.test(details)) {
    return 'nothing listens on it';
  }
  if (/\bEACCES\b/.test(details)) {
    return 'no permission to connect to it';
  }
  return details;
}
