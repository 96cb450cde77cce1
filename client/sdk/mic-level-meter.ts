// Samples the local microphone level for a UI meter; never touches the audio that is sent.
const FLOOR_DB = -60;

export class MicLevelMeter {
  readonly #context: AudioContext;
  readonly #timer: number;

  constructor(stream: MediaStream, intervalMs: number, onLevel: (level: number) => void) {
    this.#context = new AudioContext();
    void this.#context.resume().catch(() => undefined);
    const analyser = this.#context.createAnalyser();
    analyser.fftSize = 1024;
    this.#context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.#timer = window.setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      // Map -60..0 dBFS to 0..1: perceptually closer to loudness than linear RMS.
      const db = rms > 0 ? 20 * Math.log10(rms) : FLOOR_DB;
      onLevel(Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB)));
    }, intervalMs);
  }

  close(): void {
    window.clearInterval(this.#timer);
    void this.#context.close().catch(() => undefined);
  }
}
