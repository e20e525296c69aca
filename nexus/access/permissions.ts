/**
 * What a caller may do on a path. `read`, `write`, `list` and `delete` act on
 * secrets, policies (`sys/policies`) and named keys (`sys/keys/{name}`);
 * `encrypt`, `decrypt`, `rewrap` and `hmac` use a named key, and are granted
 * only on `sys/keys/…` (`KEY_USE_PERMISSIONS`). `super` means every one.
 */
export const PERMISSIONS = [
  'read',
  'write',
  'list',
  'delete',
  'encrypt',
  'decrypt',
  'rewrap',
  'hmac',
  'super',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** The permissions that use a named key, meaningful on `sys/keys/…` only. */
export const KEY_USE_PERMISSIONS: readonly Permission[] = ['encrypt', 'decrypt', 'rewrap', 'hmac'];

/** Where named encryption keys stand in policies: `sys/keys/{name}`. */
export const KEY_ROOT = 'sys/keys';

/**
 * The path a policy names key `name` by: `sys/keys/{name}`. Key names are
 * single segments of the path alphabet (`shared/api/transit.ts`), so every
 * key has exactly one path, under the reserved `sys/`, where no secret can
 * be: a pattern for secrets never reaches a key, nor one for keys a secret.
 */
export function keyPath(name: string): string {
  return `${KEY_ROOT}/${name}`;
}
