// Silero VAD v5 through onnxruntime-node: one model per media worker thread, run in batches over
// the windows of all its sessions.
//
// Why batches. A run has a large fixed cost (~300 us for one window in-process with cold caches),
// and in a busy media worker werift, Opus and V8 push the model's weights out of the cache between
// two runs; one run over B windows loads them once and, with the 16 kHz graph (its convolutions
// are matrix products over [batch x time] rows), costs ~90-135 us a window in runs of 4 and
// ~35-41 in runs of 16 (media/vad/README.md). A session holds only its recurrent state
// (2 x 128 floats) and 64 samples of context, so there is no instance pool and no cap from
// memory: every talking session gets Silero.
//
// The price is delay: a batch runs (synchronously, on this thread: onnx-model.ts) in a later task
// than the one in which its first window completed - the next one, or `batchWindowMs` later - so a
// window's verdict is known by the next 20 ms frame (or up to batchWindowMs later), not during the
// push that completed it. `SileroStream.accept()` returns the verdicts that came back since the
// previous call.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type * as Ort from 'onnxruntime-node';
import { OnnxModel } from './onnx-model.ts';

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

const SAMPLE_RATE = 16000;
const WINDOW = 512;
const CONTEXT = 64; // v5 inputs are the window plus this much of the audio before it
const INPUT = WINDOW + CONTEXT;
const STATE = 2 * 128; // [2, batch, 128] per batch: two layers of 128 per stream
/** A verdict later than a window's own length would fall behind the audio. */
const MAX_BATCH_WINDOW_MS = 32;
/** Speech continues while a window stays above threshold - this (Silero's own "neg_threshold"). */
const RELEASE_MARGIN = 0.15;

export interface SileroVadOptions {
  modelPath: string;
  /**
   * Expected sha256 of the model, or null to skip the check. Checked because a model that is not
   * Silero v5 fails in ways far from its cause (wrong input names, or nonsense verdicts).
   */
  modelSha256: string | null;
  /** Window probability above which Silero says speech. */
  threshold: number;
  /** Most sessions with a stream at once; beyond it `acquire()` says no and they fall back to energy. */
  maxStreams: number;
  /** Most windows in one run; the rest go in the next. */
  maxBatch: number;
  /** Windows a stream may have waiting; beyond it the oldest are dropped (counted), as late verdicts are useless. */
  maxQueuedWindows: number;
  /**
   * How long a completed window may wait for the windows of other sessions to join its run (ms).
   * 0: the run starts right after the task that completed it. Sessions' windows complete at
   * different times (each session's packets arrive on its own clock), so without a wait most runs
   * hold one or two windows, and a run's fixed cost is most of its cost (README.md here).
   */
  batchWindowMs: number;
}

export const DEFAULT_SILERO_VAD_OPTIONS: SileroVadOptions = {
  modelPath: SILERO_V5_16K_MODEL,
  modelSha256: SILERO_V5_16K_SHA256,
  threshold: 0.5,
  maxStreams: 2000,
  maxBatch: 128,
  maxQueuedWindows: 4,
  batchWindowMs: 0,
};

/** One session's view of the worker's Silero: its recurrent state, context, and verdicts. */
export class SileroStream {
  readonly #vad: SileroVad;
  /** Context (64 samples) then the window being filled. */
  readonly #buffer = new Float32Array(INPUT);
  #fill = 0;
  /** Windows waiting for a run, oldest first (one per run: each needs the state the one before left). */
  readonly queue: Float32Array[] = [];
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
        this.#vad.submit(this, this.#buffer.slice());
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
    this.queue.length = 0;
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

/** Per-thread Silero: one onnxruntime session, batched runs. Create one per media worker with `load()`. */
export class SileroVad {
  readonly options: SileroVadOptions;
  readonly #model: OnnxModel;
  /** The original two-rate model wants `sr`; the 16 kHz one does not. */
  readonly #takesSampleRate: boolean;
  readonly #streams = new Set<SileroStream>();
  /** Streams with a window waiting, in submission order. */
  readonly #ready = new Set<SileroStream>();
  #scheduled = false;
  /** When the oldest window now waiting for a run was submitted (performance.now()). */
  #firstReadyAt: number | null = null;
  /** The timer of a run that waits for more windows (batchWindowMs). */
  #waiting: NodeJS.Timeout | null = null;
  #closed = false;
  #idleWaiters: Array<() => void> = [];
  readonly #stats = { runs: 0, windows: 0, maxBatch: 0, droppedWindows: 0, errors: 0, exhausted: 0, peakStreams: 0, runMs: 0 };
  lastError: string | null = null;

