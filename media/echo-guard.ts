/**
 * Tells the agent's own voice coming back on the microphone (a client without echo
 * cancellation) from the user talking. The server knows exactly what it sent: it keeps the level
 * envelope of its outbound frames (one per pacer tick) and compares the inbound envelope with it
 * at every plausible echo delay, over frames with sound on the microphone only.
 * - An envelope match at r >= `lockCorrelation` establishes the echo path (its delay) and teaches
 *   the echo return loss; near that delay, r >= `minCorrelation` is enough.
 * - Inbound audio louder than what was sent there (plus `maxGainDb`) is never echo: the user.
 * - On an established path, a frame whose envelope no longer lines up (timing slips when either
 *   side is overloaded) is still echo if it is no louder than the expected echo of what was sent
 *   around then (+ `doubleTalkMarginDb`); a user talking over the agent is heard above it.
 *
 * Pure: one `sent()` per outbound tick (null for "nothing sent"), one `isEcho()` per inbound frame
 * with its capture time, both on the media clock in ms. MediaSession maps inbound frames to capture
 * times from their RTP timestamps, so bursts out of the jitter buffer do not distort the timeline.
 */
import { frameLevelDb } from './speech-detector.ts';

export interface EchoGuardOptions {
  frameMs: number;
  /** Longest echo path (network both ways + jitter buffers + device) considered. */
  maxDelayMs: number;
  /** Envelope window compared, in frames. */
  windowFrames: number;
  minCorrelation: number;
  /** Envelope window (frames) that must match to establish the echo path: longer, so chance matches are rare. */
  lockWindowFrames: number;
  /** Correlation that establishes the echo path when none is known yet. */
  lockCorrelation: number;
  /** Echo can come back slightly louder than sent (client gain); more than this is not echo. */
  maxGainDb: number;
  /** Below this level, coding noise makes level comparisons meaningless: never "louder than sent". */
  quietDb: number;
  /** How many frames early the inbound capture-time estimate may run (negative lags searched). */
  earlyFrames: number;
  /** How far (frames) the echo path may wander from the learnt one under load. */
  wanderFrames: number;
  /**
   * A learnt echo path is forgotten after this much audio that should have matched it and did not:
   * sound on the microphone while the agent's voice was due back without a good match (halfway
   * between minCorrelation and lockCorrelation), or silence where the echo of loud audio was due.
   * Pauses of the agent do not count.
   */
  pathTimeoutMs: number;
  /**
   * A learnt path is forgotten sooner on silence where the echo of loud audio was due (this much of
   * it): real echo does not vanish while the agent talks, a chance match was never echo.
   */
  missingEchoMs: number;
  /** Confident matches before the echo path counts as established. */
  establishFrames: number;
  /** On an established path, speech this much above the expected echo level is the user. */
  doubleTalkMarginDb: number;
  /** Inbound frame timing further than this from its expected time resynchronises. */
  resyncMs: number;
  /** Inbound frames quieter than this, while echo may be arriving, count as echo (never a barge-in). */
  floorDb: number;
}

export const DEFAULT_ECHO_GUARD_OPTIONS: EchoGuardOptions = {
  frameMs: 20,
  maxDelayMs: 600,
  windowFrames: 20,
  lockWindowFrames: 20,
  minCorrelation: 0.75,
  lockCorrelation: 0.9,
  maxGainDb: 6,
  quietDb: -45,
  floorDb: -60,
  resyncMs: 120,
  earlyFrames: 5,
  wanderFrames: 3,
  establishFrames: 10,
  pathTimeoutMs: 1500,
  missingEchoMs: 400,
  doubleTalkMarginDb: 6,
};

const SILENT_DB = -90;

const levelOf = (frame: Int16Array): number => Math.max(SILENT_DB, frameLevelDb(frame));

export class EchoGuard {
  readonly options: EchoGuardOptions;
  // Outbound levels, one per pacer tick, in a ring.
  readonly #sent: Float64Array;
  #sentHead = -1; // tick index of the newest entry
  #lastTickAtMs = 0;
  #inboundAtMs = -Infinity;
  #erlDb: number | null = null;
  #slotOffset: number | null = null;
  #confidentFrames = 0;
  #unconfirmedMs = 0;
  #missingEchoMs = 0;
  readonly #inbound: Float64Array;
  #inboundCount = 0;
  #lastSentAtMs = -Infinity;
  #bestLag: number | null = null;
  checks = 0;
  echoFrames = 0;

