// The two ways a media worker can run Silero's batched forward pass (SileroVad picks one):
//
// - `native` (the default): media/vad/native/silero_vad.c, the 16 kHz graph's arithmetic written
//   out in C and called through koffi, with the weights of silero_vad_v5_16k.weights. A run is the
//   arithmetic and nothing else: no per-node dispatch, no allocation, every weight row read once
//   per run for the whole batch; float16 copies of the weights where the CPU converts them in
//   hardware (NativeWeights). Built by scripts/build-native.sh (run by scripts/setup.sh).
// - `onnx`: any Silero v5 ONNX model through onnxruntime-node (onnx-model.ts): the reference the
//   native kernel is tested against, and the way to run a model other than the one shipped.
//
// Both take a batch as [size, 576] samples (context + window) and [2, size, 128] state (h, c) and
// give [size] probabilities and the next state in the same layout.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import type * as Ort from 'onnxruntime-node';
import { OnnxModel } from './onnx-model.ts';
import type { NativeWeights } from './native-weights.ts';

export const WINDOW_SAMPLES = 512;
export const CONTEXT_SAMPLES = 64; // v5 inputs are the window plus this much of the audio before it
export const INPUT_SAMPLES = WINDOW_SAMPLES + CONTEXT_SAMPLES;
export const HIDDEN = 128;
const SAMPLE_RATE = 16000;

/** The native kernel's library, as scripts/build-native.sh writes it. */
export const NATIVE_LIBRARY = fileURLToPath(new URL('./native/build/libsilero_vad.so', import.meta.url));
/** The 16 kHz graph's weights in the native kernel's layout (scripts/silero-16k.py; README.md here). */
export const SILERO_V5_16K_WEIGHTS = fileURLToPath(new URL('./silero_vad_v5_16k.weights', import.meta.url));
export const SILERO_V5_16K_WEIGHTS_SHA256 = 'c3b2f4797d7a157a7ba3bb9f12cb19f2daba48596e2b23ef9a400c6e6e34563e';
const WEIGHTS_MAGIC = 'SILERO16';
const WEIGHTS_VERSION = 3;

export type SileroEngineName = 'native' | 'onnx';

export interface SileroEngine {
  readonly name: SileroEngineName;
  /** The native kernel: the precision of the weights it reads. */
  readonly weights?: 'f16' | 'f32';
  /** Most windows in one run. */
  readonly maxBatch: number;
  /** One batched forward pass; the results are valid until the next run. */
  run(input: Float32Array, state: Float32Array, size: number): { probabilities: Float32Array; stateN: Float32Array };
  dispose(): void;
}

function readChecked(path: string, sha256: string | null, what: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new Error(`${what} not readable at ${path}: ${(error as Error).message}`);
  }
  if (sha256 !== null) {
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256) throw new Error(`${what} at ${path} has sha256 ${actual}, expected ${sha256}`);
  }
  return bytes;
}