  private constructor(model: OnnxModel, options: SileroVadOptions) {
    this.#model = model;
    this.#takesSampleRate = model.inputNames.includes('sr');
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
    // One thread: the media workers already take a core each, and batches are small.
    const model = OnnxModel.load(readModel(o.modelPath, o.modelSha256), {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const missing = ['input', 'state'].filter((name) => !model.inputNames.includes(name));
    if (missing.length > 0 || !model.outputNames.includes('output') || !model.outputNames.includes('stateN')) {
      model.dispose();
      throw new Error(`${o.modelPath} is not a Silero v5 model (inputs ${model.inputNames.join(', ')})`);
    }
    return new SileroVad(model, o);
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
    if (this.#waiting) {
      // Nothing is left to run: no need to wait out batchWindowMs.
      clearTimeout(this.#waiting);
      this.#waiting = null;
      this.#scheduled = false;
      this.#settled();
    }
    await this.idle();
    this.#model.dispose();
  }

  toJSON() {
    return { ...this.#stats, streams: this.#streams.size, threshold: this.options.threshold, lastError: this.lastError };
  }

  /** A completed window of `stream` (called by SileroStream). */
  submit(stream: SileroStream, window: Float32Array): void {
    if (this.#closed || !this.#streams.has(stream)) return;
    stream.queue.push(window);
    if (stream.queue.length > this.options.maxQueuedWindows) {
      stream.queue.shift();
      this.#stats.droppedWindows++;
    }
    this.#ready.add(stream);
    this.#schedule();
  }

  // The run starts after the current task, so windows that complete in the same poll of the worker
  // (one per session whose frame was due) go into one batch; with `batchWindowMs`, once the first
  // window waiting has waited that long, so the windows of the polls in between join it. Windows
  // left over by a run (maxBatch, or a stream's next window) wait no further.
  #schedule(leftOver = false): void {
    if (this.#ready.size === 0) return;
    const full = this.#ready.size >= this.options.maxBatch;
    if (this.#waiting && full) {
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
      this.#run();
    };
    this.#firstReadyAt ??= performance.now();
    const wait = leftOver || full ? 0 : this.#firstReadyAt + this.options.batchWindowMs - performance.now();
    if (wait >= 1) this.#waiting = setTimeout(start, wait);
    else setImmediate(start);
  }

  // Synchronous: onnxruntime runs on this thread either way (onnx-model.ts).
  #run(): void {
    const batch: SileroStream[] = [];
    for (const stream of this.#ready) {
      if (batch.length >= this.options.maxBatch) break;
      this.#ready.delete(stream);
      batch.push(stream);
    }
    if (batch.length === 0 || this.#closed) return this.#settled();
    const size = batch.length;
    const input = new Float32Array(size * INPUT);
    const state = new Float32Array(size * STATE);
    batch.forEach((stream, b) => {
      input.set(stream.queue[0]!, b * INPUT);
      state.set(stream.state.subarray(0, 128), b * 128);
      state.set(stream.state.subarray(128), (size + b) * 128);
    });
    const T = this.#model.Tensor;
    const feeds: Record<string, Ort.Tensor> = {
      input: new T('float32', input, [size, INPUT]),
      state: new T('float32', state, [2, size, 128]),
    };
    if (this.#takesSampleRate) feeds.sr = new T('int64', BigInt64Array.of(BigInt(SAMPLE_RATE)), []);
    const started = performance.now();
    try {
      const out = this.#model.run(feeds);
      const probabilities = out.output!.data as Float32Array;
      const next = out.stateN!.data as Float32Array;
      batch.forEach((stream, b) => {
        stream.state.set(next.subarray(b * 128, (b + 1) * 128), 0);
        stream.state.set(next.subarray((size + b) * 128, (size + b + 1) * 128), 128);
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
      stream.queue.shift();
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

function readModel(path: string, sha256: string | null): Uint8Array {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new Error(`Silero model not readable at ${path}: ${(error as Error).message}`);
  }
  if (sha256 !== null) {
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256) throw new Error(`Silero model at ${path} has sha256 ${actual}, expected ${sha256}`);
  }
  return bytes;
}
