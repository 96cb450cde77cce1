/**
 * Streaming mono resampler for speech: agent audio (TTS or speech-to-speech output at 16, 22.05 or
 * 24 kHz -> the 16 kHz outbound path) and the user's 16 kHz audio raised to the 24 kHz of the
 * OpenAI Realtime API. Linear interpolation, preceded when downsampling by a short moving-average
 * low-pass so the band above the new Nyquist does not fold back as hiss. Enough for speech that
 * is about to be Opus-coded or recognised; not a hi-fi converter. Keeps its phase across chunks,
 * so chunk boundaries do not click. (RNNoise's 16 <-> 48 kHz round trip uses speex instead, see
 * media/denoise/rnnoise-denoiser.ts: there the quality of the filter matters.)
 */
export class PcmResampler {
  readonly fromRate: number;
  readonly toRate: number;
  readonly #step: number;
  readonly #taps: number;
  #position = 0; // read position in the next chunk, in input samples
  #previous = 0; // last (filtered) sample of the previous chunk
  readonly #raw: number[] = []; // unfiltered tail for the moving average

  constructor(fromRate: number, toRate: number) {
    if (!(fromRate > 0 && toRate > 0)) throw new RangeError('sample rates must be positive');
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.#step = fromRate / toRate;
    this.#taps = fromRate > toRate ? Math.max(1, Math.round(this.#step)) : 1;
  }

  push(input: Int16Array): Int16Array {
    if (this.fromRate === this.toRate) return input.slice();
    const x = this.#lowPass(input);
    const last = x.length - 1;
    // Positions are in input samples; -1 is the previous chunk's last sample (`#previous`).
    let pos = this.#position;
    const count = pos <= last ? Math.floor((last - pos) / this.#step + 1e-9) + 1 : 0;
    const out = new Int16Array(count);
    for (let n = 0; n < count; n++) {
      const i = Math.floor(pos);
      const frac = pos - i;
      const a = i < 0 ? this.#previous : x[i];
      const b = i + 1 <= last ? x[i + 1] : a;
      out[n] = Math.max(-32768, Math.min(32767, Math.round(a + (b - a) * frac)));
      pos += this.#step;
    }
    this.#position = pos - x.length;
    if (x.length > 0) this.#previous = x[last];
    return out;
  }

  #lowPass(input: Int16Array): Float64Array {
    const taps = this.#taps;
    const out = new Float64Array(input.length);
    if (taps === 1) {
      out.set(input);
      return out;
    }
    const raw = this.#raw;
    let sum = 0;
    for (const v of raw) sum += v;
    for (let i = 0; i < input.length; i++) {
      raw.push(input[i]);
      sum += input[i];
      if (raw.length > taps) sum -= raw.shift() as number;
      out[i] = sum / raw.length;
    }
    return out;
  }
}
