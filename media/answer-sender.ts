// The agent's answer as RTP: each 20 ms frame of 16 kHz audio becomes an Opus packet with its RTP
// timestamp (48 kHz clock) and marker bit, at the bitrate and FEC level the client's receiver
// reports allow (OutboundQuality). One per session; MediaSession decides when a frame is due and
// sends what this returns.
import { OpusFrameEncoder } from './opus-codec.ts';
import { OutboundQuality, type QualitySnapshot } from './outbound-quality.ts';

const SAMPLE_RATE = 16000;
const RTP_TICKS_PER_FRAME = 960; // 20 ms at 48 kHz
const RTP_TICKS_PER_MS = 48;

export interface AnswerPacket {
  payload: Uint8Array;
  timestamp: number;
  /** First packet of a talkspurt (a new answer, or audio after a pause). */
  marker: boolean;
}

export class AnswerSender {
  readonly #quality = new OutboundQuality();
  /** Created with the first answer, at the bitrate known then. */
  #encoder: OpusFrameEncoder | null = null;
  #timestamp = Math.floor(Math.random() * 0xffffffff);
  #lastSentAt = 0;
  /** The next packet starts a talkspurt. */
  #paused = true;

  /** Nothing was sent this tick (the answer ran dry between sentences, or ended). */
  pause(): void {
    this.#paused = true;
  }

  /**
   * Encodes `frame`, sent at `nowMs`. A talkspurt advances the RTP clock by the real pause, so
   * the receiver's timing stays true; within one, by one frame.
   */
  encode(frame: Int16Array, nowMs: number): AnswerPacket {
    const payload = this.#encoderFor().encode(frame);
    const marker = this.#paused;
    this.#paused = false;
    if (!marker) this.#timestamp = (this.#timestamp + RTP_TICKS_PER_FRAME) >>> 0;
    else if (this.#lastSentAt > 0) {
      const gapTicks = Math.round((nowMs - this.#lastSentAt) * RTP_TICKS_PER_MS);
      this.#timestamp = (this.#timestamp + Math.max(RTP_TICKS_PER_FRAME, gapTicks)) >>> 0;
    }
    this.#lastSentAt = nowMs;
    return { payload, timestamp: this.#timestamp, marker };
  }

  /** A receiver report from the client: may change the bitrate and FEC of the packets to come. */
  onReceiverReport(report: { fractionLost: number; jitterMs: number; rttMs: number | null }, nowMs: number): QualitySnapshot {
    const changed = this.#quality.onReport(report, nowMs);
    if (changed && this.#encoder) {
      this.#encoder.setBitrate(changed.bitrate);
      this.#encoder.setFec(changed.fec, changed.fecLossPercent);
    }
    return this.#quality.snapshot();
  }

  free(): void {
    this.#encoder?.free();
    this.#encoder = null;
  }

  #encoderFor(): OpusFrameEncoder {
    if (!this.#encoder) {
      const s = this.#quality.settings;
      this.#encoder = new OpusFrameEncoder({ sampleRate: SAMPLE_RATE, bitrate: s.bitrate, inbandFec: s.fec, packetLossPercent: s.fecLossPercent });
    }
    return this.#encoder;
  }
}
