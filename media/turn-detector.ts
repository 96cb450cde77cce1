/**
 * Decides when the user's turn is over, from per-frame voice activity and the running partial
 * transcript. Pure: time is the frames themselves (one call per 20 ms frame).
 *
 * Rules: a turn starts at speech onset; it ends after `endSilenceMs` without voiced frames, but
 * never before `minSpeechMs` of voiced audio (shorter bursts are discarded as noise); when the
 * partial transcript ends mid-phrase ("and", "the", "um", ...) the wait grows by
 * `midPhraseExtensionMs`; a turn longer than `maxTurnMs` is cut.
 */
export interface TurnDetectorOptions {
  frameMs: number;
  endSilenceMs: number;
  minSpeechMs: number;
  midPhraseExtensionMs: number;
  maxTurnMs: number;
}

export const DEFAULT_TURN_DETECTOR_OPTIONS: TurnDetectorOptions = {
  frameMs: 20,
  endSilenceMs: 500,
  minSpeechMs: 250,
  midPhraseExtensionMs: 700,
  maxTurnMs: 30_000,
};

/** Offsets are in ms since the detector started (frame count × frameMs). */
export type TurnEvent =
  | { type: 'speech_start'; atMs: number }
  /** The user stopped speaking (start of the silence); the turn may still go on. */
  | { type: 'speech_end'; atMs: number }
  /** voicedMs: voiced audio in the turn; speechEndAtMs: where the last voiced frame ended. */
  | { type: 'end_of_turn'; atMs: number; speechStartAtMs: number; speechEndAtMs: number; voicedMs: number; cut: boolean; extendedMs: number }
  /** The burst was too short to be a turn. */
  | { type: 'discarded'; atMs: number; voicedMs: number };

/** Words after which a speaker is rarely done: conjunctions, articles, prepositions, fillers. */
const MID_PHRASE_WORDS = new Set([
  'and', 'but', 'or', 'so', 'because', 'then', 'if', 'that', 'which', 'who', 'when', 'while', 'although',
  'the', 'a', 'an', 'my', 'your', 'our', 'their', 'his', 'her', 'its', 'this', 'these', 'those',
  'to', 'of', 'for', 'with', 'in', 'on', 'at', 'from', 'about', 'into', 'by',
  'um', 'uh', 'erm', 'er', 'hmm', 'like', 'well', 'is', 'are', 'was', 'i',
]);

export function endsMidPhrase(text: string): boolean {
  const words = text.toLowerCase().replace(/[^a-z' ]+/g, ' ').trim().split(/\s+/);
  const last = words[words.length - 1];
  return last !== undefined && last !== '' && MID_PHRASE_WORDS.has(last);
}

export class TurnDetector {
  readonly options: TurnDetectorOptions;
  #frame = 0;
  #inTurn = false;
  #speaking = false;
  #turnStartFrame = 0;
  #lastVoicedFrame = -1;
  #voicedFrames = 0;
  #partial = '';

  constructor(options: Partial<TurnDetectorOptions> = {}) {
    this.options = { ...DEFAULT_TURN_DETECTOR_OPTIONS, ...options };
  }

  get inTurn(): boolean {
    return this.#inTurn;
  }

  /** ms of voiced audio in the current turn. */
  get voicedMs(): number {
    return this.#voicedFrames * this.options.frameMs;
  }

  /** The latest partial transcript of the current turn (it steers the mid-phrase extension). */
  setPartialTranscript(text: string): void {
    if (this.#inTurn) this.#partial = text;
  }

  /**
   * One frame: `speaking` is the VAD's state (with its hysteresis), `voiced` whether this frame
   * itself sounded like speech. Returns the events this frame caused (usually none).
   */
  push(speaking: boolean, voiced: boolean): TurnEvent[] {
    const o = this.options;
    const frame = this.#frame++;
    const atMs = (frame + 1) * o.frameMs;
    const events: TurnEvent[] = [];
    if (!this.#inTurn) {
      if (!speaking) return events;
      this.#inTurn = true;
      this.#speaking = true;
      this.#turnStartFrame = frame;
      this.#voicedFrames = 0;
      this.#lastVoicedFrame = frame;
      this.#partial = '';
      events.push({ type: 'speech_start', atMs: frame * o.frameMs });
    }
    if (voiced) {
      this.#voicedFrames++;
      this.#lastVoicedFrame = frame;
    }
    if (speaking !== this.#speaking) {
      this.#speaking = speaking;
      if (!speaking) events.push({ type: 'speech_end', atMs: (this.#lastVoicedFrame + 1) * o.frameMs });
      else events.push({ type: 'speech_start', atMs: frame * o.frameMs });
    }
    const silenceMs = (frame - this.#lastVoicedFrame) * o.frameMs;
    const turnMs = (frame - this.#turnStartFrame + 1) * o.frameMs;
    if (turnMs >= o.maxTurnMs) {
      events.push(this.#end(atMs, true, 0));
      return events;
    }
    if (speaking || silenceMs < o.endSilenceMs) return events;
    if (this.voicedMs < o.minSpeechMs) {
      events.push({ type: 'discarded', atMs, voicedMs: this.voicedMs });
      this.#inTurn = false;
      return events;
    }
    const extensionMs = endsMidPhrase(this.#partial) ? o.midPhraseExtensionMs : 0;
    if (silenceMs < o.endSilenceMs + extensionMs) return events;
    events.push(this.#end(atMs, false, extensionMs));
    return events;
  }

  /** Forget the turn in progress (media lost, barge-in rejected, ...). */
  reset(): void {
    this.#inTurn = false;
    this.#speaking = false;
    this.#partial = '';
  }

  #end(atMs: number, cut: boolean, extendedMs: number): TurnEvent {
    const o = this.options;
    this.#inTurn = false;
    this.#speaking = false;
    return {
      type: 'end_of_turn',
      atMs,
      speechStartAtMs: this.#turnStartFrame * o.frameMs,
      speechEndAtMs: cut ? atMs : (this.#lastVoicedFrame + 1) * o.frameMs,
      voicedMs: this.voicedMs,
      cut,
      extendedMs,
    };
  }
}
