/**
 * Environment variables from secrets, for `spike run` and the agent's `env`
 * format: a key's variable name, the `--env NAME=PATH#KEY` form, and the
 * checks every set of variables passes (no two values for one name, no
 * name the broker's own programs read, nothing a variable cannot carry).
 * Messages name paths, keys and variables, never a value.
 */
import { parseSecretPath } from '../../shared/api/secret_path.ts';
import type { SecretResponse } from '../../shared/api/secrets.ts';
import { InvalidRequestError, NotFoundError } from '../../shared/errors/errors.ts';

/** Names a secret may not set: they tell SPIKE's programs and the SDK where to go. */
const RESERVED_PREFIXES = ['SPIKE_', 'SPIFFE_'];
const NAME_REGEXP = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A key's variable name: upper-cased, every character outside `[A-Z0-9_]` becoming `_`. */
export function variableNameOf(key: string): string {
  return key.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

/** One `--env NAME=PATH#KEY`. */
export interface SingleVariable {
  readonly name: string;
  readonly path: string;
  readonly key: string;
}

/** What `spike run` puts into its child's environment, before any value is fetched. */
export interface VariablePlan {
  /** `--secret` paths: every key becomes a variable. */
  readonly wholeSecrets: readonly string[];
  /** `--env` variables, one key each. */
  readonly singles: readonly SingleVariable[];
  /** Every path used, once each, in the order given. */
  readonly paths: readonly string[];
}

/**
 * Checks `--secret` and `--env` arguments without fetching anything: paths,
 * names, `#KEY`, and that no path or name is given twice.
 */
export function planVariables(
  secretArgs: readonly string[],
  envArgs: readonly string[],
): VariablePlan {
  const wholeSecrets: string[] = [];
  for (const arg of secretArgs) {
    const path = parseSecretPath(arg);
    if (wholeSecrets.includes(path)) {
      throw new InvalidRequestError(`--secret ${path} is given twice`);
    }
    wholeSecrets.push(path);
  }
  const singles: SingleVariable[] = [];
  for (const arg of envArgs) {
    const single = parseEnvArgument(arg);
    if (singles.some((other) => other.name === single.name)) {
      throw new InvalidRequestError(`--env sets ${single.name} twice`);
    }
    singles.push(single);
  }
  if (wholeSecrets.length === 0 && singles.length === 0) {
    throw new InvalidRequestError('Name at least one --secret PATH or --env NAME=PATH#KEY');
  }
  const paths = [...new Set([...wholeSecrets, ...singles.map((single) => single.path)])];
  return { wholeSecrets, singles, paths };
}

/** `NAME=PATH#KEY`: split at the first `=` and the first `#` after it. */
export function parseEnvArgument(arg: string): SingleVariable {
  const equals = arg.indexOf('=');
  const hash = arg.indexOf('#', equals + 1);
  if (equals <= 0 || hash < 0) {
    throw new InvalidRequestError(`--env "${arg}" must look like NAME=PATH#KEY`);
  }
  const name = arg.slice(0, equals);
  checkName(name, `--env ${name}`);
  const path = parseSecretPath(arg.slice(equals + 1, hash));
  const key = arg.slice(hash + 1);
  if (key === '') {
    throw new InvalidRequestError(`--env ${name}: the key after "#" is empty`);
  }
  return { name, path, key };
}

/**
 * The variables of a plan from the fetched secrets: every key of each
 * `--secret`, then each `--env`. A missing key is `ERR_NOT_FOUND`; two
 * values for one name, a name a variable cannot have, a reserved name and
 * a value holding NUL are `ERR_INVALID_REQUEST`.
 */
export function buildVariables(
  plan: VariablePlan,
  secrets: ReadonlyMap<string, SecretResponse>,
): Record<string, string> {
  const variables = new Map<string, { readonly value: string; readonly from: string }>();
  const set = (name: string, value: string, from: string) => {
    const earlier = variables.get(name);
    if (earlier !== undefined) {
      throw new InvalidRequestError(
        `${from} and ${earlier.from} both set ${name}; use --env to name one of them otherwise`,
      );
    }
    if (value.includes('\0')) {
      throw new InvalidRequestError(`${from} holds a NUL character, which no variable can carry`);
    }
    variables.set(name, { value, from });
  };
  for (const path of plan.wholeSecrets) {
    const secret = secretOf(secrets, path);
    for (const key of Object.keys(secret.data).sort()) {
      const from = `key "${key}" of ${path}`;
      const name = variableNameOf(key);
      checkName(name, `${from} (variable ${name})`, `; read it with --env NAME=${path}#${key}`);
      set(name, secret.data[key] as string, from);
    }
  }
  for (const single of plan.singles) {
    const secret = secretOf(secrets, single.path);
    if (!Object.hasOwn(secret.data, single.key)) {
      throw new NotFoundError(
        `Secret "${single.path}" version ${secret.version} has no key "${single.key}" (for --env ${single.name})`,
      );
    }
    set(single.name, secret.data[single.key] as string, `--env ${single.name}`);
  }
  const result: Record<string, string> = {};
  for (const [name, { value }] of variables) result[name] = value;
  return result;
}

/** Refuses a name no variable can have, or one SPIKE's programs read. */
export function checkName(name: string, what: string, hint = ''): void {
  if (!NAME_REGEXP.test(name)) {
    throw new InvalidRequestError(
      `${what}: a variable name is letters, digits and "_", not starting with a digit${hint}`,
    );
  }
  const reserved = RESERVED_PREFIXES.find((prefix) => name.toUpperCase().startsWith(prefix));
  if (reserved !== undefined) {
    throw new InvalidRequestError(
      `${what}: names starting with ${reserved} are SPIKE's own settings and cannot come from a secret${hint}`,
    );
  }
}

function secretOf(secrets: ReadonlyMap<string, SecretResponse>, path: string): SecretResponse {
  const secret = secrets.get(path);
  if (secret === undefined) {
    throw new Error(`${path} was not fetched`);
  }
  return secret;
}
