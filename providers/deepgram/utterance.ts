/**
 * One user utterance of a Deepgram live-transcription stream (streaming-stt.ts), placed on
 * Deepgram's clock: the results that fall in its stretch of audio, joined into its transcript.
 */

/** Deepgram `Results` as far as this adapter reads them. */
export interface DeepgramResults {
  type?: string;
  start?: number;
  duration?: number;
  /** `speech_final` (Deepgram's own endpointing) is not read: our turn detector decides, flush() says so. */
  is_final?: boolean;
  from_finalize?: boolean;
  channel?: { alternatives?: Array<{ transcript?: string; confidence?: number }> };
}

/** One user utterance, placed on Deepgram's clock (seconds of audio sent on the current socket). */
export class Utterance {
  // Deepgram rounds start/duration to milliseconds.
  static readonly EPSILON_S = 0.01;
  hasAudio = false;
  startSec: number | undefined;
  endSec: number | undefined;
  timer: NodeJS.Timeout | undefined;
  readonly #segments: string[] = [];
  readonly #confidences: number[] = [];
  #interim = '';
  #finalEndSec = 0;

  /** `silent`: from a flush() without audio; its final is ''. */
  constructor(readonly silent = false) {}

  add(message: DeepgramResults): void {
    const alternative = message.channel?.alternatives?.[0];
    const transcript = typeof alternative?.transcript === 'string' ? alternative.transcript.trim() : '';
    if (!message.is_final && !message.from_finalize) {
      this.#interim = transcript;
      return;
    }
    this.#interim = '';
    this.#finalEndSec = Math.max(this.#finalEndSec, Number(message.start) + Number(message.duration) || 0);
    if (!transcript) return;
    this.#segments.push(transcript);
    if (typeof alternative?.confidence === 'number') this.#confidences.push(alternative.confidence);
  }

  text(withInterim: boolean): string {
    return [...this.#segments, withInterim ? this.#interim : ''].filter(Boolean).join(' ');
  }

  confidence(): number | undefined {
    const count = this.#confidences.length;
    return count === 0 ? undefined : this.#confidences.reduce((sum, c) => sum + c, 0) / count;
  }

  /** Every second of this utterance's audio already came back as a final segment. */
  coversUntilEnd(): boolean {
    return this.endSec !== undefined && this.#finalEndSec >= this.endSec - Utterance.EPSILON_S;
  }
}