  constructor(options: Partial<EchoGuardOptions> = {}) {
    this.options = { ...DEFAULT_ECHO_GUARD_OPTIONS, ...options };
    const o = this.options;
    this.#sent = new Float64Array(Math.ceil(o.maxDelayMs / o.frameMs) + Math.max(o.windowFrames, o.lockWindowFrames) + o.wanderFrames + 2).fill(SILENT_DB);
    this.#inbound = new Float64Array(Math.max(o.windowFrames, o.lockWindowFrames)).fill(SILENT_DB);
  }

  /**
   * Records one outbound frame (null: nothing was sent this tick). Entries are kept per pacer tick,
   * not per wall-clock slot: ticks jitter by a few ms, and a slot grid would then see doubled and
   * missing frames that wreck the envelope. Whole ticks missed (no pacer call) are silence.
   */
  sent(frame: Int16Array | null, atMs: number): void {
    const level = frame ? levelOf(frame) : SILENT_DB;
    if (this.#sentHead >= 0) {
      const missing = Math.min(this.#sent.length, Math.round((atMs - this.#lastTickAtMs) / this.options.frameMs) - 1);
      for (let i = 0; i < missing; i++) this.#push(SILENT_DB);
    }
    this.#push(level);
    this.#lastTickAtMs = atMs;
    if (frame && level > SILENT_DB) this.#lastSentAtMs = atMs;
  }

  #push(level: number): void {
    this.#sentHead++;
    this.#sent[this.#sentHead % this.#sent.length] = level;
  }

  /** Whether any echo can still be arriving (something was sent within maxDelayMs). */
  active(atMs: number): boolean {
    // Generous: a pause between sentences must not drop the echo path it has learnt.
    return atMs - this.#lastSentAtMs <= 2 * this.options.maxDelayMs + this.options.windowFrames * this.options.frameMs;
  }

