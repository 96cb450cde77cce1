// How much Silero a talking client asks for. The server gives a session a Silero stream when its
// energy gate opens and takes it back after `releaseAfterMs` gated; each media worker has at most
// `maxStreams` (media/vad/silero-vad.ts). Beyond that, frames are judged by energy alone: cheaper,
// and cruder. The server counts its Silero windows and runs (the step rows show them), not the
// frames judged by energy, so the benchmark estimates that share from the clients' own audio: it
// runs the server's VoiceActivity over the talking loop.
import { decodePackets } from '../tests/helpers/audio.ts';
import { VoiceActivity } from '../media/vad/voice-activity.ts';
import { DEFAULT_SILERO_VAD_OPTIONS, SileroVad } from '../media/vad/silero-vad.ts';
import type { SpeechLoop } from './speech-loop.ts';

const FRAME_SAMPLES = 320;

/** The server's per-worker Silero cap (it uses the default). */
export const SILERO_STREAMS_PER_WORKER = DEFAULT_SILERO_VAD_OPTIONS.maxStreams;

export interface SileroDemand {
  /** Share of the time the client holds a Silero stream (taken at gate opening, kept until 1 s gated). */
  leaseShare: number;
  /** Share of its frames that Silero runs on (the rest are gated): what costs CPU. */
  frameShare: number;
}

/**
 * What one client running `loop` asks of Silero, in the steady state (the loop's second and third
 * passes). `minSpeechMs`: the server's VAD_MIN_SPEECH_MS default.
 */
export async function sileroDemand(loop: SpeechLoop, minSpeechMs = 100): Promise<SileroDemand> {
  const pool = await SileroVad.load({ maxStreams: 1 });
  const activity = new VoiceActivity(pool, { minSpeechMs, preRollMs: 0 });
  const pcm = decodePackets([...loop.packets, ...loop.packets, ...loop.packets]);
  const frames = Math.floor(pcm.length / FRAME_SAMPLES);
  const from = loop.packets.length;
  let held = 0;
  let sileroFramesBefore = 0;
  for (let i = 0; i < frames; i++) {
    if (i === from) sileroFramesBefore = activity.toJSON().sileroFrames;
    activity.push(pcm.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES));
    await pool.idle();
    if (i >= from && pool.toJSON().streams > 0) held++;
  }
  const sileroFrames = activity.toJSON().sileroFrames - sileroFramesBefore;
  activity.close();
  await pool.close();
  return { leaseShare: held / (frames - from), frameShare: sileroFrames / (frames - from) };
}

/**
 * Expected share of lease-wanting frames judged by energy alone, with `sessions` talking clients
 * spread evenly over `workers` and over the loop: demand per worker is sessions / workers x share.
 */
export function energyOnlyShare(sessions: number, workers: number, leaseShare: number): number {
  const demand = (sessions / workers) * leaseShare;
  return demand > SILERO_STREAMS_PER_WORKER ? (demand - SILERO_STREAMS_PER_WORKER) / demand : 0;
}
