// Silero VAD v5: one model per media worker thread, run by an engine (silero-engine.ts: the native
// kernel by default, or onnxruntime) in batches over the windows of all its sessions.
//
// Why batches. In a busy media worker werift, Opus and V8 push the model's weights (1.2 MB) out of
// the cache between two runs; one run over B windows reads them once. Measured in the bench's
// busy workers, the native kernel costs ~90-110 us a window in runs of ~2.5-3, onnxruntime
// ~185-210 (media/vad/README.md). A session holds only its recurrent state (2 x 128 floats) and 64
// samples of context, so there is no instance pool and no cap from memory: every talking session
// gets Silero.
//
// The price is delay: a batch runs (synchronously, on this thread) in a later task
// than the one in which its first window completed, so a window's verdict is known by the next
// 20 ms frame at the earliest, not during the push that completed it. A batch waits for the
// windows it expects: each stream that completed a window within the last LIVE_MS will complete
// another within one window (32 ms). The run starts once every such stream has submitted, or
// `batchWindowMs` after the first window, whichever comes first. So a lone talker never waits, and
// under load a run holds one window of each talker when `batchWindowMs` covers a whole window.
// `SileroStream.accept()` returns the verdicts that came back since the previous call; `waitMs`
// (stats) sums what the windows waited.
import { fileURLToPath } from 'node:url';
import {
  CONTEXT_SAMPLES as CONTEXT, HIDDEN, INPUT_SAMPLES as INPUT, nativeEngine, onnxEngine, SILERO_V5_16K_WEIGHTS, SILERO_V5_16K_WEIGHTS_SHA256, WINDOW_SAMPLES as WINDOW,
  type SileroEngine, type SileroEngineName,
} from './silero-engine.ts';
import { NATIVE_WEIGHTS, type NativeWeights } from './native-weights.ts';

/** Silero v5 as shipped in @ricky0123/vad-web 0.0.31 (see README.md here): 8 and 16 kHz, input `sr`. */
export const SILERO_V5_MODEL = fileURLToPath(new URL('./silero_vad_v5.onnx', import.meta.url));
export const SILERO_V5_SHA256 = '2623a2953f6ff3d2c1e61740c6cdb7168133479b267dfef114a4a3cc5bdd788f';
/**
 * The same network for 16 kHz only, as a plain graph (scripts/silero-16k.py): the default. The
 * original's sample-rate and shape `If`s and their ~60 shape nodes cost more per run than the
 * arithmetic, and its convolutions leave most of the matrix kernel's lanes idle (README.md here);
 * the weights are the same and so are the verdicts (tested).
 */
export const SILERO_V5_16K_MODEL = fileURLToPath(new URL('./silero_vad_v5_16k.onnx', import.meta.url));
export const SILERO_V5_16K_SHA256 = 'ad58ce0c5b3f8180a727aa9624a131a500ec3ab50bbae25977ca54c08fd62590';

const STATE = 2 * HIDDEN; // [2, batch, 128] per batch: h and c of 128 per stream
/** A verdict later than a window's own length would fall behind the audio. */
const MAX_BATCH_WINDOW_MS = 32;
/**
 * A stream that completed a window this recently is expected to complete another within one
 * window's length (32 ms at 16 kHz), give or take the jitter of its packets' arrival.
 */
const LIVE_MS = 40;
/** Speech continues while a window stays above threshold - this (Silero's own "neg_threshold"). */
const RELEASE_MARGIN = 0.15;

export interface SileroVadOptions {
  /** What runs the model (silero-engine.ts): the native kernel with `weightsPath`, or onnxruntime with `modelPath`. */
  engine: SileroEngineName;
  /** The ONNX model (engine `onnx`). */
  modelPath: string;
  /**
   * Expected sha256 of the model, or null to skip the check. Checked because a model that is not
   * Silero v5 fails in ways far from its cause (wrong input names, or nonsense verdicts).
   */
  modelSha256: string | null;
  /** The weights file (engine `native`), and its expected sha256 or null. */
  weightsPath: string;
  weightsSha256: string | null;
  /** Precision of the weights the native kernel reads (silero-engine.ts): `auto` = f16 where the CPU converts it in hardware. */
  nativeWeights: NativeWeights;
  /** Window probability above which Silero says speech. */
  threshold: number;
  /** Most sessions with a stream at once; beyond it `acquire()` says no and they fall back to energy. */
  maxStreams: number;
  /** Most windows in one run; the rest go in the next. */
  maxBatch: number;
  /** Windows a stream may have waiting; beyond it the oldest are dropped (counted), as late verdicts are useless. */
  maxQueuedWindows: number;
  /**
   * How long a completed window may wait for the windows of other sessions to join its run (ms),
   * at most: the run starts earlier once every stream that is expected to complete a window has
   * done so. 0: the run starts right after the task that completed it. Sessions' windows complete
   * at different times (each session's packets arrive on its own clock), so without a wait most
   * runs hold one or two windows, and a run's fixed cost is most of its cost (README.md here).
   */
  batchWindowMs: number;
  /** The clock of the batch gathering, ms (tests pin it; the run and wait times are measured by performance.now()). */
  clock: () => number;
}

