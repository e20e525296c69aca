/**
 * Wire contract of the data-key (keyring) routes: rotation and its status
 * (docs/keys.md, "Rotating the data key"). Counts and times only: no route
 * ever carries key material.
 */

/** One term of the keyring. Times are ISO 8601; null for a term made before terms were recorded. */
export interface KeyringTermView {
  readonly term: number;
  readonly createdAt: string | null;
  readonly activeFrom: string | null;
}

/** `POST /v1/operator/keyring/rotate` → the new term. */
export interface RotateDataKeyResponse {
  readonly term: KeyringTermView;
}

/** `GET /v1/operator/keyring` → the terms, the rows under each, and the sweep. */
export interface KeyringStatusResponse {
  /** The term new rows are sealed under. */
  readonly activeTerm: number;
  readonly terms: readonly KeyringTermView[];
  /** Sealed rows (secret versions, custom metadata, named-key versions) per term, by term number. */
  readonly rowsByTerm: Readonly<Record<string, number>>;
  readonly sweep: {
    readonly state: 'idle' | 'sweeping';
    /** Sealed rows under a term older than the active one: what the sweep has left. */
    readonly remaining: number;
    /** The term the current or last sweep sealed under. */
    readonly term: number | null;
    readonly rewrapped: number;
    readonly failed: number;
    readonly startedAt: string | null;
    readonly finishedAt: string | null;
  };
}
