// When to try the next resume after the signaling socket was lost: the first attempt at once, then
// growing delays with jitter (clients dropped by one network event must not come back in step),
// until a total deadline. Pure: the caller passes the elapsed time, randomness can be injected.

export interface ReconnectBackoffOptions {
  /** Delay before the second attempt, ms; each later one is `multiplier` times the previous. */
  initialDelayMs: number;
  multiplier: number;
  /** Cap of the delay before jitter, ms. */
  maxDelayMs: number;
  /** Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
  /** No attempt starts later than this (ms) after the socket was lost. */
  deadlineMs: number;
}

export const DEFAULT_RECONNECT_BACKOFF_OPTIONS: Readonly<ReconnectBackoffOptions> = {
  initialDelayMs: 250,
  multiplier: 2,
  maxDelayMs: 5_000,
  jitter: 0.2,
  deadlineMs: 30_000,
};

export class ReconnectBackoff {
  readonly options: Readonly<ReconnectBackoffOptions>;
  readonly #random: () => number;
  #attempts = 0;

  constructor(options: Partial<ReconnectBackoffOptions> = {}, random: () => number = Math.random) {
    this.options = { ...DEFAULT_RECONNECT_BACKOFF_OPTIONS, ...options };
    this.#random = random;
  }

  /** Attempts scheduled so far. */
  get attempts(): number {
    return this.#attempts;
  }

  /**
   * The delay before the next attempt, or null once the deadline has passed.
   * `elapsedMs`: time since the socket was lost.
   */
  next(elapsedMs: number): number | null {
    const { initialDelayMs, multiplier, maxDelayMs, jitter, deadlineMs } = this.options;
    if (elapsedMs >= deadlineMs) return null;
    const n = this.#attempts;
    const base = n === 0 ? 0 : Math.min(maxDelayMs, initialDelayMs * multiplier ** (n - 1));
    const delay = Math.round(base * (1 + jitter * (2 * this.#random() - 1)));
    this.#attempts++;
    // The last attempt starts at the deadline rather than being skipped: the network may be back by then.
    return Math.min(delay, deadlineMs - elapsedMs);
  }
}
