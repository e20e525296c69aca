/**
 * Workload API endpoint addresses (SPIFFE_Workload_Endpoint.md §4), the form
 * `SPIFFE_ENDPOINT_SOCKET` takes: `unix:///absolute/path.sock` or
 * `tcp://<IP literal>:<port>`. Parsing is strict and pure: anything the spec
 * does not allow (an authority on unix, a path or a host name on tcp, a
 * query, fragment or userinfo anywhere) is refused with an
 * `InvalidWorkloadApiAddressError` (code `ERR_CONFIG_INVALID`) whose
 * one-line message names the offending part.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { InvalidWorkloadApiAddressError } from '../errors/errors.ts';

export type WorkloadApiAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** Characters RFC 3986 allows anywhere in a URI (reserved, unreserved, `%`). */
const URI_CHARS_REGEXP = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]*$/;
/** RFC 3986 appendix B split: scheme, `//authority`, path, `?query`, `#fragment`. */
const URI_PARTS_REGEXP = /^([A-Za-z][A-Za-z0-9+.-]*):(\/\/[^/?#]*)?([^?#]*)(\?[^#]*)?(#.*)?$/;
const PERCENT_ESCAPE_REGEXP = /%(?![0-9A-Fa-f]{2})/;
const PORT_REGEXP = /^[0-9]{1,5}$/;

/** Parses a Workload API address or throws `InvalidWorkloadApiAddressError` (quoting the value). */
export function parseWorkloadApiAddress(value: string): WorkloadApiAddress {
  if (typeof value !== 'string' || value === '') {
    throw invalid(String(value), 'it is empty');
  }
  if (!URI_CHARS_REGEXP.test(value)) {
    throw invalid(value, 'it contains characters that are not allowed in a URI');
  }
  if (PERCENT_ESCAPE_REGEXP.test(value)) {
    throw invalid(value, 'it contains a malformed percent-escape');
  }
  const parts = URI_PARTS_REGEXP.exec(value);
  if (parts === null) {
    throw invalid(value, 'it is not a URI with a "unix" or "tcp" scheme');
  }
  const scheme = (parts[1] ?? '').toLowerCase();
  const authority = parts[2] === undefined ? undefined : parts[2].slice(2);
  const path = parts[3] ?? '';
  if (parts[4] !== undefined) {
    throw invalid(value, 'a query is not allowed');
  }
  if (parts[5] !== undefined) {
    throw invalid(value, 'a fragment is not allowed');
  }
  switch (scheme) {
    case 'unix':
      return parseUnix(value, authority, path);
    case 'tcp':
      return parseTcp(value, authority, path);
    default:
      throw invalid(value, `the scheme "${scheme}" is not supported, use "unix" or "tcp"`);
  }
}

/** The channel target string `@grpc/grpc-js` expects for an address. */
export function grpcTargetForAddress(address: WorkloadApiAddress): string {
  if (address.kind === 'unix') {
    // `unix:<absolute path>`: grpc-js takes the path verbatim, no decoding.
    return `unix:${address.path}`;
  }
  // The ipv4/ipv6 resolvers skip DNS entirely, which is what an IP literal wants.
  return isIPv6(address.host)
    ? `ipv6:[${address.host}]:${address.port}`
    : `ipv4:${address.host}:${address.port}`;
}

/** A display form of an address for logs and error messages. */
export function formatWorkloadApiAddress(address: WorkloadApiAddress): string {
  if (address.kind === 'unix') {
    return `unix://${address.path}`;
  }
  return isIPv6(address.host)
    ? `tcp://[${address.host}]:${address.port}`
    : `tcp://${address.host}:${address.port}`;
}

function parseUnix(
  value: string,
  authority: string | undefined,
  rawPath: string,
): WorkloadApiAddress {
  if (authority !== undefined && authority !== '') {
    if (authority.includes('@')) {
      throw invalid(value, 'userinfo is not allowed');
    }
    throw invalid(
      value,
      `an authority ("${authority}") is not allowed, use "unix:///absolute/path"`,
    );
  }
  if (rawPath === '') {
    throw invalid(value, 'the socket path is missing');
  }
  if (!rawPath.startsWith('/')) {
    throw invalid(value, 'the socket path must be absolute');
  }
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    throw invalid(value, 'the socket path has an invalid percent-escape');
  }
  if (path.includes('\0')) {
    throw invalid(value, 'the socket path contains a NUL byte');
  }
  if (path.endsWith('/')) {
    throw invalid(value, 'the socket path names a directory, not a socket');
  }
  return Object.freeze({ kind: 'unix', path });
}

function parseTcp(value: string, authority: string | undefined, path: string): WorkloadApiAddress {
  if (authority === undefined) {
    throw invalid(value, 'it must be "tcp://<IP>:<port>"');
  }
  if (authority.includes('@')) {
    throw invalid(value, 'userinfo is not allowed');
  }
  if (path !== '') {
    throw invalid(value, 'a path is not allowed');
  }
  let host: string;
  let portText: string;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) {
      throw invalid(value, 'the IPv6 host has no closing "]"');
    }
    host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (!rest.startsWith(':')) {
      throw invalid(value, 'the port is missing');
    }
    portText = rest.slice(1);
    if (!isIPv6(host) || host.includes('%')) {
      throw invalid(value, `the host "${host}" is not an IPv6 literal`);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon === -1) {
      throw invalid(value, 'the port is missing');
    }
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
    if (host === '') {
      throw invalid(value, 'the host is missing');
    }
    if (!isIPv4(host)) {
      throw invalid(value, `the host "${host}" must be an IP address, not a name`);
    }
  }
  if (portText === '') {
    throw invalid(value, 'the port is missing');
  }
  if (!PORT_REGEXP.test(portText)) {
    throw invalid(value, `the port "${portText}" is not a number`);
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) {
    throw invalid(value, `the port ${port} is out of range 1-65535`);
  }
  return Object.freeze({ kind: 'tcp', host, port });
}

function invalid(value: string, reason: string): InvalidWorkloadApiAddressError {
  return new InvalidWorkloadApiAddressError(
    `Workload API address "${value}" is invalid: ${reason}`,
  );
}
