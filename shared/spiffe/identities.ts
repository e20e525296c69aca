/**
 * The broker's own SPIFFE IDs, named as SPIKE names them, and the role
 * matchers built from them. This is the only place these paths are spelled;
 * everything else asks for `nexusId(td)` or `isNexus(td)` and compares parsed
 * values.
 */
import { type Matcher, matchIdOrUnder } from './match.ts';
import {
  type SpiffeId,
  spiffeIdFromPath,
  spiffeIdWithSegments,
  type TrustDomain,
} from './spiffe_id.ts';

/** The trust domain used when none is configured, as in SPIKE. */
export const DEFAULT_TRUST_DOMAIN_NAME = 'spike.ist';

const NEXUS_PATH = '/spike/nexus';
const KEEPER_PATH = '/spike/keeper';
const PILOT_SUPERUSER_PATH = '/spike/pilot/role/superuser';
const PILOT_RECOVER_PATH = '/spike/pilot/role/recover';
const PILOT_RESTORE_PATH = '/spike/pilot/role/restore';
const AGENT_PATH = '/spike/agent';

/** `spiffe://<td>/spike/nexus` */
export function nexusId(trustDomain: TrustDomain): SpiffeId {
  return spiffeIdFromPath(trustDomain, NEXUS_PATH);
}

/**
 * `spiffe://<td>/spike/keeper`, or `spiffe://<td>/spike/keeper/<name>` when a
 * name is given. The name is exactly one path segment; anything else throws
 * `InvalidSpiffeIdError`.
 */
export function keeperId(trustDomain: TrustDomain, name?: string): SpiffeId {
  const base = spiffeIdFromPath(trustDomain, KEEPER_PATH);
  return name === undefined ? base : spiffeIdWithSegments(base, name);
}

/** `spiffe://<td>/spike/pilot/role/superuser` */
export function pilotSuperuserId(trustDomain: TrustDomain): SpiffeId {
  return spiffeIdFromPath(trustDomain, PILOT_SUPERUSER_PATH);
}

/** `spiffe://<td>/spike/pilot/role/recover` */
export function pilotRecoverId(trustDomain: TrustDomain): SpiffeId {
  return spiffeIdFromPath(trustDomain, PILOT_RECOVER_PATH);
}

/** `spiffe://<td>/spike/pilot/role/restore` */
export function pilotRestoreId(trustDomain: TrustDomain): SpiffeId {
  return spiffeIdFromPath(trustDomain, PILOT_RESTORE_PATH);
}

/**
 * `spiffe://<td>/spike/agent`: the embedded identity provider's own ID.
 * Reserved: registrations must never hand it to a workload.
 */
export function agentId(trustDomain: TrustDomain): SpiffeId {
  return spiffeIdFromPath(trustDomain, AGENT_PATH);
}

/** Nexus itself or any ID under it (`.../spike/nexus/<instance>`). */
export function isNexus(trustDomain: TrustDomain): Matcher {
  return matchIdOrUnder(nexusId(trustDomain));
}

/** Any keeper: `.../spike/keeper` or `.../spike/keeper/<name>…`. */
export function isKeeper(trustDomain: TrustDomain): Matcher {
  return matchIdOrUnder(keeperId(trustDomain));
}

export function isPilotSuperuser(trustDomain: TrustDomain): Matcher {
  return matchIdOrUnder(pilotSuperuserId(trustDomain));
}

export function isPilotRecover(trustDomain: TrustDomain): Matcher {
  return matchIdOrUnder(pilotRecoverId(trustDomain));
}

export function isPilotRestore(trustDomain: TrustDomain): Matcher {
  return matchIdOrUnder(pilotRestoreId(trustDomain));
}
