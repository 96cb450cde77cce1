// Graceful degradation of the audio we send: reads the client's RTCP receiver reports and picks the
// Opus bitrate and in-band FEC level. Pure: time comes in with each report.

export interface OutboundQualityOptions {
  /** Bitrate ladder, best first (bits/s). */
  bitrates: number[];
  /** Smoothed loss above which we step down one rung. */
  stepDownLoss: number;
  /** Smoothed loss below which, held for `stepUpAfterMs`, we step back up. */
  stepUpLoss: number;
  stepUpAfterMs: number;
  /** Minimum time between two changes. */
  holdMs: number;
  /** Loss above which in-band FEC is switched on. */
  fecOnLoss: number;
  /** Weight of a new report in the loss average. */
  smoothing: number;
}

export const DEFAULT_OUTBOUND_QUALITY_OPTIONS: OutboundQualityOptions = {
  bitrates: [32000, 24000, 16000, 12000, 8000],
  stepDownLoss: 0.05,
  stepUpLoss: 0.01,
  stepUpAfterMs: 8000,
  holdMs: 2000,
  fecOnLoss: 0.01,
  smoothing: 0.4,
};

export interface OutboundSettings {
  bitrate: number;
  fec: boolean;
  /** Expected loss (percent) handed to the encoder: it sizes the FEC data by it. */
  fecLossPercent: number;
}

export interface QualitySnapshot extends OutboundSettings {
  lossPercent: number;
  jitterMs: number;
  rttMs: number | null;
}

export class OutboundQuality {
  readonly options: OutboundQualityOptions;
  #rung: number;
  #loss = 0;
  #jitterMs = 0;
  #rttMs: number | null = null;
  #lastChangeAt = -Infinity;
  #goodSince: number | null = null;
  #settings: OutboundSettings;

  constructor(options: Partial<OutboundQualityOptions> = {}, startRung = 1) {
    this.options = { ...DEFAULT_OUTBOUND_QUALITY_OPTIONS, ...options };
    this.#rung = Math.min(startRung, this.options.bitrates.length - 1);
    this.#settings = { bitrate: this.options.bitrates[this.#rung]!, fec: true, fecLossPercent: 5 };
  }

  get settings(): OutboundSettings {
    return this.#settings;
  }

  snapshot(): QualitySnapshot {
    return { ...this.#settings, lossPercent: Math.round(this.#loss * 1000) / 10, jitterMs: Math.round(this.#jitterMs * 10) / 10, rttMs: this.#rttMs === null ? null : Math.round(this.#rttMs) };
  }

  /** Feeds one receiver report; returns the new settings when they change, else null. */
  onReport(report: { fractionLost: number; jitterMs: number; rttMs: number | null }, nowMs: number): OutboundSettings | null {
    const o = this.options;
    this.#loss += o.smoothing * (report.fractionLost - this.#loss);
    this.#jitterMs = report.jitterMs;
    this.#rttMs = report.rttMs;
    const loss = this.#loss;

    let rung = this.#rung;
    const canChange = nowMs - this.#lastChangeAt >= o.holdMs;
    if (loss > o.stepDownLoss) {
      this.#goodSince = null;
      if (canChange && rung < o.bitrates.length - 1) rung++;
    } else if (loss < o.stepUpLoss) {
      this.#goodSince ??= nowMs;
      if (canChange && rung > 0 && nowMs - this.#goodSince >= o.stepUpAfterMs) {
        rung--;
        this.#goodSince = nowMs;
      }
    } else {
      this.#goodSince = null;
    }

    const fec = loss > o.fecOnLoss;
    // libopus spends FEC bits in proportion to the expected loss; keep a floor so one bad report
    // does not strip the protection, and round to limit encoder reconfiguration.
    const fecLossPercent = fec ? Math.min(30, Math.max(5, Math.ceil((loss * 100) / 5) * 5)) : 0;
    const next: OutboundSettings = { bitrate: o.bitrates[rung]!, fec, fecLossPercent };
    const current = this.#settings;
    if (next.bitrate === current.bitrate && next.fec === current.fec && next.fecLossPercent === current.fecLossPercent) return null;
    if (rung !== this.#rung) this.#lastChangeAt = nowMs;
    this.#rung = rung;
    this.#settings = next;
    return next;
  }
}