/** Silero through onnxruntime, one thread. The original two-rate model is fed `sr`. */
export function onnxEngine(modelPath: string, modelSha256: string | null): SileroEngine {
  const model = OnnxModel.load(readChecked(modelPath, modelSha256, 'Silero model'), {
    intraOpNumThreads: 1, // the media workers already take a core each, and batches are small
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const missing = ['input', 'state'].filter((name) => !model.inputNames.includes(name));
  if (missing.length > 0 || !model.outputNames.includes('output') || !model.outputNames.includes('stateN')) {
    model.dispose();
    throw new Error(`${modelPath} is not a Silero v5 model (inputs ${model.inputNames.join(', ')})`);
  }
  const T = model.Tensor;
  const sampleRate = model.inputNames.includes('sr') ? new T('int64', BigInt64Array.of(BigInt(SAMPLE_RATE)), []) : null;
  return {
    name: 'onnx',
    maxBatch: Number.MAX_SAFE_INTEGER,
    run(input, state, size) {
      const feeds: Record<string, Ort.Tensor> = {
        input: new T('float32', input, [size, INPUT_SAMPLES]),
        state: new T('float32', state, [2, size, HIDDEN]),
      };
      if (sampleRate) feeds.sr = sampleRate;
      const out = model.run(feeds);
      return { probabilities: out.output!.data as Float32Array, stateN: out.stateN!.data as Float32Array };
    },
    dispose: () => model.dispose(),
  };
}

type KernelRun<W> = (weights: W, input: Float32Array, state: Float32Array, batch: number, probability: Float32Array, stateOut: Float32Array, scratch: Float32Array) => number;

interface NativeKernel {
  run: KernelRun<Float32Array>;
  runHalf: KernelRun<Uint16Array>;
  packHalf: (weights: Float32Array, half: Uint16Array) => void;
  halfNative: () => number;
  scratchFloats: (batch: number) => number;
  weightCount: () => number;
  maxBatch: () => number;
}
let kernel: NativeKernel | undefined;

function loadKernel(): NativeKernel {
  if (kernel) return kernel;
  if (!existsSync(NATIVE_LIBRARY)) {
    throw new Error(`Silero's native kernel is not built (${NATIVE_LIBRARY} missing): run scripts/setup.sh (or scripts/build-native.sh), or set VAD_ENGINE=onnx`);
  }
  const lib = koffi.load(NATIVE_LIBRARY);
  kernel = {
    run: lib.func('int32_t silero_run(const float *weights, const float *input, const float *state, int32_t batch, float *probability, float *state_out, float *scratch)'),
    runHalf: lib.func('int32_t silero_run_half(const uint16_t *weights, const float *input, const float *state, int32_t batch, float *probability, float *state_out, float *scratch)'),
    packHalf: lib.func('void silero_pack_half(const float *weights, uint16_t *half)'),
    halfNative: lib.func('int32_t silero_half_native(void)'),
    scratchFloats: lib.func('int32_t silero_scratch_floats(int32_t batch)'),
    weightCount: lib.func('int32_t silero_weight_count(void)'),
    maxBatch: lib.func('int32_t silero_max_batch(void)'),
  };
  return kernel;
}


/** Silero through the native kernel, with the weights file at `weightsPath` (checked against `weightsSha256`). */
export function nativeEngine(weightsPath: string, weightsSha256: string | null, precision: NativeWeights = 'auto'): SileroEngine {
  const k = loadKernel();
  const bytes = readChecked(weightsPath, weightsSha256, 'Silero weights');
  const header = bytes.subarray(0, 16);
  const count = header.length === 16 ? header.readUInt32LE(12) : -1;
  if (header.toString('latin1', 0, 8) !== WEIGHTS_MAGIC || header.readUInt32LE(8) !== WEIGHTS_VERSION || count !== k.weightCount() || bytes.length !== 16 + count * 4) {
    throw new Error(`${weightsPath} is not a Silero weights file for this kernel (format ${WEIGHTS_MAGIC} v${WEIGHTS_VERSION}, ${k.weightCount()} floats)`);
  }
  // Copied into an aligned array of its own (the file's bytes may start at any offset of a pooled buffer).
  const weights = new Float32Array(count);
  new Uint8Array(weights.buffer).set(bytes.subarray(16));
  const hardwareHalf = k.halfNative() === 1;
  if (precision === 'f16' && !hardwareHalf) {
    throw new Error('float16 Silero weights need a CPU that converts float16 in hardware (x86-64: F16C, AVX2 and FMA); this one does not: use f32 or auto');
  }
  const half = precision === 'f16' || (precision === 'auto' && hardwareHalf) ? new Uint16Array(count) : null;
  if (half) k.packHalf(weights, half);
  const single = half ? null : weights; // the float32 copy is not kept once packed
  const maxBatch = k.maxBatch();
  let capacity = 0;
  let scratch = new Float32Array(0);
  let probabilities = new Float32Array(0);
  let stateN = new Float32Array(0);
  return {
    name: 'native',
    weights: half ? 'f16' : 'f32',
    maxBatch,
    run(input, state, size) {
      if (size > capacity) {
        capacity = size;
        scratch = new Float32Array(k.scratchFloats(size));
        probabilities = new Float32Array(size);
        stateN = new Float32Array(2 * size * HIDDEN);
      }
      const p = probabilities.subarray(0, size);
      const s = stateN.subarray(0, 2 * size * HIDDEN);
      const rc = half ? k.runHalf(half, input, state, size, p, s, scratch) : k.run(single!, input, state, size, p, s, scratch);
      if (rc !== 0) throw new Error(`silero_run failed (${rc}) for a batch of ${size}`);
      return { probabilities: p, stateN: s };
    },
    dispose: () => {},
  };
}
