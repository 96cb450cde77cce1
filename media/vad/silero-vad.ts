// Silero VAD v5 through sherpa-onnx-node, shared by the sessions of one media worker thread.
//
// Why a pool: one sherpa `Vad` owns a whole onnxruntime session. Measured here (sherpa-onnx-node
// 1.13.8, numThreads 1): ~7.7 MB RSS and ~80 ms to create per instance, ~105 us per 32 ms window
// (~68 us per 20 ms frame).
// One per session would blow the 2 MB/session budget, and most sessions are silent most of the
// time, so a session leases an instance only while its energy pre-gate is open (VoiceActivity).
//
// What sherpa gives and what it does not: it feeds Silero 576-sample inputs (the 512-sample window
// plus the previous 64 samples that v5 needs) and exposes only a thresholded verdict
// (`isDetected`), not the probability. Its own hysteresis stays on top of the threshold: onset
// needs two windows above `threshold`, and speech lasts until a window falls below
// `threshold - 0.15`.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Silero v5 as shipped in @ricky0123/vad-web 0.0.31 (see README.md here). */
export const SILERO_V5_MODEL = fileURLToPath(new URL('./silero_vad_v5.onnx', import.meta.url));
export const SILERO_V5_SHA256 = '2623a2953f6ff3d2c1e61740c6cdb7168133479b267dfef114a4a3cc5bdd788f';

const SAMPLE_RATE = 16000;
const WINDOW = 512;
const CONTEXT = 64; // v5 inputs are the window plus this much of the audio before it
const FLUSH_WINDOWS = 16;

export interface SileroVadPoolOptions {
  modelPath: string;
  /**
   * Expected sha256 of the model, or null to skip the check. Checked because onnxruntime aborts
   * the whole process (uncatchably) on a corrupt model, and sherpa returns a dead handle on a
   * missing one.
   */
  modelSha256: string | null;
  /** Window probability above which Silero says speech. Fixed per instance, so per pool. */
  threshold: number;
  /** Most instances this thread may hold (each ~7.7 MB). */
  maxInstances: number;
  /** Created up front, so the first leases do not stall the thread ~80 ms each. */
  preloadInstances: number;
}

export const DEFAULT_SILERO_VAD_POOL_OPTIONS: SileroVadPoolOptions = {
  modelPath: SILERO_V5_MODEL,
  modelSha256: SILERO_V5_SHA256,
  threshold: 0.5,
  maxInstances: 8,
  preloadInstances: 2,
};

interface SherpaVad {
  acceptWaveform(samples: Float32Array): void;
  isDetected(): boolean;
  flush(): void;
  clear(): void;
  reset(): void;
}
type SherpaVadConstructor = new (config: object, bufferSizeInSeconds: number) => SherpaVad;

let sherpaVad: SherpaVadConstructor | undefined;

// Loaded on first use: the addon maps onnxruntime (~20 MB of code) into the process.
function loadSherpa(): SherpaVadConstructor {
  sherpaVad ??= (createRequire(import.meta.url)('sherpa-onnx-node') as { Vad: SherpaVadConstructor }).Vad;
  return sherpaVad;
}

/** One Silero instance. Leased from a SileroVadPool; never shared by two sessions at once. */
export class SileroVad {
  readonly #vad: SherpaVad;
  #scratch = new Float32Array(320);
  #pending = 0; // samples sherpa holds that have not completed a window
  #speechWindows = 0; // windows since the last flush of sherpa's speech segment
  #wasDetected = false;
  #windows = 0;

  constructor(vad: SherpaVad) {
    this.#vad = vad;
  }

  /** 32 ms windows Silero has run on (each one an onnxruntime inference). */
  get windows(): number {
    return this.#windows;
  }

