/**
 * Connection URLs may carry a password (`postgres://user:secret@host/db`).
 * Every log line and error message shows them through `redactUrl`, which
 * replaces the password (and any `password` query parameter, which libpq
 * also reads) with `***`. Pure: no I/O.
 */

const MASK = '***';

/**
 * The URL with its password masked. Text that is not a URL with a host
 * (`user:pw@host` parses as an opaque URL) is masked whole: a password could
 * be anywhere in it.
 */
export function redactUrl(value: string | URL): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    return MASK;
  }
  if (url.host === '') return MASK;
  if (url.password !== '') url.password = MASK;
  for (const name of ['password', 'sslpassword']) {
    if (url.searchParams.has(name)) url.searchParams.set(name, MASK);
  }
  return url.href;
}
