// Echo mode's listening side: energy endpointing (SpeechDetector) on the decoded frames; each
// accepted utterance comes back with its audio, which MediaSession plays as the answer. Half-duplex:
// while the answer plays, the microphone is not listened to (MediaSession does not push then).
import { SpeechDetector, type SpeechDetectorOptions } from './speech-detector.ts';

/** The echo's settings (ECHO_* in the server config); the rest of the detector's are its defaults. */
export type EchoOptions = Pick<SpeechDetectorOptions, 'endSilenceMs' | 'minSpeechMs' | 'maxUtteranceMs'>;

export type EchoEvent =
  | { type: 'speechstart'; at: number }
  /** `accepted`: long enough to be echoed; `audio` (accepted only) is what to play back. */
  | { type: 'utterance'; speechStartAt: number; speechEndAt: number; endOfTurnAt: number; audioMs: number; accepted: boolean; audio?: Int16Array };

export class EchoResponder {
  readonly #detector: SpeechDetector;
  readonly #sampleRate: number;
  /** Epoch ms, read only when a frame causes an event (most frames do not). */
  readonly #wall: () => number;
  #speechStartWall = 0;

  constructor(sampleRate: number, options: EchoOptions, wall: () => number) {
    this.#sampleRate = sampleRate;
    this.#detector = new SpeechDetector({ ...options, sampleRate });
    this.#wall = wall;
  }

  /** One decoded frame; events carry the wall-clock time of the frame that caused them. */
  push(frame: Int16Array): EchoEvent | null {
    const event = this.#detector.push(frame);
    if (!event) return null;
    const wall = this.#wall();
    if (event.kind === 'speech_start') {
      this.#speechStartWall = wall;
      return { type: 'speechstart', at: wall };
    }
    const turn = { type: 'utterance', speechStartAt: this.#speechStartWall, endOfTurnAt: wall } as const;
    if (event.kind !== 'utterance') return { ...turn, speechEndAt: wall - this.#detector.options.endSilenceMs, audioMs: event.voicedMs, accepted: false };
    const speechEndAt = event.cut ? wall : wall - this.#detector.options.endSilenceMs;
    return { ...turn, speechEndAt, audioMs: Math.round((event.audio.length / this.#sampleRate) * 1000), accepted: true, audio: event.audio };
  }

  /** Forgets speech in progress (media lost, the answer ended). */
  reset(): void {
    this.#detector.reset();
  }
}