  /**
   * Feeds 16 kHz samples. Returns the verdict of the latest window that completed, or null when
   * this call completed none (a 20 ms frame completes a 32 ms window only every other call).
   */
  accept(samples: Int16Array): boolean | null {
    if (this.#scratch.length !== samples.length) this.#scratch = new Float32Array(samples.length);
    const scratch = this.#scratch;
    for (let i = 0; i < samples.length; i++) scratch[i] = samples[i]! / 32768;
    this.#vad.acceptWaveform(scratch);
    // Mirror sherpa's buffering: it runs a window once it holds WINDOW + CONTEXT samples and
    // keeps CONTEXT of them; `isDetected` only changes on calls that ran one.
    this.#pending += samples.length;
    if (this.#pending < WINDOW + CONTEXT) return null;
    const ran = Math.floor((this.#pending - WINDOW - CONTEXT) / WINDOW) + 1;
    this.#pending -= ran * WINDOW;
    this.#windows += ran;
    const detected = this.#vad.isDetected();
    // While speech lasts, sherpa collects it as a segment and copies the whole segment on every
    // window. We only want the verdict, so the segment is flushed (and dropped) every
    // FLUSH_WINDOWS windows: often enough to keep the copies and the buffer small, rarely enough
    // that flushing itself (~50 us per 20 ms frame if done on every window) stays cheap.
    let segmentDone = !detected && this.#wasDetected; // sherpa closes the segment at speech end
    if (detected && ++this.#speechWindows >= FLUSH_WINDOWS) {
      this.#vad.flush();
      segmentDone = true;
    }
    if (segmentDone) {
      this.#vad.clear();
      this.#speechWindows = 0;
    }
    this.#wasDetected = detected;
    return detected;
  }

  reset(): void {
    this.#vad.reset();
    this.#pending = 0;
    this.#speechWindows = 0;
    this.#wasDetected = false;
  }
}

/** Per-thread pool of Silero instances. Synchronous; create one per media worker thread. */
export class SileroVadPool {
  readonly options: SileroVadPoolOptions;
  readonly #idle: SileroVad[] = [];
  readonly #leased = new Set<SileroVad>();
  #created = 0;
  #peakLeased = 0;
  #exhausted = 0;
  #closed = false;

  constructor(options: Partial<SileroVadPoolOptions> = {}) {
    this.options = { ...DEFAULT_SILERO_VAD_POOL_OPTIONS, ...options };
    const o = this.options;
    // sherpa accepts a threshold in [0.01, 1); outside it, it hands back a dead handle.
    if (!(o.threshold >= 0.01 && o.threshold < 1)) throw new RangeError('threshold must be in [0.01, 1)');
    if (!(Number.isInteger(o.maxInstances) && o.maxInstances >= 0)) throw new RangeError('maxInstances must be an integer >= 0');
    if (!(Number.isInteger(o.preloadInstances) && o.preloadInstances >= 0 && o.preloadInstances <= o.maxInstances)) {
      throw new RangeError('preloadInstances must be an integer in [0, maxInstances]');
    }
    if (o.maxInstances > 0) verifyModel(o.modelPath, o.modelSha256);
    for (let i = 0; i < o.preloadInstances; i++) this.#idle.push(this.#create());
  }

  /** A reset instance, or null when all `maxInstances` are leased (the caller falls back). */
  acquire(): SileroVad | null {
    if (this.#closed) throw new Error('SileroVadPool is closed');
    let vad = this.#idle.pop();
    if (!vad && this.#created < this.options.maxInstances) vad = this.#create();
    if (!vad) {
      this.#exhausted++;
      return null;
    }
    this.#leased.add(vad);
    this.#peakLeased = Math.max(this.#peakLeased, this.#leased.size);
    return vad;
  }

  /** Takes an instance back; it is reset so the next session starts from a clean state. */
  release(vad: SileroVad): void {
    if (!this.#leased.delete(vad)) return;
    vad.reset();
    if (!this.#closed) this.#idle.push(vad);
  }

  /** Drops the instances; sherpa frees each when it is garbage-collected (it has no free()). */
  close(): void {
    this.#closed = true;
    this.#idle.length = 0;
  }

  toJSON() {
    return {
      instances: this.#created,
      leased: this.#leased.size,
      peakLeased: this.#peakLeased,
      exhausted: this.#exhausted,
      threshold: this.options.threshold,
    };
  }

  #create(): SileroVad {
    const Vad = loadSherpa();
    const vad = new Vad(
      {
        sileroVad: {
          model: this.options.modelPath,
          threshold: this.options.threshold,
          // sherpa replaces 0 with its defaults (0.25 s / 0.5 s), which delay onset and end by
          // that much. One sample-ish keeps its timing to a single window; VoiceActivity applies
          // minSpeechMs and minSilenceMs itself.
          minSpeechDuration: 0.001,
          minSilenceDuration: 0.001,
          windowSize: WINDOW,
          maxSpeechDuration: 3600,
        },
        sampleRate: SAMPLE_RATE,
        numThreads: 1,
        provider: 'cpu',
        debug: 0,
      },
      // Segment buffer (s): FLUSH_WINDOWS windows plus sherpa's lead-in fit with room to spare.
      1,
    );
    this.#created++;
    return new SileroVad(vad);
  }
}

function verifyModel(path: string, sha256: string | null): void {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new Error(`Silero model not readable at ${path}: ${(error as Error).message}`);
  }
  if (sha256 === null) return;
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== sha256) throw new Error(`Silero model at ${path} has sha256 ${actual}, expected ${sha256}`);
}
