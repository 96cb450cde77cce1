// Who is speaking in a room, from the audio level of each participant's decoded 20 ms frames.
// Levels are smoothed (so a syllable's dips do not count as silence), a newcomer must be louder
// than the current speaker by a margin and the speaker holds the floor for a minimum time (so the
// event does not flap between two people talking at once), and after a while with nobody above
// the speech level there is no active speaker. Pure: time comes in as an argument.

export interface ActiveSpeakerOptions {
  /** Smoothed level (dBFS) above which a participant counts as speaking. */
  speechLevelDb: number;
  /** Time constant of the level smoothing. */
  smoothingMs: number;
  /** Duration of the frame each level is measured on. */
  frameMs: number;
  /** How much louder (dB) a challenger must be to take the floor from a speaker who still talks. */
  switchMarginDb: number;
  /** Shortest time between two changes of speaker. */
  minHoldMs: number;
  /** Nobody above the speech level for this long: no active speaker. */
  releaseMs: number;
}

export const DEFAULT_ACTIVE_SPEAKER_OPTIONS: ActiveSpeakerOptions = {
  speechLevelDb: -50,
  smoothingMs: 150,
  frameMs: 20,
  switchMarginDb: 6,
  minHoldMs: 500,
  releaseMs: 1000,
};

const FLOOR_DB = -100;

interface Level {
  db: number;
  /** Last time this participant's smoothed level was above the speech level. */
  speakingAtMs: number;
}

/** RMS level of 16-bit PCM in dBFS (floored at -100). */
export function levelDb(samples: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i]! * samples[i]!;
  const rms = Math.sqrt(sum / Math.max(1, samples.length)) / 32768;
  return rms > 0 ? Math.max(FLOOR_DB, 20 * Math.log10(rms)) : FLOOR_DB;
}

export class ActiveSpeakerDetector {
  readonly options: ActiveSpeakerOptions;
  readonly #levels = new Map<string, Level>();
  #active: string | null = null;
  #changedAtMs = -Infinity;

  constructor(options: Partial<ActiveSpeakerOptions> = {}) {
    this.options = { ...DEFAULT_ACTIVE_SPEAKER_OPTIONS, ...options };
  }

  get active(): string | null {
    return this.#active;
  }

  /** One frame's level for a participant; returns the new active speaker when it changed, else undefined. */
  push(participantId: string, db: number, nowMs: number): string | null | undefined {
    const o = this.options;
    let level = this.#levels.get(participantId);
    if (!level) {
      level = { db, speakingAtMs: -Infinity };
      this.#levels.set(participantId, level);
    } else {
      // One step of an exponential average per frame (frames of one burst share one arrival time).
      level.db += (db - level.db) * (1 - Math.exp(-o.frameMs / o.smoothingMs));
    }
    if (level.db >= o.speechLevelDb) level.speakingAtMs = nowMs;
    return this.#decide(nowMs);
  }

  remove(participantId: string, nowMs: number): string | null | undefined {
    this.#levels.delete(participantId);
    if (this.#active !== participantId) return undefined;
    return this.#change(null, nowMs);
  }

  #decide(nowMs: number): string | null | undefined {
    const o = this.options;
    let loudest: string | null = null;
    let loudestDb = -Infinity;
    for (const [id, level] of this.#levels) {
      if (level.db >= o.speechLevelDb && level.db > loudestDb) {
        loudest = id;
        loudestDb = level.db;
      }
    }
    const current = this.#active === null ? undefined : this.#levels.get(this.#active);
    if (loudest === null) {
      // Nobody speaks: let the floor go once the speaker has been quiet long enough.
      if (current && nowMs - current.speakingAtMs >= o.releaseMs) return this.#change(null, nowMs);
      return undefined;
    }
    if (loudest === this.#active || nowMs - this.#changedAtMs < o.minHoldMs) return undefined;
    const currentSpeaks = current !== undefined && current.db >= o.speechLevelDb;
    if (currentSpeaks && loudestDb < current.db + o.switchMarginDb) return undefined;
    return this.#change(loudest, nowMs);
  }

  #change(next: string | null, nowMs: number): string | null {
    this.#active = next;
    this.#changedAtMs = nowMs;
    return next;
  }
}
