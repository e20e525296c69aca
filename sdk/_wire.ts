/**
 * Checks Nexus's answers where shared/api has no parser of its own (the
 * policy parsers there are used as they are). Unlike the request parsers,
 * these ignore fields they do not know, so that a newer Nexus that adds a
 * field does not break an older client; the fields they return are checked
 * for type and copied. Each throws `InternalError` naming the field.
 */
import type {
  KeyringStatusResponse,
  KeyringTermView,
  RotateDataKeyResponse,
} from '../shared/api/keyring.ts';
import type {
  RecoverResponse,
  RestoreResponse,
  RootKeyStatusBody,
  RotateRootKeyResponse,
  StatusResponse,
} from '../shared/api/operator.ts';
import type {
  ListResponse,
  MetadataResponse,
  SecretResponse,
  VersionInfoWire,
} from '../shared/api/secrets.ts';
import type { SnapshotRestoreResponse } from '../shared/api/snapshot.ts';
import { InternalError } from '../shared/errors/errors.ts';

type Fields = Record<string, unknown>;

function objectOf(value: unknown, what: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InternalError(`${what} must be a JSON object`);
  }
  return value as Fields;
}

function stringOf(fields: Fields, name: string): string {
  const value = fields[name];
  if (typeof value !== 'string') {
    throw new InternalError(`Field "${name}" must be a string`);
  }
  return value;
}

function timeOf(fields: Fields, name: string): string {
  const value = stringOf(fields, name);
  if (Number.isNaN(Date.parse(value))) {
    throw new InternalError(`Field "${name}" must be an ISO 8601 time`);
  }
  return value;
}

function integerOf(fields: Fields, name: string): number {
  const value = fields[name];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InternalError(`Field "${name}" must be a non-negative integer`);
  }
  return value;
}

function booleanOf(fields: Fields, name: string): boolean {
  const value = fields[name];
  if (typeof value !== 'boolean') {
    throw new InternalError(`Field "${name}" must be a boolean`);
  }
  return value;
}

function arrayOf(fields: Fields, name: string): unknown[] {
  const value = fields[name];
  if (!Array.isArray(value)) {
    throw new InternalError(`Field "${name}" must be an array`);
  }
  return value;
}

function stringMapOf(fields: Fields, name: string): Record<string, string> {
  const value = objectOf(fields[name], `Field "${name}"`);
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw new InternalError(`Field "${name}" must map keys to strings`);
    }
    out[key] = item;
  }
  return out;
}

function stringsOf(fields: Fields, name: string): string[] {
  return arrayOf(fields, name).map((item) => {
    if (typeof item !== 'string') {
      throw new InternalError(`Field "${name}" must hold only strings`);
    }
    return item;
  });
}

export function parseSecretResponse(body: unknown): SecretResponse {
  const fields = objectOf(body, 'The answer');
  return {
    path: stringOf(fields, 'path'),
    version: integerOf(fields, 'version'),
    data: stringMapOf(fields, 'data'),
    createdAt: timeOf(fields, 'createdAt'),
  };
}

function parseVersionInfo(value: unknown): VersionInfoWire {
  const fields = objectOf(value, 'An entry of "versions"');
  const deletedAt = fields.deletedAt;
  return {
    version: integerOf(fields, 'version'),
    createdAt: timeOf(fields, 'createdAt'),
    deletedAt: deletedAt === null ? null : timeOf(fields, 'deletedAt'),
    destroyed: booleanOf(fields, 'destroyed'),
  };
}

export function parseMetadataResponse(body: unknown): MetadataResponse {
  const fields = objectOf(body, 'The answer');
  const override = fields.maxVersionsOverride;
  return {
    path: stringOf(fields, 'path'),
    createdAt: timeOf(fields, 'createdAt'),
    updatedAt: timeOf(fields, 'updatedAt'),
    currentVersion: integerOf(fields, 'currentVersion'),
    oldestVersion: integerOf(fields, 'oldestVersion'),
    maxVersions: integerOf(fields, 'maxVersions'),
    maxVersionsOverride: override === null ? null : integerOf(fields, 'maxVersionsOverride'),
    versions: arrayOf(fields, 'versions').map(parseVersionInfo),
    customMetadata: stringMapOf(fields, 'customMetadata'),
  };
}

/** The versions that changed (`WatchResponse`), as a map, where a path named `__proto__` is an entry like any other. */
export function parseWatchResponse(body: unknown): Map<string, number> {
  const versions = objectOf(objectOf(body, 'The answer').versions, 'Field "versions"');
  const out = new Map<string, number>();
  for (const path of Object.keys(versions)) {
    out.set(path, integerOf(versions, path));
  }
  return out;
}

export function parseListResponse(body: unknown): ListResponse {
  const fields = objectOf(body, 'The answer');
  const paths = stringsOf(fields, 'paths');
  return fields.next === undefined ? { paths } : { paths, next: stringOf(fields, 'next') };
}

