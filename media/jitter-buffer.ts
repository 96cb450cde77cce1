// An adaptive jitter buffer for Opus RTP (48 kHz clock) in the spirit of WebRTC NetEQ, without time
// stretching: it only decides *when* each frame is due and *what* stands in for a missing one
// (FEC from the next packet, or decoder PLC). Pure and synchronous: time comes in as `nowMs`.

export interface JitterBufferOptions {
  /** Floor of the target delay. */
  minDelayMs: number;
  /** Ceiling of the target delay. */
  maxDelayMs: number;
  /** Capacity; the buffer never holds more packets than this. */
  maxPackets: number;
  /** Target delay = this quantile (0 < p <= 1) of recent relative arrival delays. */
  percentile: number;
  /** How many recent packets the delay statistics cover. */
  windowPackets: number;
  /** Concealed frames in a row, with nothing arriving, before concealment stops until packets return. */
  maxConsecutivePlc: number;
  /** With nothing buffered, how long past its due time a frame is awaited before it is concealed. */
  emptyGraceMs: number;
}

export const DEFAULT_JITTER_BUFFER_OPTIONS: JitterBufferOptions = Object.freeze({
  minDelayMs: 0,
  maxDelayMs: 200,
  maxPackets: 64,
  percentile: 0.95,
  windowPackets: 200,
  maxConsecutivePlc: 10,
  emptyGraceMs: 40,
});

export interface RtpAudioPacket {
  sequenceNumber: number;
  timestamp: number;
  payload: Uint8Array;
  /** Talkspurt start. Informational: pauses are recognised from timestamps, so losing it is harmless. */
  marker?: boolean;
}

export type JitterOutput =
  | { kind: 'packet'; sequenceNumber: number; timestamp: number; payload: Uint8Array; arrivalMs: number; holdMs: number }
  /** `payload` is the NEXT packet's: decode it with decode_fec=1 to recover the lost frame. */
  | { kind: 'fec'; sequenceNumber: number; timestamp: number; payload: Uint8Array }
  | { kind: 'plc'; sequenceNumber: number; timestamp: number };

export interface JitterBufferStats {
  received: number;
  duplicates: number;
  late: number;
  lost: number;
  concealed: number;
  fecRecovered: number;
  reordered: number;
  overflowDrops: number;
  released: number;
  resyncs: number;
  buffered: number;
  targetDelayMs: number;
  /** RFC 3550 interarrival jitter, ms. */
  jitterMs: number;
  frameMs: number;
}

const TS_PER_MS = 48;
const DEFAULT_FRAME_TS = 960;
const MAX_FRAME_TS = 120 * TS_PER_MS; // Opus never packs more than 120 ms; a bigger step is a pause
const HUGE_SEQ_JUMP = 1000;
const HUGE_TS_JUMP = 60_000 * TS_PER_MS;
// The base may rise by 1 ms per second of media (1000 ppm): well above real sender/receiver clock
// skew (< 100 ppm), yet slow enough that the fastest packets of a jittery path keep pulling it back.
const BASE_RISE_PER_MS = 0.001;
const EPSILON_MS = 1e-6; // float slack so a frame due exactly now is released now
const EMPTY = 0;
const BUFFERED = 1;
const RELEASED = 2;

export class JitterBuffer {
  readonly #opts: JitterBufferOptions;
  readonly #cap: number;
  // Slot ring indexed by extended seq % cap. Released slots are kept until overwritten so that a
  // second copy of a played packet counts as a duplicate rather than as late.
  readonly #slotSeq: Float64Array;
  readonly #slotState: Uint8Array;
  readonly #slotTs: Float64Array;
  readonly #slotArrival: Float64Array;
  readonly #slotPayload: (Uint8Array | null)[];
  // Sliding window of delay bins (1 ms each) plus their histogram: a quantile costs one scan of
  // maxDelayMs bins, independent of how many packets came before, and no sorting.
  readonly #window: Uint32Array;
  readonly #hist: Uint32Array;
  #windowLen = 0;
  #windowPos = 0;