export const DEFAULT_SILERO_VAD_OPTIONS: SileroVadOptions = {
  engine: 'native',
  modelPath: SILERO_V5_16K_MODEL,
  modelSha256: SILERO_V5_16K_SHA256,
  weightsPath: SILERO_V5_16K_WEIGHTS,
  weightsSha256: SILERO_V5_16K_WEIGHTS_SHA256,
  nativeWeights: 'auto',
  threshold: 0.5,
  maxStreams: 2000,
  maxBatch: 128,
  maxQueuedWindows: 4,
  batchWindowMs: 0,
  clock: () => performance.now(),
};

/** A completed window: context + samples, and when it was submitted (performance.now(), for the wait statistic). */
interface QueuedWindow {
  samples: Float32Array;
  queuedAt: number;
}

/** One session's view of the worker's Silero: its recurrent state, context, and verdicts. */
export class SileroStream {
  readonly #vad: SileroVad;
  /** Context (64 samples) then the window being filled. */
  readonly #buffer = new Float32Array(INPUT);
  #fill = 0;
  /** Windows waiting for a run, oldest first (one per run: each needs the state the one before left). */
  readonly queue: QueuedWindow[] = [];
  /** Windows that went through a run (or were dropped), for reuse: a window is 2.3 KB, ~30 a second. */
  readonly spare: QueuedWindow[] = [];
  /** When this stream last submitted a window (the SileroVad's clock); -Infinity before the first. */
  lastWindowAt = -Infinity;
  readonly state = new Float32Array(STATE);
  #speech = false;
  #verdict: boolean | null = null;
  #windows = 0;
  probability = 0;

  constructor(vad: SileroVad) {
    this.#vad = vad;
  }

  /** Windows submitted to Silero. */
  get windows(): number {
    return this.#windows;
  }

