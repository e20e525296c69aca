/**
 * The SPIFFE Workload API's wire names and its service definition: what the
 * client (`workload_api.ts`), the agent's server and the test fakes share. No
 * gRPC transport here.
 *
 * The messages come from `workload_proto.json`, the descriptor of the
 * vendored `workload.proto` (`node scripts/workload_proto.js` writes it;
 * `workload_proto.test.ts` checks that the two agree), loaded with the light
 * build of protobufjs: no program parses a .proto file when it starts.
 */

import type { IConversionOptions, INamespace, Type } from 'protobufjs/light.js';
import protobuf from 'protobufjs/light.js';
import descriptor from './workload_proto.json' with { type: 'json' };

/** The metadata header every Workload API request must carry, with value `true`. */
export const WORKLOAD_API_HEADER = 'workload.spiffe.io';
export const WORKLOAD_API_SERVICE = 'SpiffeWorkloadAPI';
export const FETCH_X509_SVID_PATH = '/SpiffeWorkloadAPI/FetchX509SVID';
export const FETCH_X509_BUNDLES_PATH = '/SpiffeWorkloadAPI/FetchX509Bundles';

/** The request of both calls we make: `X509SVIDRequest` and `X509BundlesRequest` have no fields, so zero bytes. */
export function serializeEmptyRequest(): Buffer {
  return Buffer.alloc(0);
}

/**
 * How decoded messages become plain objects: 64-bit integers and enums as
 * strings, absent fields filled in with their defaults, and the name of the
 * field set in a oneof. Field names stay as in the proto (the descriptor was
 * written with keepCase).
 */
const TO_OBJECT_OPTIONS: IConversionOptions = Object.freeze({
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

/**
 * One method of the service as gRPC takes it (the shape of
 * `grpc.MethodDefinition`, which a server's `addService()` and a client's
 * `makeServerStreamRequest()` accept; handlers are named as the methods):
 * messages are plain objects.
 */
export interface WorkloadMethodDefinition {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly requestSerialize: (value: unknown) => Buffer;
  readonly requestDeserialize: (bytes: Buffer) => unknown;
  readonly responseSerialize: (value: unknown) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => unknown;
}

/** The service's methods by name (`FetchX509SVID`…). */
export type WorkloadServiceDefinition = Readonly<Record<string, WorkloadMethodDefinition>>;

let cachedDefinition: WorkloadServiceDefinition | undefined;

/**
 * The `SpiffeWorkloadAPI` service definition, ready for `server.addService()`
 * (built on the first call).
 */
export function workloadApiServiceDefinition(): WorkloadServiceDefinition {
  cachedDefinition ??= buildServiceDefinition();
  return cachedDefinition;
}

function buildServiceDefinition(): WorkloadServiceDefinition {
  // The JSON's inferred type lacks the optional `comment` protobufjs declares as required.
  const root = protobuf.Root.fromJSON(descriptor as INamespace);
  const service = root.lookupService(WORKLOAD_API_SERVICE);
  const methods: Record<string, WorkloadMethodDefinition> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const request = method.resolvedRequestType;
    const response = method.resolvedResponseType;
    if (request === null || response === null) {
      throw new TypeError(`workload.proto: method "${method.name}" names an unknown message`);
    }
    methods[method.name] = Object.freeze({
      path: `/${WORKLOAD_API_SERVICE}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
    });
  }
  return Object.freeze(methods);
}

/** Encodes a plain object (checked and converted by `fromObject`, which throws on a wrong shape). */
function serializer(type: Type): (value: unknown) => Buffer {
  return function serializeWorkloadMessage(value: unknown): Buffer {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TypeError(`Failed to serialize message: expected a ${type.name} object`);
    }
    const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
    return Buffer.isBuffer(bytes)
      ? bytes
      : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/** Decodes bytes into a plain object; throws on bytes that are not this message. */
function deserializer(type: Type): (bytes: Buffer) => unknown {
  return function deserializeWorkloadMessage(bytes: Buffer): unknown {
    return type.toObject(type.decode(bytes), TO_OBJECT_OPTIONS);
  };
}
