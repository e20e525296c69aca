/** Every route path of the wire contract, defined once. */
export const PATHS = {
  /** Liveness of Nexus or a Keeper: answers while the process serves. */
  health: '/v1/health',
} as const;
