/**
 * The inbound half of a conversation: 20 ms frames at 16 kHz in, conversation events out.
 * VAD (behind its own energy pre-gate) says whether the user speaks, the echo guard removes the
 * agent's own voice coming back, the turn detector decides where a turn ends, and speech during
 * an answer that lasts `bargeInMinMs` is a barge-in. Frames of a turn (with the pre-roll before
 * its onset) go out as `audio` events for speech-to-text.
 *
 * Pure: one `push()` per frame; the caller says whether an answer is playing.
 */
import { EchoGuard, type EchoGuardOptions } from './echo-guard.ts';
import { TurnDetector, type TurnDetectorOptions, type TurnEvent } from './turn-detector.ts';

/** What the pipeline needs from voice-activity detection, per 20 ms frame. */
export interface VadStage {
  /**
   * `frame`: the frame as it should go on (denoised when a denoiser is engaged); `levelDb`: the
   * input frame's level (dBFS, as `frameLevelDb` gives), which the echo guard reuses.
   */
  push(frame: Int16Array): { speaking: boolean; voiced: boolean; levelDb: number; frame?: Int16Array };
  reset(): void;
  close?(): void;
}

export interface ListeningOptions {
  frameMs: number;
  preRollMs: number;
  /** Speech during an answer must last this long to interrupt it (a cough does not). */
  bargeInMinMs: number;
  /**
   * No barge-in during the first part of an answer: the echo guard needs that long to learn the echo
   * path of a client without echo cancellation. Barge-in needs `bargeInMinMs` of speech after it.
   */
  bargeInGraceMs: number;
  turn: Partial<TurnDetectorOptions>;
  echoGuard: Partial<EchoGuardOptions> | false;
}

export const DEFAULT_LISTENING_OPTIONS: ListeningOptions = {
  frameMs: 20,
  preRollMs: 300,
  bargeInMinMs: 300,
  bargeInGraceMs: 600,
  turn: {},
  echoGuard: {},
};

export type ListenEvent =
  /** `preRoll`: the frames just before the onset, oldest first (copies). */
  | { type: 'speech_start'; atMs: number; preRoll: Int16Array[] }
  /** A frame of the user's turn (a copy: the receiver may keep it). */
  | { type: 'audio'; frame: Int16Array }
  | { type: 'speech_end'; atMs: number }
  | Extract<TurnEvent, { type: 'end_of_turn' }>
  | { type: 'discarded'; atMs: number; voicedMs: number }
  | { type: 'barge_in'; atMs: number; voicedMs: number };

export class ListeningPipeline {
  readonly options: ListeningOptions;
  readonly #vad: VadStage;
  readonly #turns: TurnDetector;
  readonly #echo: EchoGuard | null;
  readonly #ring: Int16Array[];
  #ringNext = 0;
  #ringFill = 0;
  #bargedIn = false;
  #respondingSince: number | null = null;
  #bargeInVoicedMs = 0;
  #turnStartedWhileResponding = false;
  echoSuppressedFrames = 0;

  constructor(vad: VadStage, options: Partial<ListeningOptions> = {}) {
    this.options = { ...DEFAULT_LISTENING_OPTIONS, ...options };
    const o = this.options;
    this.#vad = vad;
    this.#turns = new TurnDetector({ frameMs: o.frameMs, ...o.turn });
    this.#echo = o.echoGuard === false ? null : new EchoGuard({ frameMs: o.frameMs, ...o.echoGuard });
    const ringFrames = Math.max(1, Math.round(o.preRollMs / o.frameMs));
    this.#ring = Array.from({ length: ringFrames }, () => new Int16Array(320));
  }

  get inTurn(): boolean {
    return this.#turns.inTurn;
  }

  /** Tells the turn detector the running transcript (mid-phrase extension). */
  setPartialTranscript(text: string): void {
    this.#turns.setPartialTranscript(text);
  }

  /** Records an outbound frame (null = nothing sent this tick) for the echo guard. */
  sent(frame: Int16Array | null, atMs: number): void {
    this.#echo?.sent(frame, atMs);
  }

  /**
   * One inbound frame. `responding`: an answer is playing. `atMs` is the media clock, the same one
   * `sent()` uses.
   */
  push(input: Int16Array, responding: boolean, atMs: number): ListenEvent[] {
    if (!responding) this.#respondingSince = null;
    else this.#respondingSince ??= atMs;
    const decision = this.#vad.push(input);
    let { speaking, voiced } = decision;
    const frame = decision.frame ?? input;
    if (this.#echo && (speaking || voiced) && this.#echo.isEcho(decision.levelDb, atMs)) {
      speaking = false;
      voiced = false;
      this.echoSuppressedFrames++;
    } else if (this.#echo && !speaking && !voiced && this.#echo.active(atMs)) {
      this.#echo.isEcho(decision.levelDb, atMs); // keep its inbound envelope continuous
    }
    const wasInTurn = this.#turns.inTurn;
    const turnEvents = this.#turns.push(speaking, voiced);
    const events: ListenEvent[] = [];
    for (const event of turnEvents) {
      if (event.type === 'speech_start' && !wasInTurn && this.#turns.inTurn) {
        this.#bargedIn = false;
        this.#bargeInVoicedMs = 0;
        this.#turnStartedWhileResponding = responding;
        events.push({ type: 'speech_start', atMs: event.atMs, preRoll: this.#takePreRoll() });
      } else if (event.type === 'speech_end') {
        events.push(event);
      } else if (event.type === 'end_of_turn') {
        // Speech during an answer that never became a barge-in (a short "mhm") is not a turn.
        if (this.#turnStartedWhileResponding && !this.#bargedIn) events.push({ type: 'discarded', atMs: event.atMs, voicedMs: event.voicedMs });
        else events.push(event);
      } else if (event.type === 'discarded') {
        events.push(event);
      }
    }
    if (this.#turns.inTurn) {
      events.push({ type: 'audio', frame: frame.slice() });
      // Only speech heard after the grace counts towards a barge-in: before it, the echo guard may
      // not have learnt the echo path yet, so what passed it then proves nothing.
      const graceOver = this.#respondingSince !== null && atMs - this.#respondingSince >= this.options.bargeInGraceMs;
      if (responding && graceOver && voiced) this.#bargeInVoicedMs += this.options.frameMs;
      if (responding && !this.#bargedIn && this.#bargeInVoicedMs >= this.options.bargeInMinMs) {
        this.#bargedIn = true;
        events.push({ type: 'barge_in', atMs, voicedMs: this.#turns.voicedMs });
      }
    } else {
      this.#remember(frame);
    }
    return events;
  }

  close(): void {
    this.#vad.close?.();
  }

  /** Forgets the turn in progress (media lost, session paused). */
  reset(): void {
    this.#turns.reset();
    this.#vad.reset();
    this.#ringFill = 0;
    this.#bargedIn = false;
  }

  #remember(frame: Int16Array): void {
    this.#ring[this.#ringNext].set(frame.subarray(0, 320));
    this.#ringNext = (this.#ringNext + 1) % this.#ring.length;
    this.#ringFill = Math.min(this.#ring.length, this.#ringFill + 1);
  }

  #takePreRoll(): Int16Array[] {
    const out: Int16Array[] = [];
    for (let i = this.#ringFill; i > 0; i--) {
      const index = (this.#ringNext - i + this.#ring.length) % this.#ring.length;
      out.push(this.#ring[index].slice());
    }
    this.#ringFill = 0;
    return out;
  }
}
