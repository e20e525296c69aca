/**
 * The SPIFFE Workload API's wire names and its vendored `workload.proto`,
 * loaded with @grpc/proto-loader: what the client (`workload_api.ts`), the
 * agent's server and the test fakes share. No gRPC transport here.
 */
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

/** The metadata header every Workload API request must carry, with value `true`. */
export const WORKLOAD_API_HEADER = 'workload.spiffe.io';
export const WORKLOAD_API_SERVICE = 'SpiffeWorkloadAPI';
export const FETCH_X509_SVID_PATH = '/SpiffeWorkloadAPI/FetchX509SVID';
export const FETCH_X509_BUNDLES_PATH = '/SpiffeWorkloadAPI/FetchX509Bundles';

/** Options for @grpc/proto-loader: field names as in the proto, absent fields filled in. */
export const WORKLOAD_PROTO_LOAD_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

/** Absolute path of the vendored `workload.proto` beside this file. */
export function workloadProtoPath(): string {
  return fileURLToPath(new URL('./workload.proto', import.meta.url));
}

let cachedDefinition: protoLoader.PackageDefinition | undefined;

/**
 * The loaded proto (cached after the first call). Servers take
 * `definition.SpiffeWorkloadAPI` as their `grpc.ServiceDefinition`.
 */
export function loadWorkloadApiDefinition(): protoLoader.PackageDefinition {
  cachedDefinition ??= protoLoader.loadSync(workloadProtoPath(), WORKLOAD_PROTO_LOAD_OPTIONS);
  return cachedDefinition;
}

/** The `SpiffeWorkloadAPI` service definition, ready for `server.addService()`. */
export function workloadApiServiceDefinition(): protoLoader.ServiceDefinition {
  return loadWorkloadApiDefinition()[WORKLOAD_API_SERVICE] as protoLoader.ServiceDefinition;
}
