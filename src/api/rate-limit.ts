/**
 * Per-key token buckets: `rate` requests per second with a burst of one
 * second's worth. Rate 0 means unlimited.
 */
export class RateLimiter {
  readonly #rate: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(ratePerSecond: number) {
    this.#rate = ratePerSecond;
  }

  /** Take one token for `key`; false when the bucket is empty. */
  take(key: string, now = performance.now()): boolean {
    if (this.#rate === 0) return true;
    let b = this.#buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.#rate, at: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(this.#rate, b.tokens + ((now - b.at) * this.#rate) / 1000);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