  #started = false;
  #firstRawTs = 0;
  #highSeq = 0; // extended; raw = low 16 bits
  #highTs = 0; // extended, 0 = first packet of the stream
  #highRawTs = 0;
  #nextSeq = 0;
  #cursorTs = 0; // media time of the next frame to emit
  #frameTs = DEFAULT_FRAME_TS;
  #candidateFrameTs = 0;
  #baseMs = 0; // local time at which media time 0 would have arrived on the fastest path
  #baseTs = 0; // media time up to which the base has been allowed to rise
  #targetMs = 0;
  #buffered = 0;
  #expanded = 0; // PLC frames emitted while empty, not tied to a sequence number
  #plcRun = 0;
  #lastTransitMs = 0;
  #jitterMs = 0;
  #headTs = 0; // scratch written by #headDueMs
  readonly #counts = {
    received: 0, duplicates: 0, late: 0, lost: 0, concealed: 0,
    fecRecovered: 0, reordered: 0, overflowDrops: 0, released: 0, resyncs: 0,
  };

  constructor(options: Partial<JitterBufferOptions> = {}) {
    const o = { ...DEFAULT_JITTER_BUFFER_OPTIONS, ...options };
    if (!(o.minDelayMs >= 0 && o.maxDelayMs >= o.minDelayMs && o.maxDelayMs < 60_000)) throw new RangeError('bad delay bounds');
    if (!(Number.isInteger(o.maxPackets) && o.maxPackets >= 2)) throw new RangeError('maxPackets must be an integer >= 2');
    if (!(o.percentile > 0 && o.percentile <= 1)) throw new RangeError('percentile must be in (0, 1]');
    if (!(Number.isInteger(o.windowPackets) && o.windowPackets >= 1)) throw new RangeError('windowPackets must be >= 1');
    if (!(o.maxConsecutivePlc >= 0)) throw new RangeError('maxConsecutivePlc must be >= 0');
    this.#opts = o;
    this.#cap = o.maxPackets;
    this.#slotSeq = new Float64Array(this.#cap);
    this.#slotState = new Uint8Array(this.#cap);
    this.#slotTs = new Float64Array(this.#cap);
    this.#slotArrival = new Float64Array(this.#cap);
    this.#slotPayload = new Array<Uint8Array | null>(this.#cap).fill(null);
    this.#window = new Uint32Array(o.windowPackets);
    this.#hist = new Uint32Array(Math.ceil(o.maxDelayMs) + 1);
    this.#targetMs = o.minDelayMs;
  }

  push(packet: RtpAudioPacket, nowMs: number, out: JitterOutput[] = []): JitterOutput[] {
    this.#counts.received++;
    const rawSeq = packet.sequenceNumber & 0xffff;
    const rawTs = packet.timestamp >>> 0;
    if (this.#started) {
      const dSeq = Math.abs((((rawSeq - this.#highSeq) + 0x8000) & 0xffff) - 0x8000);
      const dTs = Math.abs((rawTs - this.#highRawTs) | 0);
      // A new stream (sender restart, SSRC change): start over instead of concealing the gap.
      if (dSeq > HUGE_SEQ_JUMP || dTs > HUGE_TS_JUMP) {
        this.reset();
        this.#counts.resyncs++;
      }
    }
    if (!this.#started) {
      this.#started = true;
      this.#firstRawTs = this.#highRawTs = rawTs;
      this.#highSeq = this.#nextSeq = 0x10000 + rawSeq; // headroom so reordered predecessors stay positive
      this.#baseMs = this.#lastTransitMs = nowMs;
    }
    const seq = this.#highSeq + ((((rawSeq - this.#highSeq) + 0x8000) & 0xffff) - 0x8000);
    const ts = this.#highTs + ((rawTs - this.#highRawTs) | 0);
    const idx = seq % this.#cap;
    if (this.#slotSeq[idx] === seq && this.#slotState[idx] !== EMPTY) {
      this.#counts.duplicates++;
      return this.#drain(nowMs, out);
    }
    const playable = seq >= this.#nextSeq;
    this.#observeArrival(ts, nowMs, playable);
    if (!playable) {
      this.#counts.late++;
      return this.#drain(nowMs, out);
    }
    this.#plcRun = 0;
    if (this.#expanded > 0) {
      // Packets are back after concealing with an empty buffer: the sequence numbers skipped over
      // were lost, while seq === nextSeq means the sender had merely paused (DTX).
      this.#counts.lost += seq - this.#nextSeq;
      this.#nextSeq = seq;
      this.#cursorTs = ts;
      this.#expanded = 0;
    }
    if (seq >= this.#nextSeq + this.#cap) this.#skipTo(seq - this.#cap + 1, seq, ts);
    this.#slotSeq[idx] = seq;
    this.#slotState[idx] = BUFFERED;
    this.#slotTs[idx] = ts;
    this.#slotArrival[idx] = nowMs;
    this.#slotPayload[idx] = packet.payload;
    this.#buffered++;
    if (seq < this.#highSeq) this.#counts.reordered++;
    else {
      this.#highSeq = seq;
      this.#highTs = ts;
      this.#highRawTs = rawTs;
    }
    this.#learnFrameSize(seq, ts);
    return this.#drain(nowMs, out);
  }

  poll(nowMs: number, out: JitterOutput[] = []): JitterOutput[] {
    return this.#drain(nowMs, out);
  }

  nextDeadlineMs(): number | null {
    const due = this.#headDueMs();
    return due === Infinity ? null : due;
  }

  /** Forgets the stream (call on SSRC change); counters stay cumulative. */
  reset(): void {
    this.#started = false;
    this.#slotState.fill(EMPTY);
    this.#slotPayload.fill(null);
    this.#hist.fill(0);
    this.#windowLen = this.#windowPos = 0;
    this.#highTs = this.#cursorTs = this.#baseTs = 0;
    this.#frameTs = DEFAULT_FRAME_TS;
    this.#candidateFrameTs = 0;
    this.#targetMs = this.#opts.minDelayMs;
    this.#buffered = this.#expanded = this.#plcRun = 0;
    this.#jitterMs = 0;
  }

  toJSON(): JitterBufferStats {
    return {
      ...this.#counts,
      buffered: this.#buffered,
      targetDelayMs: this.#targetMs,
      jitterMs: this.#jitterMs,
      frameMs: this.#frameTs / TS_PER_MS,
    };
  }

  /** Updates the RFC 3550 jitter, the base and the delay window (late packets included: they are
   * exactly the evidence that the target is too low). */
  #observeArrival(ts: number, nowMs: number, playable: boolean): void {
    const transitMs = nowMs - ts / TS_PER_MS;
    this.#jitterMs += (Math.abs(transitMs - this.#lastTransitMs) - this.#jitterMs) / 16;
    this.#lastTransitMs = transitMs;
    // The base is the minimum transit, but allowed to rise slowly (see BASE_RISE_PER_MS) so that a
    // receiver clock running fast does not inflate every delay, and the target with it, forever.
    if (ts > this.#baseTs) {
      this.#baseMs += ((ts - this.#baseTs) / TS_PER_MS) * BASE_RISE_PER_MS;
      this.#baseTs = ts;
    }
    if (transitMs < this.#baseMs) this.#baseMs = transitMs;
    // With nothing waiting, moving the schedule later can neither reorder nor drop a frame. This is
    // how a talkspurt whose timestamps did not follow the pause, or a route change, is re-anchored;
    // the delay measured against the abandoned base says nothing about jitter, so it is not kept.
    if (playable && this.#buffered === 0 && transitMs - this.#baseMs > this.#opts.maxDelayMs) this.#baseMs = transitMs;
    this.#recordDelay(transitMs - this.#baseMs);
  }

  #recordDelay(delayMs: number): void {
    const hist = this.#hist;
    const bin = Math.min(hist.length - 1, Math.max(0, Math.ceil(delayMs - EPSILON_MS)));
    if (this.#windowLen === this.#window.length) hist[this.#window[this.#windowPos]]--;
    else this.#windowLen++;
    this.#window[this.#windowPos] = bin;
    this.#windowPos = (this.#windowPos + 1) % this.#window.length;
    hist[bin]++;
    const rank = Math.max(1, Math.ceil(this.#opts.percentile * this.#windowLen));
    let seen = 0;
    let b = 0;
    for (; b < hist.length - 1; b++) {
      seen += hist[b];
      if (seen >= rank) break;
    }
    this.#targetMs = Math.min(this.#opts.maxDelayMs, Math.max(this.#opts.minDelayMs, b));
  }

  /** Learns the frame duration from consecutive packets; a new size must be seen twice in a row. */
  #learnFrameSize(seq: number, ts: number): void {
    const prev = (seq - 1) % this.#cap;
    if (this.#slotSeq[prev] !== seq - 1 || this.#slotState[prev] === EMPTY) return;
    const step = ts - this.#slotTs[prev];
    if (step <= 0 || step > MAX_FRAME_TS || step === this.#frameTs) return;
    if (step === this.#candidateFrameTs) this.#frameTs = step;
    else this.#candidateFrameTs = step;
  }

  /** Overflow: drops everything before `head`, so the window [nextSeq, nextSeq + cap) holds `seq`. */
  #skipTo(head: number, seq: number, ts: number): void {
    const skipped = head - this.#nextSeq;
    let dropped = 0;
    for (let s = this.#nextSeq; s < this.#nextSeq + Math.min(skipped, this.#cap); s++) {
      const i = s % this.#cap;
      if (this.#slotSeq[i] !== s || this.#slotState[i] !== BUFFERED) continue;
      this.#slotState[i] = EMPTY;
      this.#slotPayload[i] = null;
      this.#buffered--;
      dropped++;
    }
    this.#counts.overflowDrops += dropped;
    this.#counts.lost += skipped - dropped;
    this.#nextSeq = head;
    const i = head % this.#cap;
    this.#cursorTs = this.#isBuffered(i, head) ? this.#slotTs[i] : ts - (seq - head) * this.#frameTs;
  }

  #isBuffered(i: number, seq: number): boolean {
    return this.#slotSeq[i] === seq && this.#slotState[i] === BUFFERED;
  }

  #playoutMs(ts: number): number {
    return this.#baseMs + ts / TS_PER_MS + this.#targetMs;
  }

  /** When the head frame is due (Infinity if never), leaving its media time in #headTs. */
  #headDueMs(): number {
    if (!this.#started) return Infinity;
    const i = this.#nextSeq % this.#cap;
    if (this.#isBuffered(i, this.#nextSeq)) return this.#playoutMs((this.#headTs = this.#slotTs[i]));
    if (this.#buffered > 0) {
      // Missing with later packets waiting: due at its expected time, which the following packet
      // pins more precisely than the cursor does after a pause.
      const n = (this.#nextSeq + 1) % this.#cap;
      const fromNext = this.#isBuffered(n, this.#nextSeq + 1) ? this.#slotTs[n] - this.#frameTs : -Infinity;
      return this.#playoutMs((this.#headTs = Math.max(this.#cursorTs, fromNext)));
    }
    if (this.#plcRun >= this.#opts.maxConsecutivePlc) return Infinity;
    // Nothing buffered: loss and a sender pause look alike. A grace period keeps a packet that is
    // merely a little late (scheduling jitter on a busy host) from being concealed and then played
    // a frame later: our consumer is a speech pipeline, not a loudspeaker, so waiting is cheaper
    // than inventing audio.
    this.#headTs = this.#cursorTs;
    return this.#playoutMs(this.#cursorTs) + Math.max(this.#frameTs / TS_PER_MS / 2, this.#opts.emptyGraceMs);
  }

  #drain(nowMs: number, out: JitterOutput[]): JitterOutput[] {
    for (let due = this.#headDueMs(); nowMs + EPSILON_MS >= due; due = this.#headDueMs()) {
      const ts = this.#headTs;
      const seq = this.#nextSeq;
      const i = seq % this.#cap;
      const timestamp = (this.#firstRawTs + ts) >>> 0;
      if (this.#isBuffered(i, seq)) {
        const arrivalMs = this.#slotArrival[i];
        const payload = this.#slotPayload[i]!;
        // holdMs is the deliberate hold only (until the playout time); a late poll is not part of it.
        out.push({ kind: 'packet', sequenceNumber: seq & 0xffff, timestamp, payload, arrivalMs, holdMs: Math.max(0, Math.min(nowMs, due) - arrivalMs) });
        this.#slotState[i] = RELEASED;
        this.#slotPayload[i] = null;
        this.#buffered--;
        this.#counts.released++;
      } else if (this.#buffered > 0) {
        const n = (seq + 1) % this.#cap;
        if (this.#isBuffered(n, seq + 1)) {
          out.push({ kind: 'fec', sequenceNumber: seq & 0xffff, timestamp, payload: this.#slotPayload[n]! });
          this.#counts.fecRecovered++;
        } else {
          out.push({ kind: 'plc', sequenceNumber: seq & 0xffff, timestamp });
          this.#counts.concealed++;
        }
        this.#counts.lost++;
        this.#plcRun++;
      } else {
        // Conceal by time without consuming a sequence number: whether it was lost is only known
        // when packets return (see push).
        out.push({ kind: 'plc', sequenceNumber: (seq + this.#expanded) & 0xffff, timestamp });
        this.#counts.concealed++;
        this.#expanded++;
        this.#plcRun++;
        this.#cursorTs = ts + this.#frameTs;
        continue;
      }
      this.#nextSeq = seq + 1;
      this.#cursorTs = ts + this.#frameTs;
    }
    return out;
  }
}
