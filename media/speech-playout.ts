/**
 * The agent's outbound speech for one session: audio of any rate goes in as it is synthesised,
 * 20 ms frames at 16 kHz come out at the pacer's rhythm. Knows how much of the answer has been
 * played, so an interrupted answer can say what the user heard (`heardText`), and stops at once
 * on barge-in: the next pacer tick finds nothing to send.
 *
 * Pure: no timers; the pacer pulls with `nextFrame()`.
 */
import type { AudioFrame } from './audio-frame.ts';
import { PcmResampler } from './pcm-resampler.ts';

export interface SpeechPlayoutOptions {
  sampleRate: number;
  frameSamples: number;
  /** Longest answer held; beyond it the oldest unplayed audio is dropped and counted. */
  maxBufferedMs: number;
}

export const DEFAULT_SPEECH_PLAYOUT_OPTIONS: SpeechPlayoutOptions = {
  sampleRate: 16000,
  frameSamples: 320,
  maxBufferedMs: 120_000,
};

export interface PlayoutResult {
  /** Audio queued for the answer, ms. */
  audioMs: number;
  /** Audio handed to the pacer, ms. */
  playedMs: number;
  /** The answer's text so far, and the part of it that was played (word-aligned estimate). */
  text: string;
  heardText: string;
}

export class SpeechPlayout {
  readonly options: SpeechPlayoutOptions;
  #chunks: Int16Array[] = [];
  #chunkOffset = 0;
  #buffered = 0;
  #queuedSamples = 0;
  #playedSamples = 0;
  #text = '';
  #resampler: PcmResampler | null = null;
  #open = false;
  #ended = false;
  readonly #frame: Int16Array;
  dropped = 0;

  constructor(options: Partial<SpeechPlayoutOptions> = {}) {
    this.options = { ...DEFAULT_SPEECH_PLAYOUT_OPTIONS, ...options };
    this.#frame = new Int16Array(this.options.frameSamples);
  }

  /** An answer is in progress (begun and not yet finished or stopped). */
  get active(): boolean {
    return this.#open;
  }

  /** True when the answer is complete and every frame has been pulled. */
  get drained(): boolean {
    return this.#open && this.#ended && this.#buffered === 0;
  }

  get playedMs(): number {
    return Math.round((this.#playedSamples / this.options.sampleRate) * 1000);
  }

  begin(): void {
    this.#reset();
    this.#open = true;
  }

  /** Text (a delta) that the audio queued from now on speaks; appended to the answer's text. */
  addText(delta: string): void {
    if (this.#open) this.#text += delta;
  }

  push(frame: AudioFrame): void {
    if (!this.#open || this.#ended || frame.samples.length === 0) return;
    if (!this.#resampler || this.#resampler.fromRate !== frame.sampleRate) {
      this.#resampler = new PcmResampler(frame.sampleRate, this.options.sampleRate);
    }
    const samples = this.#resampler.push(frame.samples);
    if (samples.length === 0) return;
    this.#chunks.push(samples);
    this.#buffered += samples.length;
    this.#queuedSamples += samples.length;
    const max = (this.options.maxBufferedMs / 1000) * this.options.sampleRate;
    while (this.#buffered > max && this.#chunks.length > 1) {
      const oldest = this.#chunks.shift() as Int16Array;
      this.#buffered -= oldest.length - this.#chunkOffset;
      this.#chunkOffset = 0;
      this.dropped++;
    }
  }

  /** No more audio will come for this answer. */
  end(): void {
    if (this.#open) this.#ended = true;
  }

  /**
   * The next 20 ms frame, or null when nothing is buffered (between sentences, or done). The last
   * frame of the answer is padded with silence. The returned array is reused.
   */
  nextFrame(): Int16Array | null {
    if (!this.#open || this.#buffered === 0) return null;
    const frame = this.#frame;
    const want = frame.length;
    if (this.#buffered < want && !this.#ended) return null; // wait for a whole frame
    let filled = 0;
    while (filled < want && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const n = Math.min(want - filled, chunk.length - this.#chunkOffset);
      frame.set(chunk.subarray(this.#chunkOffset, this.#chunkOffset + n), filled);
      filled += n;
      this.#chunkOffset += n;
      if (this.#chunkOffset === chunk.length) {
        this.#chunks.shift();
        this.#chunkOffset = 0;
      }
    }
    if (filled < want) frame.fill(0, filled);
    this.#buffered -= filled;
    this.#playedSamples += filled;
    return frame;
  }

  /** Ends the answer (finished or interrupted) and says what was played. */
  finish(): PlayoutResult {
    const result = this.result();
    this.#reset();
    return result;
  }

  result(): PlayoutResult {
    const rate = this.options.sampleRate;
    return {
      audioMs: Math.round((this.#queuedSamples / rate) * 1000),
      playedMs: Math.round((this.#playedSamples / rate) * 1000),
      text: this.#text.trim(),
      heardText: heardPart(this.#text.trim(), this.#playedSamples, this.#queuedSamples),
    };
  }

  #reset(): void {
    this.#chunks = [];
    this.#chunkOffset = 0;
    this.#buffered = 0;
    this.#queuedSamples = 0;
    this.#playedSamples = 0;
    this.#text = '';
    this.#resampler = null;
    this.#open = false;
    this.#ended = false;
  }
}

/** The words of `text` spoken in the first `played` of `total` samples (proportional, whole words). */
export function heardPart(text: string, played: number, total: number): string {
  if (!text || total <= 0 || played <= 0) return '';
  if (played >= total) return text;
  const words = text.split(/\s+/);
  const heardChars = (played / total) * text.length;
  let length = 0;
  const heard: string[] = [];
  for (const word of words) {
    length += word.length + 1;
    // A word counts as heard once most of it was played.
    if (length - word.length / 2 > heardChars) break;
    heard.push(word);
  }
  return heard.join(' ');
}
