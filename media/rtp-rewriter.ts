// Maps one publisher's RTP sequence numbers and timestamps into the number space of one outbound
// track of one subscriber (an SFU forwards packets without touching the payload). The outbound
// stream must look like one continuous source to the subscriber's jitter buffer even when the
// inbound one is interrupted: the publisher's SSRC changes (new peer after a resume), or forwarding
// pauses (the subscriber muted this participant) and resumes. Each such break starts a new
// segment: sequence numbers continue at last + 1 (no phantom loss), the timestamp advances by the
// real time that passed (the receiver's playout timing stays true), and the first packet carries
// the marker bit (a new talkspurt). Within a segment, gaps (loss) and reordering pass through.
// Pure: time comes in as an argument.

export interface RtpRewriterOptions {
  /** RTP clock of the codec (Opus: 48 kHz). */
  clockRate: number;
  /** The smallest timestamp step across a break: one 20 ms frame. */
  minGapTicks: number;
  /** First outbound sequence number and timestamp (random by default, RFC 3550 §5.1). */
  initialSequenceNumber: number;
  initialTimestamp: number;
}

export const DEFAULT_RTP_REWRITER_OPTIONS: Omit<RtpRewriterOptions, 'initialSequenceNumber' | 'initialTimestamp'> = {
  clockRate: 48000,
  minGapTicks: 960,
};

export interface RtpHeaderFields {
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
}

export type RewrittenHeader = Omit<RtpHeaderFields, 'ssrc'>;

export interface RtpRewriterStats {
  rewritten: number;
  /** Packets that predate the current segment (reordered across a break): dropped. */
  dropped: number;
  /** Breaks in the inbound stream: new SSRC or resumed after a pause. */
  segments: number;
}

const int16 = (n: number): number => ((n + 0x8000) & 0xffff) - 0x8000;

export class RtpRewriter {
  readonly options: RtpRewriterOptions;
  #ssrc: number | null = null;
  #newSegment = true;
  #seqOffset = 0;
  #tsOffset = 0;
  #segmentStartSeq = 0;
  #highestInSeq = 0;
  /** Last outbound values and when they were produced; null before the first packet. */
  #lastOut: { sequenceNumber: number; timestamp: number; atMs: number } | null = null;
  #stats: RtpRewriterStats = { rewritten: 0, dropped: 0, segments: 0 };

  constructor(options: Partial<RtpRewriterOptions> = {}) {
    this.options = {
      ...DEFAULT_RTP_REWRITER_OPTIONS,
      initialSequenceNumber: Math.floor(Math.random() * 0x10000),
      initialTimestamp: Math.floor(Math.random() * 0x100000000),
      ...options,
    };
  }

  /** Forwarding stops for a while (muted subscription): the next packet starts a new segment. */
  pause(): void {
    this.#newSegment = true;
  }

  /** The outbound header for `packet`, or null when it must not be sent. */
  rewrite(packet: RtpHeaderFields, nowMs: number): RewrittenHeader | null {
    if (this.#newSegment || packet.ssrc !== this.#ssrc) this.#startSegment(packet, nowMs);
    else if (int16(packet.sequenceNumber - this.#segmentStartSeq) < 0) {
      this.#stats.dropped++;
      return null;
    }
    const sequenceNumber = (packet.sequenceNumber + this.#seqOffset) & 0xffff;
    const timestamp = (packet.timestamp + this.#tsOffset) >>> 0;
    const first = this.#newSegment;
    this.#newSegment = false;
    // Only the newest packet moves the segment forward; a late one keeps its place.
    if (first || int16(packet.sequenceNumber - this.#highestInSeq) > 0) {
      this.#highestInSeq = packet.sequenceNumber;
      this.#lastOut = { sequenceNumber, timestamp, atMs: nowMs };
    }
    this.#stats.rewritten++;
    return { sequenceNumber, timestamp, marker: packet.marker || first };
  }

  toJSON(): RtpRewriterStats {
    return { ...this.#stats };
  }

  #startSegment(packet: RtpHeaderFields, nowMs: number): void {
    this.#ssrc = packet.ssrc;
    this.#newSegment = true;
    this.#segmentStartSeq = packet.sequenceNumber;
    this.#stats.segments++;
    const last = this.#lastOut;
    let seq = this.options.initialSequenceNumber;
    let ts = this.options.initialTimestamp;
    if (last) {
      seq = (last.sequenceNumber + 1) & 0xffff;
      const elapsedTicks = Math.round(((nowMs - last.atMs) * this.options.clockRate) / 1000);
      ts = (last.timestamp + Math.max(this.options.minGapTicks, elapsedTicks)) >>> 0;
    }
    this.#seqOffset = (seq - packet.sequenceNumber) & 0xffff;
    this.#tsOffset = (ts - packet.timestamp) >>> 0;
  }
}
