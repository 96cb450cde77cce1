// One ONNX model run synchronously on the calling thread, through onnxruntime-node's native binding.
//
// Why not `InferenceSession.run()`. The public API wraps each run in a Promise and a setImmediate,
// checks and copies its feeds and results, and allocates on the way: ~35-70 us per run measured
// here, where a Silero run is ~250-400 us. Silero runs ~10 times a second per talking session, so
// that is ~5-15% of the voice pipeline's CPU for nothing: the run is synchronous on this thread
// anyway (the wrapper only defers it). Called directly, a run is also timed exactly
// (`SileroVad` reports the time, `voice.vad.run_time`).
//
// The binding (`dist/binding.js`, `InferenceSession.loadModel/run/dispose`) is not onnxruntime-
// node's public API, so package.json pins the version exactly (1.30.0) and `load()` checks the
// shape it relies on, failing at start with a message that says so. The feeds and results are the
// package's own `Tensor`s, as in the public API.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Ort from 'onnxruntime-node';

interface NativeSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: Ort.InferenceSession.SessionOptions): void;
  readonly inputMetadata: ReadonlyArray<{ name: string }>;
  readonly outputMetadata: ReadonlyArray<{ name: string }>;
  run(feeds: Record<string, Ort.Tensor>, fetches: Record<string, null>, options: object): Record<string, Ort.Tensor>;
  dispose(): void;
}

interface Runtime {
  Tensor: typeof Ort.Tensor;
  NativeSession: new () => NativeSession;
}

const PINNED_VERSION = '1.30.0';
let runtime: Runtime | undefined;

// Loaded on first use: the addon maps onnxruntime (~20 MB of code) into the process.
function loadRuntime(): Runtime {
  if (runtime) return runtime;
  const require = createRequire(import.meta.url);
  const main = require.resolve('onnxruntime-node');
  const ort = require(main) as typeof Ort;
  const { version } = require(join(dirname(main), '..', 'package.json')) as { version: string };
  const internals = require(join(dirname(main), 'binding.js')) as {
    binding?: { InferenceSession?: new () => NativeSession };
    initOrt?: () => void;
  };
  const NativeSession = internals.binding?.InferenceSession;
  if (version !== PINNED_VERSION || typeof NativeSession !== 'function' || typeof internals.initOrt !== 'function') {
    throw new Error(`onnxruntime-node ${version} installed; media/vad/onnx-model.ts uses the native binding of ${PINNED_VERSION} (pinned in package.json)`);
  }
  internals.initOrt();
  runtime = { Tensor: ort.Tensor, NativeSession };
  return runtime;
}

export class OnnxModel {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly Tensor: typeof Ort.Tensor;
  readonly #session: NativeSession;
  readonly #fetches: Record<string, null>;
  #disposed = false;

  private constructor(session: NativeSession, Tensor: typeof Ort.Tensor) {
    this.#session = session;
    this.Tensor = Tensor;
    this.inputNames = session.inputMetadata.map((m) => m.name);
    this.outputNames = session.outputMetadata.map((m) => m.name);
    this.#fetches = Object.fromEntries(this.outputNames.map((name) => [name, null]));
  }

  /** Parses and optimises `model` (the ONNX bytes); throws what onnxruntime says when it cannot. */
  static load(model: Uint8Array, options: Ort.InferenceSession.SessionOptions): OnnxModel {
    const { Tensor, NativeSession } = loadRuntime();
    const session = new NativeSession();
    session.loadModel(model.buffer, model.byteOffset, model.byteLength, options);
    return new OnnxModel(session, Tensor);
  }

  /** Runs the model on this thread; returns every output. */
  run(feeds: Record<string, Ort.Tensor>): Record<string, Ort.Tensor> {
    if (this.#disposed) throw new Error('OnnxModel is disposed');
    return this.#session.run(feeds, this.#fetches, {});
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#session.dispose();
  }
}
