// A fixed-bucket latency histogram: 10 us resolution below 10 ms, 1 ms up to 1 s, overflow above.
// Cheap enough for every packet (one array increment), mergeable across threads.

const FINE_BUCKETS = 1000; // 0-10 ms in 10 us steps
const COARSE_BUCKETS = 990; // 10-1000 ms in 1 ms steps
const BUCKETS = FINE_BUCKETS + COARSE_BUCKETS + 1;

export class LatencyHistogram {
  readonly counts: Float64Array;
  #count = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Float64Array(BUCKETS);
    if (counts) {
      this.counts.set(counts);
      for (let i = 0; i < BUCKETS; i++) this.#count += this.counts[i]!;
    }
  }

  get count(): number {
    return this.#count;
  }

  record(ms: number): void {
    const v = ms < 0 ? 0 : ms;
    const index = v < 10 ? Math.floor(v * 100) : v < 1000 ? FINE_BUCKETS + Math.floor(v - 10) : BUCKETS - 1;
    this.counts[index]!++;
    this.#count++;
  }

  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.#count += other.count;
  }

  /** Upper edge of the bucket holding the p-quantile (0 < p <= 1), in ms; null when empty. */
  percentile(p: number): number | null {
    if (this.#count === 0) return null;
    const rank = Math.ceil(p * this.#count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return i < FINE_BUCKETS ? (i + 1) / 100 : i < BUCKETS - 1 ? i - FINE_BUCKETS + 11 : Infinity;
    }
    return null;
  }

  reset(): void {
    this.counts.fill(0);
    this.#count = 0;
  }
}
