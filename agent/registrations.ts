/**
 * The registration model of the embedded agent: which socket hands out which
 * SPIFFE ID. Each registration gets its own Workload API socket,
 * `<socket dir>/<name>.sock`; whoever can open that file receives the
 * identity, so the file's permissions are the whole attestation.
 */
import { join } from 'node:path';
import { agentId } from '../shared/spiffe/identities.ts';
import { type SpiffeId, spiffeIdFromPath, type TrustDomain } from '../shared/spiffe/spiffe_id.ts';

export interface Registration {
  /** A socket-file-safe word such as `nexus` or `keeper-1`. */
  readonly name: string;
  readonly spiffeId: SpiffeId;
  /** Absolute path of the unix socket that serves this identity. */
  readonly socketPath: string;
}

export interface RegistrationList {
  readonly registrations: readonly Registration[];
  /** Every problem found, in input order; empty when the list is valid. */
  readonly problems: readonly string[];
}

/** The socket name: a letter or digit, then letters, digits, `-` or `_`. */
const NAME_REGEXP = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const MAX_NAME_LENGTH = 64;
/**
 * `sun_path` holds 108 bytes on Linux (104 on macOS) including the final NUL;
 * a longer socket path cannot be bound, so refuse it at start-up.
 */
export const MAX_SOCKET_PATH_BYTES = 103;
const SOCKET_SUFFIX = '.sock';

/** The registrations SPIKE needs on one host: Nexus, three Keepers, Pilot. */
export const DEFAULT_REGISTRATIONS =
  'nexus=/spike/nexus,keeper-1=/spike/keeper/1,keeper-2=/spike/keeper/2,keeper-3=/spike/keeper/3,pilot=/spike/pilot/role/superuser';

/** `<socket dir>/<name>.sock` */
export function socketPathFor(socketDir: string, name: string): string {
  return join(socketDir, `${name}${SOCKET_SUFFIX}`);
}

/**
 * Parses `name=/spiffe/path,name=/spiffe/path…` into registrations of the
 * given trust domain. It collects every problem instead of stopping at the
 * first: bad names, bad or root paths, duplicate names or IDs, the reserved
 * agent ID (and anything under it), and socket paths too long to bind.
 */
export function parseRegistrations(
  text: string,
  options: { readonly trustDomain: TrustDomain; readonly socketDir: string },
): RegistrationList {
  const problems: string[] = [];
  const registrations: Registration[] = [];
  const names = new Set<string>();
  const ids = new Set<string>();
  const reserved = agentId(options.trustDomain);
  const entries = text.split(',').map((entry) => entry.trim());
  if (entries.length === 1 && entries[0] === '') {
    return { registrations, problems: ['must list at least one name=/path registration'] };
  }
  for (const entry of entries) {
    if (entry === '') {
      problems.push('must not contain empty entries');
      continue;
    }
    const eq = entry.indexOf('=');
    if (eq === -1) {
      problems.push(`has the entry "${entry}" without "=": write name=/spiffe/path`);
      continue;
    }
    const name = entry.slice(0, eq).trim();
    const path = entry.slice(eq + 1).trim();
    let isValid = true;
    if (!NAME_REGEXP.test(name) || name.length > MAX_NAME_LENGTH) {
      problems.push(
        `has the invalid name "${name}": use up to ${MAX_NAME_LENGTH} letters, digits, "-" or "_", starting with a letter or digit`,
      );
      isValid = false;
    } else if (names.has(name)) {
      problems.push(`has the name "${name}" more than once`);
      isValid = false;
    }
    names.add(name);
    let spiffeId: SpiffeId | undefined;
    if (path === '') {
      problems.push(`has no SPIFFE ID path for "${name}": write ${name}=/spiffe/path`);
    } else {
      try {
        spiffeId = spiffeIdFromPath(options.trustDomain, path);
      } catch (err) {
        problems.push(
          `has an invalid path for "${name}": ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
    if (spiffeId === undefined) {
      continue;
    }
    const idText = spiffeId.toString();
    if (spiffeId.equals(reserved) || idText.startsWith(`${reserved.toString()}/`)) {
      problems.push(`gives "${name}" the reserved agent ID "${idText}"`);
      isValid = false;
    } else if (ids.has(idText)) {
      problems.push(`gives the ID "${idText}" to more than one name`);
      isValid = false;
    }
    ids.add(idText);
    const socketPath = socketPathFor(options.socketDir, name);
    if (isValid && new TextEncoder().encode(socketPath).length > MAX_SOCKET_PATH_BYTES) {
      problems.push(
        `gives "${name}" the socket path "${socketPath}", longer than ${MAX_SOCKET_PATH_BYTES} bytes: choose a shorter SPIKE_AGENT_SOCKET_DIR`,
      );
      isValid = false;
    }
    if (isValid) {
      registrations.push(Object.freeze({ name, spiffeId, socketPath }));
    }
  }
  return { registrations: Object.freeze(registrations), problems: Object.freeze(problems) };
}