export function parseStatusResponse(body: unknown): StatusResponse {
  const fields = objectOf(body, 'The answer');
  const state = fields.state;
  if (state !== 'ready' && state !== 'sealed') {
    throw new InternalError('Field "state" must be "ready" or "sealed"');
  }
  return {
    state,
    spiffeId: stringOf(fields, 'spiffeId'),
    svidNotAfter: timeOf(fields, 'svidNotAfter'),
    refusedHandshakes: integerOf(fields, 'refusedHandshakes'),
    deniedRequests: integerOf(fields, 'deniedRequests'),
    keepers: arrayOf(fields, 'keepers').map((value) => {
      const keeper = objectOf(value, 'An entry of "keepers"');
      return {
        name: stringOf(keeper, 'name'),
        reachable: booleanOf(keeper, 'reachable'),
        generations: arrayOf(keeper, 'generations').map((generation) =>
          integerOf({ generation }, 'generation'),
        ),
      };
    }),
    ...(fields.rootKey === undefined ? {} : { rootKey: rootKeyStatusOf(fields.rootKey) }),
  };
}

function rootKeyStatusOf(value: unknown): RootKeyStatusBody {
  const fields = objectOf(value, '"rootKey"');
  const nullable = <T>(name: string, parse: (v: Fields) => T): T | null =>
    fields[name] === null ? null : parse(objectOf(fields[name], `"rootKey.${name}"`));
  return {
    generation: fields.generation === null ? null : integerOf(fields, 'generation'),
    shares: integerOf(fields, 'shares'),
    threshold: integerOf(fields, 'threshold'),
    lastRotation: nullable('lastRotation', (f) => ({
      generation: integerOf(f, 'generation'),
      at: timeOf(f, 'at'),
    })),
    lastRecoveryExport: nullable('lastRecoveryExport', (f) => ({
      generation: integerOf(f, 'generation'),
      at: timeOf(f, 'at'),
      stale: booleanOf(f, 'stale'),
    })),
  };
}

export function parseRecoverResponse(body: unknown): RecoverResponse {
  const fields = objectOf(body, 'The answer');
  return {
    generation: integerOf(fields, 'generation'),
    threshold: integerOf(fields, 'threshold'),
    shards: stringsOf(fields, 'shards'),
  };
}

export function parseRotateRootKeyResponse(body: unknown): RotateRootKeyResponse {
  const fields = objectOf(body, 'The answer');
  return {
    generation: integerOf(fields, 'generation'),
    shares: integerOf(fields, 'shares'),
    threshold: integerOf(fields, 'threshold'),
    keepers: stringsOf(fields, 'keepers'),
    rotatedAt: timeOf(fields, 'rotatedAt'),
  };
}

export function parseRestoreResponse(body: unknown): RestoreResponse {
  const fields = objectOf(body, 'The answer');
  return {
    generation: integerOf(fields, 'generation'),
    collected: integerOf(fields, 'collected'),
    threshold: integerOf(fields, 'threshold'),
    remaining: integerOf(fields, 'remaining'),
    restored: booleanOf(fields, 'restored'),
  };
}

export function parseSnapshotRestoreResponse(body: unknown): SnapshotRestoreResponse {
  const fields = objectOf(body, 'The answer');
  const state = stringOf(fields, 'state');
  if (state !== 'ready' && state !== 'sealed') {
    throw new InternalError('Field "state" must be "ready" or "sealed"');
  }
  return {
    createdAt: timeOf(fields, 'createdAt'),
    bytes: integerOf(fields, 'bytes'),
    sameKey: booleanOf(fields, 'sameKey'),
    state,
  };
}

/** A time field that may be null. */
function maybeTimeOf(fields: Fields, name: string): string | null {
  return fields[name] === null ? null : timeOf(fields, name);
}

function parseKeyringTerm(value: unknown): KeyringTermView {
  const fields = objectOf(value, 'A keyring term');
  return {
    term: integerOf(fields, 'term'),
    createdAt: maybeTimeOf(fields, 'createdAt'),
    activeFrom: maybeTimeOf(fields, 'activeFrom'),
  };
}

export function parseRotateDataKeyResponse(body: unknown): RotateDataKeyResponse {
  const fields = objectOf(body, 'The answer');
  return { term: parseKeyringTerm(fields.term) };
}

export function parseKeyringStatusResponse(body: unknown): KeyringStatusResponse {
  const fields = objectOf(body, 'The answer');
  const rows = objectOf(fields.rowsByTerm, 'Field "rowsByTerm"');
  const rowsByTerm: Record<string, number> = {};
  for (const term of Object.keys(rows)) {
    if (!/^[1-9][0-9]*$/.test(term)) {
      throw new InternalError('Field "rowsByTerm" must be keyed by term numbers');
    }
    rowsByTerm[term] = integerOf(rows, term);
  }
  const sweep = objectOf(fields.sweep, 'Field "sweep"');
  const state = stringOf(sweep, 'state');
  if (state !== 'idle' && state !== 'sweeping') {
    throw new InternalError('Field "state" must be "idle" or "sweeping"');
  }
  return {
    activeTerm: integerOf(fields, 'activeTerm'),
    terms: arrayOf(fields, 'terms').map(parseKeyringTerm),
    rowsByTerm,
    sweep: {
      state,
      remaining: integerOf(sweep, 'remaining'),
      term: sweep.term === null ? null : integerOf(sweep, 'term'),
      rewrapped: integerOf(sweep, 'rewrapped'),
      failed: integerOf(sweep, 'failed'),
      startedAt: maybeTimeOf(sweep, 'startedAt'),
      finishedAt: maybeTimeOf(sweep, 'finishedAt'),
    },
  };
}
