// A token bucket: `burst` messages at once, then `perSecond` sustained. One per signaling socket,
// so a flooding client is slowed down without touching anyone else. Time comes from the caller.

export interface TokenBucketOptions {
  perSecond: number;
  burst: number;
}

export class TokenBucket {
  readonly #options: TokenBucketOptions;
  #tokens: number;
  #updatedAt: number | null = null;

  constructor(options: TokenBucketOptions) {
    this.#options = { ...options };
    this.#tokens = options.burst;
  }

  /** Takes one token at `nowMs` (any monotonic clock); false when the bucket is empty. */
  take(nowMs: number): boolean {
    if (this.#updatedAt !== null) {
      const refill = (Math.max(0, nowMs - this.#updatedAt) / 1000) * this.#options.perSecond;
      this.#tokens = Math.min(this.#options.burst, this.#tokens + refill);
    }
    this.#updatedAt = nowMs;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  toJSON(): { tokens: number } {
    return { tokens: Math.floor(this.#tokens) };
  }
}
