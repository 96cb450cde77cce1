// RNNoise noise suppression for 16 kHz session audio (@echogarden/rnnoise-wasm).
//
// RNNoise only works on 48 kHz, 480-sample frames, so each 20 ms frame goes 16k -> 48k (speex,
// @echogarden/speex-resampler-wasm SIMD build), through RNNoise twice, and back to 16k. Measured
// here: the speex round trip costs ~12-23 us per 20 ms frame (quality 0-3), RNNoise 130 us (idle
// machine) to 250 us (loaded) per 10 ms frame. Decoding Opus at 48 kHz instead would save only
// the upsampling (~10 us) while costing ~38 us more on *every* frame, denoised or not.
//
// One WASM instance of each library per thread (an instance reserves a 16 MB heap); a session's
// state inside it is ~22 KB (RNNoise 18.5 KB + two resamplers), allocated on first use and freed
// by close().
import { NoiseGatePolicy, type NoiseGatePolicyOptions } from './noise-gate-policy.ts';

const SAMPLE_RATE = 16000;
const UPSAMPLE = 3; // 16 kHz -> 48 kHz
const RNNOISE_FRAME = 480;
const MAX_FRAME = 960; // 60 ms at 16 kHz: larger frames are refused

/** The slice of an Emscripten module that we use; the packages ship no type declarations. */
interface WasmHeap {
  HEAPF32: Float32Array;
  HEAPU32: Uint32Array;
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(pointer: number): void;
}
interface RnnoiseModule extends WasmHeap {
  _rnnoise_create(model: number): number;
  _rnnoise_destroy(state: number): void;
  _rnnoise_process_frame(state: number, out: number, input: number): number;
}
interface SpeexModule extends WasmHeap {
  _speex_resampler_init(channels: number, inRate: number, outRate: number, quality: number, error: number): number;
  _speex_resampler_destroy(state: number): void;
  _speex_resampler_process_float(state: number, channel: number, input: number, inLength: number, output: number, outLength: number): number;
}

/** The thread's WASM instances and the scratch buffers every denoiser of the thread shares. */
export class RnnoiseRuntime {
  readonly rnnoise: RnnoiseModule;
  readonly speex: SpeexModule;
  // Processing is synchronous, so one set of scratch buffers serves every session of the thread.
  readonly speexIn: number;
  readonly speexMid: number;
  readonly speexOut: number;
  readonly speexLengths: number; // two uint32: in length, out length
  readonly rnnoiseIn: number;
  readonly rnnoiseOut: number;
  liveDenoisers = 0;

  constructor(rnnoise: RnnoiseModule, speex: SpeexModule) {
    this.rnnoise = rnnoise;
    this.speex = speex;
    this.speexIn = speex._malloc(MAX_FRAME * 4);
    this.speexMid = speex._malloc(MAX_FRAME * UPSAMPLE * 4);
    this.speexOut = speex._malloc(MAX_FRAME * 4);
    this.speexLengths = speex._malloc(8);
    this.rnnoiseIn = rnnoise._malloc(MAX_FRAME * UPSAMPLE * 4);
    this.rnnoiseOut = rnnoise._malloc(MAX_FRAME * UPSAMPLE * 4);
  }

  /**
   * Leak check: where a fresh 1 MB block lands in each heap. Freed states go back to the
   * allocator and the block lands where it did before; states left allocated push it higher,
   * long before the heap itself has to grow.
   */
  heapWatermark(): { rnnoise: number; speex: number } {
    const probe = (heap: WasmHeap) => {
      const pointer = heap._malloc(1 << 20);
      heap._free(pointer);
      return pointer;
    };
    return { rnnoise: probe(this.rnnoise), speex: probe(this.speex) };
  }

  toJSON() {
    return { liveDenoisers: this.liveDenoisers, rnnoiseHeapBytes: this.rnnoise.HEAPU8.length, speexHeapBytes: this.speex.HEAPU8.length };
  }
}

let runtime: Promise<RnnoiseRuntime> | undefined;

/** Loads the WASM modules once per thread (module state is per isolate). */
export function loadRnnoiseRuntime(): Promise<RnnoiseRuntime> {
  runtime ??= (async () => {
    // Specifiers through variables: the packages have no .d.ts, and the modules are factories.
    const rnnoisePackage: string = '@echogarden/rnnoise-wasm';
    const speexPackage: string = '@echogarden/speex-resampler-wasm/simd';
    const [{ default: createRnnoise }, { default: createSpeex }] = await Promise.all([import(rnnoisePackage), import(speexPackage)]);
    return new RnnoiseRuntime((await createRnnoise()) as RnnoiseModule, (await createSpeex()) as SpeexModule);
  })();
  return runtime;
}

/** What VoiceActivity needs from a denoiser. */
export interface FrameDenoiser {
  /** Whether process() denoises right now (else it returns its input). */
  readonly engaged: boolean;
  /** Every frame, gated or not: the noise floor steers the `auto` mode. */
  observe(noiseFloorDb: number, durationMs: number): void;
  /** A frame that goes on to Silero/STT: denoised when engaged, else the input itself. */
  process(samples: Int16Array): Int16Array;
}

export interface RnnoiseDenoiserOptions {
  /** off | on | auto, and the auto thresholds. */
  policy: Partial<NoiseGatePolicyOptions>;
  /** Speex quality 0-10 for the 16k <-> 48k round trip; 3 keeps speech intact at ~23 us/frame. */
  resampleQuality: number;
}

export const DEFAULT_RNNOISE_DENOISER_OPTIONS: RnnoiseDenoiserOptions = {
  policy: {},
  resampleQuality: 3,
};

