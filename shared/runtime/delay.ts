/**
 * `delay(ms, { signal })`: the one way to wait in this code base. It resolves
 * after `ms` milliseconds, or rejects with the signal's reason as soon as the
 * signal aborts, so a stopping program never sits out a back-off. The timer
 * is cleared on abort and the listener removed on expiry: nothing is left
 * behind either way.
 */

export interface DelayOptions {
  /** Cuts the wait short; the promise then rejects with `signal.reason`. */
  readonly signal?: AbortSignal;
}

export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  if (!Number.isFinite(ms) || ms < 0) {
    throw new RangeError(`delay() takes a finite number of milliseconds >= 0, got ${ms}`);
  }
  const { signal } = options;
  if (signal?.aborted) {
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort(): void {
      clearTimeout(timer);
      reject(signal?.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
