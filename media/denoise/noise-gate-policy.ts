// Decides whether a session's denoiser is engaged. RNNoise costs 0.3-0.5 ms of CPU per 20 ms
// frame, more than the rest of the receive path together, so in `auto` it runs only where the
// room is measurably noisy: the noise floor must stay above `engageAboveDb` for `engageAfterMs`,
// and below `releaseBelowDb` for `releaseAfterMs` to turn it off again. The gap between the two
// levels and the two hold times keep it from flapping on a floor that hovers around one value.
// Pure: time is the duration of the frames the caller reports.

export type DenoiseMode = 'off' | 'on' | 'auto';

export interface NoiseGatePolicyOptions {
  mode: DenoiseMode;
  /** dBFS. A floor above this, for long enough, engages the denoiser. */
  engageAboveDb: number;
  engageAfterMs: number;
  /** dBFS, below `engageAboveDb`. A floor below this, for long enough, releases it. */
  releaseBelowDb: number;
  releaseAfterMs: number;
}

export const DEFAULT_NOISE_GATE_POLICY_OPTIONS: NoiseGatePolicyOptions = {
  mode: 'auto',
  engageAboveDb: -50,
  engageAfterMs: 2000,
  releaseBelowDb: -56,
  releaseAfterMs: 5000,
};

export class NoiseGatePolicy {
  readonly options: NoiseGatePolicyOptions;
  #engaged: boolean;
  #heldMs = 0; // how long the floor has argued for the other state
  #switches = 0;

  constructor(options: Partial<NoiseGatePolicyOptions> = {}) {
    this.options = { ...DEFAULT_NOISE_GATE_POLICY_OPTIONS, ...options };
    const o = this.options;
    if (!(o.releaseBelowDb <= o.engageAboveDb)) throw new RangeError('releaseBelowDb must not exceed engageAboveDb');
    if (!(o.engageAfterMs >= 0 && o.releaseAfterMs >= 0)) throw new RangeError('hold times must be >= 0');
    this.#engaged = o.mode === 'on';
  }

  get engaged(): boolean {
    return this.#engaged;
  }

  /** Times the auto mode switched, either way. */
  get switches(): number {
    return this.#switches;
  }

  /** One frame's worth of noise-floor measurement. Returns whether denoise is engaged now. */
  update(noiseFloorDb: number, durationMs: number): boolean {
    const o = this.options;
    if (o.mode !== 'auto') return this.#engaged;
    const arguesForSwitch = this.#engaged ? noiseFloorDb < o.releaseBelowDb : noiseFloorDb > o.engageAboveDb;
    if (!arguesForSwitch) {
      this.#heldMs = 0;
      return this.#engaged;
    }
    this.#heldMs += durationMs;
    if (this.#heldMs >= (this.#engaged ? o.releaseAfterMs : o.engageAfterMs)) {
      this.#engaged = !this.#engaged;
      this.#heldMs = 0;
      this.#switches++;
    }
    return this.#engaged;
  }

  toJSON() {
    return { mode: this.options.mode, engaged: this.#engaged, switches: this.#switches };
  }
}
