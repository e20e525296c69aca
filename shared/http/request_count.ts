/**
 * A count of requests since start, kept by a middleware and read by a route
 * (Nexus's audit trail counts the requests it records as denied; the status
 * route reports the count). Created before the app and handed to both, so
 * neither needs a reference to the other.
 */
export class RequestCount {
  #value = 0;

  get value(): number {
    return this.#value;
  }

  increment(): void {
    this.#value += 1;
  }
}
