/**
 * A session's received audio after the jitter buffer: each output (a packet, the FEC copy of a
 * lost one carried by the next, or concealment for a gap) decoded, and the audio re-sliced into
 * 20 ms frames whatever the packets' duration was. A payload that will not decode is concealed
 * instead: a corrupt packet must not take the session (or the worker) down.
 */
import type { JitterOutput } from './jitter-buffer.ts';
import { OpusFrameDecoder, type SpeechSampleRate } from './opus-codec.ts';

const MAX_PACKET_MS = 120; // the longest Opus packet

/** `frame` is reused for the next one (copy what you keep); `atMs`: when its first sample was captured. */
export type FrameSink = (frame: Int16Array, atMs: number) => void;

export class InboundAudio {
  readonly sampleRate: SpeechSampleRate;
  readonly frameSamples: number;
  readonly #decoder: OpusFrameDecoder;
  readonly #decoded: Int16Array;
  readonly #frame: Int16Array;
  #fill = 0;
  readonly #onFrame: FrameSink;

  constructor(sampleRate: SpeechSampleRate, onFrame: FrameSink, frameMs = 20) {
    this.sampleRate = sampleRate;
    this.frameSamples = (sampleRate * frameMs) / 1000;
    if (!Number.isInteger(this.frameSamples) || this.frameSamples <= 0) throw new RangeError('frameMs must be a whole number of samples');
    this.#decoder = new OpusFrameDecoder(sampleRate);
    this.#decoded = new Int16Array((sampleRate * MAX_PACKET_MS) / 1000);
    this.#frame = new Int16Array(this.frameSamples);
    this.#onFrame = onFrame;
  }

  /** One jitter-buffer output; `atMs`: when its first sample was captured (the caller's media clock). */
  push(output: JitterOutput, atMs: number): void {
    const decoder = this.#decoder;
    let samples: number;
    try {
      if (output.kind === 'packet') samples = decoder.decode(output.payload, this.#decoded);
      else if (output.kind === 'fec') samples = decoder.decodeFec(output.payload, this.#decoded);
      else samples = decoder.conceal(this.#decoded);
    } catch {
      samples = decoder.conceal(this.#decoded);
    }
    this.#slice(samples, atMs);
  }

  /** Drops a partly filled frame (the stream was lost; what comes next does not continue it). */
  reset(): void {
    this.#fill = 0;
  }

  free(): void {
    this.#decoder.free();
  }

  #slice(samples: number, atMs: number): void {
    const size = this.frameSamples;
    let offset = 0;
    while (offset < samples) {
      const n = Math.min(size - this.#fill, samples - offset);
      this.#frame.set(this.#decoded.subarray(offset, offset + n), this.#fill);
      this.#fill += n;
      offset += n;
      if (this.#fill === size) {
        this.#fill = 0;
        // The frame's first sample may have come with the previous output (then before atMs).
        this.#onFrame(this.#frame, atMs + ((offset - size) * 1000) / this.sampleRate);
      }
    }
  }
}
