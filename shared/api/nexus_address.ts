/**
 * Where Nexus listens unless told otherwise. Nexus binds this port, the local
 * launcher starts it there, and Pilot and the SDK look for it there, so the
 * three defaults can never drift apart.
 */

/** Nexus's mTLS port when `SPIKE_NEXUS_TLS_PORT` is not set. */
export const DEFAULT_NEXUS_PORT = 8553;

/** The Nexus URL a client uses when it is given none: this host, the default port. */
export const DEFAULT_NEXUS_URL = `https://localhost:${DEFAULT_NEXUS_PORT}`;
