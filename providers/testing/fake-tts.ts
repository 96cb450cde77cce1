/**
 * A scripted TtsProvider for tests that run without a network: it splits the incoming text into
 * sentences (providers/sentence-stream.ts) and answers each with `framesPerSentence` frames of a
 * sine tone, continuous across frames. `pace` is awaited before every frame, so a test decides
 * how fast audio comes (a gate it opens, a timer, nothing at all).
 *
 * ```ts
 * const tts = new FakeTts({ framesPerSentence: 3, faults: [{ afterFrames: 2, error }] });
 * // the first synthesis fails after 2 frames; tts.requests[0].sentences holds what it was given
 * ```
 *
 * Faults are consumed one per synthesize() call, in order. An abort rejects with an AbortError.
 */
import { sentences } from '../sentence-stream.ts';
import type { AudioFrame, TtsOptions, TtsProvider } from '../types.ts';
import { strike, unlessAborted, type FaultStrike } from './fault.ts';

export interface TtsFault extends FaultStrike {
  /** Frames delivered before the fault strikes; 0 (default): before the first frame. */
  afterFrames?: number;
}

export interface FakeTtsOptions {
  name: string;
  sampleRate: number;
  frameMs: number;
  framesPerSentence: number;
  toneHz: number;
  /** Awaited before each frame (index counts from 0 per synthesis). */
  pace: ((frameIndex: number) => Promise<void> | void) | undefined;
  /** One per synthesize() call, in order; calls beyond the list work. */
  faults: TtsFault[];
}

export const DEFAULT_FAKE_TTS_OPTIONS: FakeTtsOptions = {
  name: 'fake-tts',
  sampleRate: 16_000,
  frameMs: 20,
  framesPerSentence: 5,
  toneHz: 440,
  pace: undefined,
  faults: [],
};

export interface FakeTtsRequest {
  /** The sentences read from the text stream so far. */
  sentences: string[];
  frames: number;
  options: TtsOptions;
}

export class FakeTts implements TtsProvider {
  readonly name: string;
  readonly faults: TtsFault[];
  /** One per synthesize() call, oldest first. */
  readonly requests: FakeTtsRequest[] = [];
  readonly #options: FakeTtsOptions;

  constructor(options: Partial<FakeTtsOptions> = {}) {
    this.#options = { ...DEFAULT_FAKE_TTS_OPTIONS, ...options };
    this.name = this.#options.name;
    this.faults = [...this.#options.faults];
  }

  synthesize(text: AsyncIterable<string>, options: TtsOptions): AsyncIterable<AudioFrame> {
    const request: FakeTtsRequest = { sentences: [], frames: 0, options };
    this.requests.push(request);
    return this.#synthesize(text, request, this.faults.shift());
  }

  async *#synthesize(text: AsyncIterable<string>, request: FakeTtsRequest, fault: TtsFault | undefined): AsyncGenerator<AudioFrame> {
    const { sampleRate, frameMs, framesPerSentence, toneHz, pace } = this.#options;
    const { signal } = request.options;
    for await (const sentence of sentences(text)) {
      request.sentences.push(sentence);
      for (let i = 0; i < framesPerSentence; i++) {
        if (fault && request.frames === (fault.afterFrames ?? 0)) await strike(fault, signal);
        await unlessAborted(pace?.(request.frames), signal);
        yield toneFrame({ sampleRate, frameMs, hz: toneHz, startSample: request.frames * (sampleRate * frameMs) / 1000 });
        request.frames++;
      }
    }
    if (fault && request.frames === (fault.afterFrames ?? 0)) await strike(fault, signal);
  }
}

/** One frame of a sine tone at 0.3 full scale; consecutive `startSample`s give a continuous tone. */
export function toneFrame(options: { sampleRate: number; frameMs: number; hz: number; startSample?: number }): AudioFrame {
  const { sampleRate, frameMs, hz, startSample = 0 } = options;
  const samples = new Int16Array(Math.round((sampleRate * frameMs) / 1000));
  for (let i = 0; i < samples.length; i++) {
    samples[i] = Math.round(0.3 * 32767 * Math.sin((2 * Math.PI * hz * (startSample + i)) / sampleRate));
  }
  return { samples, sampleRate };
}
