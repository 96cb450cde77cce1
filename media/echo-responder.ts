// Echo mode's listening side: energy endpointing (SpeechDetector) on the decoded frames; each
// accepted utterance comes back with its audio, which MediaSession plays as the answer. Half-duplex:
// while the answer plays, the microphone is not listened to (MediaSession does not push then).
import { SpeechDetector } from './speech-detector.ts';

export interface EchoOptions {
  sampleRate: number;
  endSilenceMs: number;
  minSpeechMs: number;
  maxUtteranceMs: number;
}

export type EchoEvent =
  | { type: 'speechstart'; at: number }
  /** `accepted`: long enough to be echoed; `audio` (accepted only) is what to play back. */
  | { type: 'utterance'; speechStartAt: number; speechEndAt: number; endOfTurnAt: number; audioMs: number; accepted: boolean; audio?: Int16Array };

export class EchoResponder {
  readonly #detector: SpeechDetector;
  readonly #sampleRate: number;
  #speechStartWall = 0;

  constructor(options: EchoOptions) {
    this.#sampleRate = options.sampleRate;
    this.#detector = new SpeechDetector(options);
  }

  /** One decoded frame, heard at wall-clock `wall` (epoch ms). */
  push(frame: Int16Array, wall: number): EchoEvent | null {
    const event = this.#detector.push(frame);
    if (!event) return null;
    if (event.kind === 'speech_start') {
      this.#speechStartWall = wall;
      return { type: 'speechstart', at: wall };
    }
    const speechEndAt = event.kind === 'utterance' && event.cut ? wall : wall - this.#detector.options.endSilenceMs;
    const accepted = event.kind === 'utterance';
    const utterance = { type: 'utterance', speechStartAt: this.#speechStartWall, speechEndAt, endOfTurnAt: wall, accepted } as const;
    if (event.kind !== 'utterance') return { ...utterance, audioMs: event.voicedMs };
    return { ...utterance, audioMs: Math.round((event.audio.length / this.#sampleRate) * 1000), audio: event.audio };
  }

  /** Forgets speech in progress (media lost, the answer ended). */
  reset(): void {
    this.#detector.reset();
  }
}
