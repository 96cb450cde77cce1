/**
 * Per worker: Silero (one model, batched runs) and the RNNoise runtime; per session: a VoiceActivity stage (energy
 * pre-gate, Silero, optional denoise) adapted to what the listening pipeline needs.
 */
import type { VoiceConfig } from '../voice-config.ts';
import type { VadStage } from '../../media/listening-pipeline.ts';
import { VoiceActivity } from '../../media/vad/voice-activity.ts';
import { SileroVad } from '../../media/vad/silero-vad.ts';
import { loadRnnoiseRuntime, RnnoiseDenoiser, type RnnoiseRuntime } from '../../media/denoise/rnnoise-denoiser.ts';

let silero: SileroVad | null = null;
let rnnoise: RnnoiseRuntime | null = null;

/** This worker's Silero (for its counters), once prepareVad() has run. */
export function workerSilero(): SileroVad | null {
  return silero;
}

/** Loads what the worker's sessions will need, so the first session does not wait for it. */
export async function prepareVad(config: VoiceConfig): Promise<void> {
  silero ??= await SileroVad.load({
    engine: config.vad.engine,
    nativeWeights: config.vad.nativeWeights,
    threshold: config.vad.threshold,
    batchWindowMs: config.vad.batchWindowMs,
  });
  if (config.denoise !== 'off') rnnoise ??= await loadRnnoiseRuntime();
}

export function createVadStage(config: VoiceConfig): VadStage & { close(): void } {
  if (!silero) throw new Error('prepareVad() must complete before createVadStage()');
  const denoiser = config.denoise !== 'off' && rnnoise ? new RnnoiseDenoiser(rnnoise, { policy: { mode: config.denoise } }) : null;
  // The listening pipeline keeps its own pre-roll (it must hold the onset frames too).
  const activity = new VoiceActivity(silero, { minSpeechMs: config.vad.minSpeechMs, preRollMs: 0 }, denoiser);
  return {
    push(frame) {
      const decision = activity.push(frame);
      return { speaking: decision.speaking, voiced: decision.voiced, levelDb: decision.levelDb, frame: decision.frame };
    },
    reset: () => activity.reset(),
    close() {
      activity.close();
      denoiser?.close();
    },
  };
}