  /**
   * Feeds 16 kHz samples. Returns the verdict of the latest window that came back since the last
   * call, or null when none did. A window's verdict comes back about one frame after its last sample.
   */
  accept(samples: Int16Array): boolean | null {
    let offset = 0;
    while (offset < samples.length) {
      const n = Math.min(WINDOW - this.#fill, samples.length - offset);
      for (let i = 0; i < n; i++) this.#buffer[CONTEXT + this.#fill + i] = samples[offset + i]! / 32768;
      this.#fill += n;
      offset += n;
      if (this.#fill === WINDOW) {
        this.#windows++;
        const window = this.spare.pop() ?? { samples: new Float32Array(INPUT), queuedAt: 0 };
        window.samples.set(this.#buffer);
        this.#vad.submit(this, window);
        this.#buffer.copyWithin(0, WINDOW); // the window's last 64 samples are the next context
        this.#fill = 0;
      }
    }
    const verdict = this.#verdict;
    this.#verdict = null;
    return verdict;
  }

  /** Forgets the audio, the recurrent state and any verdict still to come. */
  reset(): void {
    this.spare.push(...this.queue.splice(0));
    this.lastWindowAt = -Infinity;
    this.state.fill(0);
    this.#buffer.fill(0);
    this.#fill = 0;
    this.#speech = false;
    this.#verdict = null;
    this.probability = 0;
  }

  /** A window's result, in order (called by SileroVad). */
  settle(probability: number, threshold: number): void {
    this.probability = probability;
    this.#speech = probability > threshold || (this.#speech && probability > threshold - RELEASE_MARGIN);
    this.#verdict = this.#speech;
  }
}

/** Per-thread Silero: one engine (silero-engine.ts), batched runs. Create one per media worker with `load()`. */
export class SileroVad {
  readonly options: SileroVadOptions;
  readonly #engine: SileroEngine;
  readonly #streams = new Set<SileroStream>();
  /** Streams with a window waiting, in submission order. */
  readonly #ready = new Set<SileroStream>();
  #scheduled = false;
  /** When the oldest window now waiting for a run was submitted (options.clock). */
  #firstReadyAt: number | null = null;
  /** Live streams (LIVE_MS) whose next window the gathering batch waits for. */
  readonly #awaited = new Set<SileroStream>();
  /** The timer of a run that waits for more windows (batchWindowMs). */
  #waiting: NodeJS.Timeout | null = null;
  #closed = false;
  #idleWaiters: Array<() => void> = [];
  /** Batch inputs, grown to the largest batch so far and reused: [batch, 576] and [2, batch, 128]. */
  #inputs = new Float32Array(0);
  #states = new Float32Array(0);
  readonly #stats = { runs: 0, windows: 0, maxBatch: 0, droppedWindows: 0, errors: 0, exhausted: 0, peakStreams: 0, runMs: 0, waitMs: 0 };
  lastError: string | null = null;

  private constructor(engine: SileroEngine, options: SileroVadOptions) {
    this.#engine = engine;
    this.options = options;
  }

  static async load(options: Partial<SileroVadOptions> = {}): Promise<SileroVad> {
    const o = { ...DEFAULT_SILERO_VAD_OPTIONS, ...options };
    if (!(o.threshold > RELEASE_MARGIN && o.threshold < 1)) throw new RangeError(`threshold must be in (${RELEASE_MARGIN}, 1)`);
    for (const key of ['maxStreams', 'maxBatch', 'maxQueuedWindows', 'batchWindowMs'] as const) {
      const least = key === 'maxStreams' || key === 'batchWindowMs' ? 0 : 1; // 0 streams: every session judged by energy
      if (!(Number.isInteger(o[key]) && o[key] >= least)) throw new RangeError(`${key} must be an integer >= ${least}`);
    }
    if (o.batchWindowMs > MAX_BATCH_WINDOW_MS) throw new RangeError(`batchWindowMs must be at most ${MAX_BATCH_WINDOW_MS}`);
    if (o.engine !== 'native' && o.engine !== 'onnx') throw new RangeError(`engine must be native or onnx, not ${String(o.engine)}`);
    if (!NATIVE_WEIGHTS.includes(o.nativeWeights)) throw new RangeError(`nativeWeights must be one of ${NATIVE_WEIGHTS.join(', ')}, not ${String(o.nativeWeights)}`);
    const engine = o.engine === 'native' ? nativeEngine(o.weightsPath, o.weightsSha256, o.nativeWeights) : onnxEngine(o.modelPath, o.modelSha256);
    if (o.maxBatch > engine.maxBatch) throw new RangeError(`maxBatch must be at most ${engine.maxBatch} with the ${engine.name} engine`);
    return new SileroVad(engine, o);
  }

  /** A fresh stream, or null when `maxStreams` are out (the caller judges by energy). */
  acquire(): SileroStream | null {
    if (this.#closed) throw new Error('SileroVad is closed');
    if (this.#streams.size >= this.options.maxStreams) {
      this.#stats.exhausted++;
      return null;
    }
    const stream = new SileroStream(this);
    this.#streams.add(stream);
    this.#stats.peakStreams = Math.max(this.#stats.peakStreams, this.#streams.size);
    return stream;
  }

  release(stream: SileroStream): void {
    if (!this.#streams.delete(stream)) return;
    stream.reset();
    this.#ready.delete(stream);
    // A gathering batch no longer waits for it (and may now be complete).
    if (this.#awaited.delete(stream) && this.#awaited.size === 0) this.#schedule(false);
  }

  /** Resolves once no window is waiting or running (tests; the end of a benchmark). */
  idle(): Promise<void> {
    if (!this.#scheduled) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stream of this.#streams) stream.reset();
    this.#streams.clear();
    this.#ready.clear();
    this.#awaited.clear();
    if (this.#waiting) {
      // Nothing is left to run: no need to wait out batchWindowMs.
      clearTimeout(this.#waiting);
      this.#waiting = null;
      this.#scheduled = false;
      this.#settled();
    }
    await this.idle();
    this.#engine.dispose();
  }

  /** What runs the model: `native/f16`, `native/f32` or `onnx`. */
  get engine(): string {
    return this.#engine.weights ? `${this.#engine.name}/${this.#engine.weights}` : this.#engine.name;
  }

  toJSON() {
    return { ...this.#stats, streams: this.#streams.size, threshold: this.options.threshold, engine: this.engine, lastError: this.lastError };
  }

  /** A completed window of `stream` (called by SileroStream). */
  submit(stream: SileroStream, window: QueuedWindow): void {
    if (this.#closed || !this.#streams.has(stream)) return;
    window.queuedAt = performance.now();
    stream.queue.push(window);
    stream.lastWindowAt = this.options.clock();
    if (stream.queue.length > this.options.maxQueuedWindows) {
      stream.spare.push(stream.queue.shift()!);
      this.#stats.droppedWindows++;
    }
    this.#ready.add(stream);
    this.#awaited.delete(stream);
    this.#schedule(false);
  }

  // The run starts after the current task, so windows that complete in the same poll of the worker
  // (one per session whose frame was due) go into one batch. With `batchWindowMs`, a batch that
  // starts gathering notes the live streams not yet in it (#awaited) and runs once they are all in,
  // or once its first window has waited `batchWindowMs`. Windows left over by a run (maxBatch, or a
  // stream's next window) wait no further.
  #schedule(leftOver: boolean): void {
    if (this.#ready.size === 0) return;
    const now = this.options.clock();
    if (this.#firstReadyAt === null) {
      this.#firstReadyAt = now;
      this.#awaited.clear();
      if (!leftOver && this.options.batchWindowMs > 0) {
        for (const stream of this.#streams) {
          if (now - stream.lastWindowAt < LIVE_MS && !this.#ready.has(stream)) this.#awaited.add(stream);
        }
      }
    }
    const runNow = leftOver || this.#awaited.size === 0 || this.#ready.size >= this.options.maxBatch;
    if (this.#waiting && runNow) {
      clearTimeout(this.#waiting);
      this.#waiting = null;
      this.#scheduled = false;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    const start = () => {
      this.#scheduled = false;
      this.#waiting = null;
      this.#firstReadyAt = null;
      this.#awaited.clear();
      this.#run();
    };
    const wait = runNow ? 0 : this.#firstReadyAt + this.options.batchWindowMs - now;
    if (wait >= 1) this.#waiting = setTimeout(start, wait);
    else setImmediate(start);
  }

  // Synchronous: both engines run on this thread (silero-engine.ts).
  #run(): void {
    const batch: SileroStream[] = [];
    for (const stream of this.#ready) {
      if (batch.length >= this.options.maxBatch) break;
      this.#ready.delete(stream);
      batch.push(stream);
    }
    if (batch.length === 0 || this.#closed) return this.#settled();
    const size = batch.length;
    if (this.#inputs.length < size * INPUT) {
      this.#inputs = new Float32Array(size * INPUT);
      this.#states = new Float32Array(size * STATE);
    }
    const input = this.#inputs.subarray(0, size * INPUT);
    const state = this.#states.subarray(0, size * STATE);
    const gathered = performance.now();
    batch.forEach((stream, b) => {
      const window = stream.queue[0]!;
      input.set(window.samples, b * INPUT);
      state.set(stream.state.subarray(0, HIDDEN), b * HIDDEN);
      state.set(stream.state.subarray(HIDDEN), (size + b) * HIDDEN);
      this.#stats.waitMs += gathered - window.queuedAt;
    });
    const started = performance.now();
    try {
      const { probabilities, stateN: next } = this.#engine.run(input, state, size);
      batch.forEach((stream, b) => {
        stream.state.set(next.subarray(b * HIDDEN, (b + 1) * HIDDEN), 0);
        stream.state.set(next.subarray((size + b) * HIDDEN, (size + b + 1) * HIDDEN), HIDDEN);
        stream.settle(probabilities[b]!, this.options.threshold);
      });
      this.#stats.runs++;
      this.#stats.windows += size;
      this.#stats.maxBatch = Math.max(this.#stats.maxBatch, size);
    } catch (error) {
      // The streams keep their state and skip the window: no verdict is better than a wrong one.
      this.#stats.errors++;
      this.lastError = (error as Error).message;
    }
    this.#stats.runMs += performance.now() - started;
    for (const stream of batch) {
      stream.spare.push(stream.queue.shift()!);
      if (stream.queue.length > 0) this.#ready.add(stream);
    }
    if (this.#ready.size > 0 && !this.#closed) this.#schedule(true);
    else this.#settled();
  }

  #settled(): void {
    if (this.#scheduled) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}