export class RnnoiseDenoiser implements FrameDenoiser {
  readonly options: RnnoiseDenoiserOptions;
  readonly policy: NoiseGatePolicy;
  readonly #rt: RnnoiseRuntime;
  #state = 0;
  #upsampler = 0;
  #downsampler = 0;
  #dither = 0x2545f491;
  #closed = false;
  #denoisedFrames = 0;
  #passedFrames = 0;

  constructor(rt: RnnoiseRuntime, options: Partial<RnnoiseDenoiserOptions> = {}) {
    this.options = { ...DEFAULT_RNNOISE_DENOISER_OPTIONS, ...options };
    const q = this.options.resampleQuality;
    if (!(Number.isInteger(q) && q >= 0 && q <= 10)) throw new RangeError('resampleQuality must be an integer in [0, 10]');
    this.policy = new NoiseGatePolicy(this.options.policy);
    this.#rt = rt;
    rt.liveDenoisers++;
  }

  static async create(options: Partial<RnnoiseDenoiserOptions> = {}): Promise<RnnoiseDenoiser> {
    return new RnnoiseDenoiser(await loadRnnoiseRuntime(), options);
  }

  get engaged(): boolean {
    return this.policy.engaged;
  }

  observe(noiseFloorDb: number, durationMs: number): void {
    this.policy.update(noiseFloorDb, durationMs);
  }

  process(samples: Int16Array): Int16Array {
    if (this.#closed) throw new Error('RnnoiseDenoiser is closed');
    if (!this.policy.engaged) {
      this.#passedFrames++;
      return samples;
    }
    this.#denoisedFrames++;
    return this.denoise(samples);
  }

  /** Denoises regardless of the policy. `samples`: 16 kHz, a multiple of 10 ms, at most 60 ms. */
  denoise(samples: Int16Array): Int16Array {
    if (this.#closed) throw new Error('RnnoiseDenoiser is closed');
    const n = samples.length;
    if (n % (SAMPLE_RATE / 100) !== 0 || n === 0 || n > MAX_FRAME) throw new RangeError(`frame of ${n} samples: need a multiple of 160, at most ${MAX_FRAME}`);
    if (!this.#state) this.#allocate();
    const { rnnoise, speex } = this.#rt;
    const rt = this.#rt;
    // RNNoise takes floats on the 16-bit scale. Half an LSB of dither keeps its filters out of
    // subnormal floats after loud input turns to digital silence: WASM has no flush-to-zero, and
    // subnormals made it ~10x slower per frame here.
    let seed = this.#dither;
    let f32 = speex.HEAPF32;
    const inBase = rt.speexIn >> 2;
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      f32[inBase + i] = samples[i]! + seed / 4294967296 - 0.5;
    }
    this.#dither = seed;
    this.#resample(this.#upsampler, rt.speexIn, n, rt.speexMid, n * UPSAMPLE);
    const wide = n * UPSAMPLE;
    rnnoise.HEAPF32.set(speex.HEAPF32.subarray(rt.speexMid >> 2, (rt.speexMid >> 2) + wide), rt.rnnoiseIn >> 2);
    for (let offset = 0; offset < wide; offset += RNNOISE_FRAME) {
      rnnoise._rnnoise_process_frame(this.#state, rt.rnnoiseOut + offset * 4, rt.rnnoiseIn + offset * 4);
    }
    speex.HEAPF32.set(rnnoise.HEAPF32.subarray(rt.rnnoiseOut >> 2, (rt.rnnoiseOut >> 2) + wide), rt.speexMid >> 2);
    this.#resample(this.#downsampler, rt.speexMid, wide, rt.speexOut, n);
    f32 = speex.HEAPF32;
    const outBase = rt.speexOut >> 2;
    const out = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      const v = Math.round(f32[outBase + i]!);
      out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    return out;
  }

  /** Frees the WASM state. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#rt.liveDenoisers--;
    if (!this.#state) return;
    this.#rt.rnnoise._rnnoise_destroy(this.#state);
    this.#rt.speex._speex_resampler_destroy(this.#upsampler);
    this.#rt.speex._speex_resampler_destroy(this.#downsampler);
    this.#state = this.#upsampler = this.#downsampler = 0;
  }

  toJSON() {
    return { ...this.policy.toJSON(), denoisedFrames: this.#denoisedFrames, passedFrames: this.#passedFrames, allocated: this.#state !== 0 };
  }

  // Allocated on first use: in `auto`, most sessions never engage and never pay for the state.
  #allocate(): void {
    const { rnnoise, speex, speexLengths } = this.#rt;
    const q = this.options.resampleQuality;
    this.#state = rnnoise._rnnoise_create(0);
    this.#upsampler = speex._speex_resampler_init(1, SAMPLE_RATE, SAMPLE_RATE * UPSAMPLE, q, speexLengths);
    this.#downsampler = speex._speex_resampler_init(1, SAMPLE_RATE * UPSAMPLE, SAMPLE_RATE, q, speexLengths);
    if (!this.#state || !this.#upsampler || !this.#downsampler) throw new Error('RNNoise/speex state allocation failed');
  }

  #resample(state: number, input: number, inLength: number, output: number, expected: number): void {
    const { speex, speexLengths } = this.#rt;
    speex.HEAPU32[speexLengths >> 2] = inLength;
    speex.HEAPU32[(speexLengths >> 2) + 1] = expected;
    speex._speex_resampler_process_float(state, 0, input, speexLengths, output, speexLengths + 4);
    // An integer ratio gives exactly 3x (or 1/3) per call: measured for 10-60 ms frames.
    const produced = speex.HEAPU32[(speexLengths >> 2) + 1];
    if (produced !== expected) throw new Error(`speex resampler produced ${produced} samples, expected ${expected}`);
  }
}
