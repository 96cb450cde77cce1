// Energy-based speech endpointing for the echo conversation: finds where an utterance starts and ends
// in a stream of 20 ms PCM frames. Pure: time is the frames themselves (20 ms each).

export interface SpeechDetectorOptions {
  sampleRate: number;
  frameMs: number;
  /** Frames below this level are never speech (dBFS). */
  absoluteThresholdDb: number;
  /** Speech must be this far above the tracked noise floor (dB). */
  marginOverNoiseDb: number;
  /** Consecutive loud frames that start an utterance (rejects clicks). */
  onsetFrames: number;
  endSilenceMs: number;
  minSpeechMs: number;
  maxUtteranceMs: number;
  /** Audio kept from before the onset, so the first syllable is not clipped. */
  preRollMs: number;
  /** Silence kept after the last loud frame. */
  tailMs: number;
  /** Window over which the noise floor is the minimum level. */
  noiseWindowMs: number;
}

export const DEFAULT_SPEECH_DETECTOR_OPTIONS: SpeechDetectorOptions = {
  sampleRate: 16000,
  frameMs: 20,
  absoluteThresholdDb: -45,
  marginOverNoiseDb: 10,
  onsetFrames: 2,
  endSilenceMs: 600,
  minSpeechMs: 200,
  maxUtteranceMs: 15_000,
  preRollMs: 200,
  tailMs: 100,
  noiseWindowMs: 1500,
};

export type SpeechDetectorEvent =
  | { kind: 'speech_start'; frameIndex: number }
  /** `audio` is the utterance (pre-roll, speech, short tail); `voicedMs` counts loud frames only. */
  | { kind: 'utterance'; frameIndex: number; audio: Int16Array; voicedMs: number; cut: boolean }
  | { kind: 'discarded'; frameIndex: number; voicedMs: number };

export class SpeechDetector {
  readonly options: SpeechDetectorOptions;
  #noiseFloorDb = -70;
  #frameIndex = 0;
  #loudRun = 0;
  #inSpeech = false;
  #silentFrames = 0;
  #voicedFrames = 0;
  #frames: Int16Array[] = [];
  readonly #preRoll: Int16Array[] = [];
  #levelDb = -100;
  readonly #floorWindow: Float64Array;
  #floorIndex = 0;

  constructor(options: Partial<SpeechDetectorOptions> = {}) {
    this.options = { ...DEFAULT_SPEECH_DETECTOR_OPTIONS, ...options };
    this.#floorWindow = new Float64Array(Math.ceil(this.options.noiseWindowMs / this.options.frameMs)).fill(-70);
  }

  get inSpeech(): boolean {
    return this.#inSpeech;
  }

  /** Level of the last frame, dBFS. */
  get levelDb(): number {
    return this.#levelDb;
  }

  get noiseFloorDb(): number {
    return this.#noiseFloorDb;
  }

  /** Pushes one frame (copied if kept). Returns an event when one happens on this frame. */
  push(frame: Int16Array): SpeechDetectorEvent | null {
    const o = this.options;
    const index = this.#frameIndex++;
    const level = frameLevelDb(frame);
    this.#levelDb = level;
    const loud = level > Math.max(o.absoluteThresholdDb, this.#noiseFloorDb + o.marginOverNoiseDb);
    this.#trackNoiseFloor(level);

    if (!this.#inSpeech) {
      this.#keepPreRoll(frame);
      this.#loudRun = loud ? this.#loudRun + 1 : 0;
      if (this.#loudRun < o.onsetFrames) return null;
      this.#inSpeech = true;
      this.#frames = this.#preRoll.splice(0, this.#preRoll.length);
      this.#voicedFrames = this.#loudRun;
      this.#silentFrames = 0;
      return { kind: 'speech_start', frameIndex: index - this.#loudRun + 1 };
    }

    this.#frames.push(frame.slice());
    if (loud) {
      this.#voicedFrames++;
      this.#silentFrames = 0;
    } else {
      this.#silentFrames++;
    }
    const lengthMs = this.#frames.length * o.frameMs;
    const cut = lengthMs >= o.maxUtteranceMs;
    if (this.#silentFrames * o.frameMs < o.endSilenceMs && !cut) return null;
    return this.#finish(index, cut);
  }

  reset(): void {
    this.#inSpeech = false;
    this.#frames = [];
    this.#preRoll.length = 0;
    this.#loudRun = 0;
    this.#silentFrames = 0;
    this.#voicedFrames = 0;
  }

  #finish(index: number, cut: boolean): SpeechDetectorEvent {
    const o = this.options;
    const voicedMs = this.#voicedFrames * o.frameMs;
    const tailFrames = Math.ceil(o.tailMs / o.frameMs);
    const keep = this.#frames.length - Math.max(0, this.#silentFrames - tailFrames);
    const frames = this.#frames.slice(0, keep);
    this.#inSpeech = false;
    this.#frames = [];
    this.#loudRun = 0;
    this.#silentFrames = 0;
    this.#voicedFrames = 0;
    if (voicedMs < o.minSpeechMs) return { kind: 'discarded', frameIndex: index, voicedMs };
    return { kind: 'utterance', frameIndex: index, audio: concat(frames), voicedMs, cut };
  }

  #keepPreRoll(frame: Int16Array): void {
    const max = Math.ceil(this.options.preRollMs / this.options.frameMs) + this.options.onsetFrames;
    const copy = this.#preRoll.length >= max ? this.#preRoll.shift()! : new Int16Array(frame.length);
    copy.set(frame);
    this.#preRoll.push(copy);
  }

  // Minimum statistics: the noise floor is the quietest frame of the last ~1.5 s. Speech has gaps
  // between syllables, so the minimum finds the background even while someone talks; steady noise
  // (a fan, a car) becomes the floor within one window.
  #trackNoiseFloor(level: number): void {
    const window = this.#floorWindow;
    window[this.#floorIndex] = level;
    this.#floorIndex = (this.#floorIndex + 1) % window.length;
    let min = Infinity;
    for (let i = 0; i < window.length; i++) if (window[i]! < min) min = window[i]!;
    this.#noiseFloorDb = min;
  }
}

/** RMS level of a 16-bit frame in dBFS (-100 for digital silence). */
export function frameLevelDb(frame: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < frame.length; i++) sum += frame[i]! * frame[i]!;
  if (sum === 0) return -100;
  const rms = Math.sqrt(sum / frame.length) / 32768;
  return Math.max(-100, 20 * Math.log10(rms));
}

function concat(frames: Int16Array[]): Int16Array {
  let total = 0;
  for (const f of frames) total += f.length;
  const out = new Int16Array(total);
  let offset = 0;
  for (const f of frames) {
    out.set(f, offset);
    offset += f.length;
  }
  return out;
}
