/**
 * Maps inbound RTP timestamps (48 kHz Opus clock) to the media clock: a frame's best-case arrival,
 * from the smallest arrival - timestamp offset seen, creeping up slowly for clock drift. Unlike
 * arrival times, this stays evenly spaced when packets arrive or leave the jitter buffer in bursts,
 * which is what the echo guard needs to line the microphone up with what was sent.
 *
 * Pure: arrival times come with the packets; `fallbackNow` serves frames seen before any packet.
 */
const TICKS_PER_MS = 48;
/** Drift allowance: the offset may rise by this much per ms of arrivals (100 ppm). */
const CREEP_PER_MS = 1e-4;
/** An offset this much larger than the current one is a new stream (timestamp reset), not jitter. */
const RESYNC_MS = 1000;

export class CaptureClock {
  #lastTs: number | null = null;
  #extendedTs = 0;
  #offsetMs: number | null = null;
  #lastArrivalMs = 0;

  /**
   * Capture time (media clock, ms) of the audio stamped `timestamp`. `arrivalMs`: when its packet
   * arrived, for real packets; omitted for concealed or FEC-recovered frames.
   */
  map(timestamp: number, arrivalMs: number | null, fallbackNow: number): number {
    if (this.#lastTs === null) this.#extendedTs = timestamp;
    else this.#extendedTs += (timestamp - this.#lastTs) | 0; // signed 32-bit step: wraparound-safe
    this.#lastTs = timestamp;
    const tsMs = this.#extendedTs / TICKS_PER_MS;
    if (arrivalMs !== null) {
      const candidate = arrivalMs - tsMs;
      const crept = this.#offsetMs === null ? candidate : this.#offsetMs + (arrivalMs - this.#lastArrivalMs) * CREEP_PER_MS;
      this.#offsetMs = candidate < crept || candidate - crept > RESYNC_MS ? candidate : crept;
      this.#lastArrivalMs = arrivalMs;
    }
    return this.#offsetMs === null ? fallbackNow : tsMs + this.#offsetMs;
  }

  /** A new source (SSRC change, new peer): forget the mapping. */
  reset(): void {
    this.#lastTs = null;
    this.#offsetMs = null;
  }
}