  /** Feeds one inbound frame by its level (dBFS, as `frameLevelDb` gives); true if it is explained by what was sent. */
  isEcho(levelDb: number, atMs: number): boolean {
    const o = this.options;
    const level = Math.max(SILENT_DB, levelDb);
    this.#inbound.copyWithin(0, 1);
    this.#inbound[this.#inbound.length - 1] = level;
    this.#inboundCount++;
    // Inbound frames are consecutive 20 ms of the client's audio, but they leave the jitter buffer
    // with jitter and, after a stall, in bursts: their time advances by one frame each unless the
    // arrival is far off (a gap, a long stall), where it resynchronises.
    const expected = this.#inboundAtMs + o.frameMs;
    this.#inboundAtMs = Math.abs(atMs - expected) < o.resyncMs ? expected : atMs;
    if (!this.active(atMs)) return false;
    // The tick this inbound frame lines up with (ticks may have stopped since the answer ended). The
    // offset between inbound frames and ticks is smoothed: both run at 20 ms, and rounding a
    // per-frame estimate would flip between two neighbouring ticks and smear the envelope.
    const rawOffset = this.#sentHead + (this.#inboundAtMs - this.#lastTickAtMs) / o.frameMs - this.#inboundCount;
    this.#slotOffset = this.#slotOffset === null || Math.abs(rawOffset - this.#slotOffset) > 5 ? rawOffset : this.#slotOffset + 0.05 * (rawOffset - this.#slotOffset);
    const slot = this.#inboundCount + Math.round(this.#slotOffset);
    if (level < o.floorDb) {
      // Silence where the learnt path says the echo of loud audio should be: evidence against the
      // path (a chance match on the user, or a client that has since turned echo cancellation on).
      const learnt = this.#bestLag;
      if (learnt !== null && this.#erlDb !== null) {
        let quietest = 0;
        for (let lag = learnt - 1; lag <= learnt + 1; lag++) quietest = Math.min(quietest, this.#sentLevel(slot - lag));
        if (quietest + this.#erlDb > o.quietDb) this.#missingEchoMs += o.frameMs;
        this.#forgetStalePath();
      }
      // Otherwise, while echo may be arriving, near-silent frames (the fading tail of the agent's
      // words, which a VAD with hangover still calls speech) are not the user taking the floor.
      return true;
    }
    this.checks++;
    this.#forgetStalePath();
    const maxLag = Math.ceil(o.maxDelayMs / o.frameMs);
    // With a known echo path, only lags near it are plausible (a few frames of jitter); without
    // one, every lag is tried but only a near-perfect match counts (and then fixes the path).
    const learnt = this.#bestLag;
    const known = learnt !== null;
    // Lags are relative to the inbound frame's mapped capture time, which is estimated from the
    // fastest packets seen; it can run a few frames early, so small negative lags are searched too.
    const minLag = -o.earlyFrames;
    const from = learnt !== null ? Math.max(minLag, learnt - 2) : minLag;
    const to = learnt !== null ? Math.min(maxLag, learnt + 2) : maxLag;
    let best = -1;
    let bestLag = 0;
    for (let lag = from; lag <= to; lag++) {
      const c = this.#correlation(slot, lag, known ? o.windowFrames : o.lockWindowFrames);
      if (c > best) {
        best = c;
        bestLag = lag;
      }
    }
    // Outbound level around the echo path (the path wanders by a frame with network jitter, and
    // by more when either side is overloaded).
    let nearMax = SILENT_DB;
    let wideMax = SILENT_DB;
    const path = learnt ?? bestLag;
    for (let lag = Math.max(minLag, path - o.wanderFrames); lag <= path + o.wanderFrames; lag++) {
      const l = this.#sentLevel(slot - lag);
      wideMax = Math.max(wideMax, l);
      if (Math.abs(lag - bestLag) <= 1) nearMax = Math.max(nearMax, l);
    }
    const confident = best >= (o.minCorrelation + o.lockCorrelation) / 2;
    if (confident) this.#unconfirmedMs = this.#missingEchoMs = 0;
    else if (known && wideMax > SILENT_DB) this.#unconfirmedMs += o.frameMs;
    // Louder than anything sent around the echo path (by more than coding noise at low levels
    // allows): the user. With a learnt path the whole wander range counts (at an onset, the best
    // lag of a short envelope is a poor guide).
    if (level > Math.max((known ? wideMax : nearMax) + o.maxGainDb, o.quietDb)) return false;
    if (best >= (known ? o.minCorrelation : o.lockCorrelation)) {
      this.#bestLag = bestLag;
      // Learn how loud the echo comes back (echo return loss), from confident matches only.
      if (best >= o.lockCorrelation && nearMax > SILENT_DB) {
        this.#erlDb = this.#erlDb === null ? level - nearMax : 0.9 * this.#erlDb + 0.1 * (level - nearMax);
        this.#confidentFrames++;
      }
      this.echoFrames++;
      return true;
    }
    // The envelope no longer lines up (a timing slip on either side), but on an established echo
    // path a frame no louder than the echo of what was sent around then is still echo: the user
    // talking over the agent is heard above it.
    if (this.#confidentFrames >= o.establishFrames && this.#erlDb !== null && wideMax > SILENT_DB && level <= wideMax + this.#erlDb + o.doubleTalkMarginDb) {
      this.echoFrames++;
      return true;
    }
    return false;
  }

  // An echo path that stopped being confirmed is forgotten: real echo keeps matching while the agent
  // talks, a chance match (the user happening to sound like the agent) does not.
  #forgetStalePath(): void {
    if (this.#bestLag === null || (this.#unconfirmedMs <= this.options.pathTimeoutMs && this.#missingEchoMs <= this.options.missingEchoMs)) return;
    this.#bestLag = null;
    this.#confidentFrames = 0;
    this.#erlDb = null;
    this.#unconfirmedMs = this.#missingEchoMs = 0;
  }

  #sentLevel(slot: number): number {
    if (slot < 0 || slot > this.#sentHead || this.#sentHead - slot >= this.#sent.length) return SILENT_DB;
    return this.#sent[slot % this.#sent.length];
  }

  // Pearson correlation of the inbound window with the outbound window `lag` frames earlier.
  #correlation(slot: number, lag: number, n: number): number {
    if (this.#inboundCount < n) return 0;
    const start = this.#inbound.length - n;
    const floor = this.options.floorDb;
    let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const x = this.#inbound[start + i];
      // Only frames with sound on the microphone count: shared stretches of silence (both sides
      // quiet before an onset) would otherwise make any two utterances look alike.
      if (x < floor) continue;
      const y = Math.max(floor - 10, this.#sentLevel(slot - lag - (n - 1 - i)));
      sx += x; sy += y; sxx += x * x; syy += y * y; sxy += x * y;
      m++;
    }
    if (m < n / 2) return 0;
    const vx = sxx - (sx * sx) / m;
    const vy = syy - (sy * sy) / m;
    // A flat envelope on either side (steady tone, silence) carries no timing: not evidence of echo.
    if (vx < m * 4 || vy < m * 4) return 0;
    return (sxy - (sx * sy) / m) / Math.sqrt(vx * vy);
  }
}
