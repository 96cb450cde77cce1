// The audio every simulated client sends: the speech fixture as 20 ms Opus frames, then silence,
// looped. The plan also says, per frame, where the server's endpointing will fire, found by running
// the server's own SpeechDetector over the same decoded audio the server will decode.
import { speechPackets, decodePackets } from '../tests/helpers/audio.ts';
import { SpeechDetector } from '../media/speech-detector.ts';

export const FRAME_MS = 20;
const FRAME_SAMPLES = 320; // 20 ms at 16 kHz
/** Quiet kept after the echo ends before the next utterance starts (the echo is half-duplex). */
const ECHO_CLEARANCE_MS = 700;

export interface SpeechLoop {
  /** One loop of Opus payloads: speech, then silence. */
  packets: Uint8Array[];
  speechFrames: number;
  silenceMs: number;
  /** Index of the last frame the server's detector counts as speech (the end of the utterance). */
  speechEndFrame: number;
  /** Index of the frame on which the server's detector ends the utterance (speechEndFrame + end silence). */
  endpointFrame: number;
  /** Length of the audio the server echoes back for one loop (0 when the utterance is too short to echo). */
  echoMs: number;
}

export interface EchoSettings {
  endSilenceMs: number;
  minSpeechMs: number;
  maxUtteranceMs: number;
}

/**
 * Builds the loop. The silence after the speech is at least `minSilenceMs` and long enough for the
 * echo to finish before the next utterance starts: the server does not listen while it plays back,
 * so a shorter gap would clip every other utterance.
 */
export function buildSpeechLoop(echo: EchoSettings, minSilenceMs = 1500): SpeechLoop {
  const speech = speechPackets(0).packets;
  const probe = simulateEndpoint(speech, echo);
  const needed = echo.endSilenceMs + probe.echoMs + ECHO_CLEARANCE_MS;
  const silenceMs = Math.ceil(Math.max(minSilenceMs, needed) / FRAME_MS) * FRAME_MS;
  const packets = speechPackets(silenceMs).packets;
  // Re-run on the final loop (twice through) so the detector's noise floor is in its steady state.
  const loop = simulateEndpoint([...packets, ...packets], echo, packets.length);
  if (loop.endpointFrame < 0 || loop.endpointFrame >= packets.length) {
    throw new Error('the speech fixture does not produce exactly one utterance per loop');
  }
  return {
    packets,
    speechFrames: speech.length,
    silenceMs,
    speechEndFrame: loop.endpointFrame - echo.endSilenceMs / FRAME_MS,
    endpointFrame: loop.endpointFrame,
    echoMs: loop.echoMs,
  };
}

/** Frame index (relative to `from`) of the first end of an utterance at or after frame `from`. */
function simulateEndpoint(packets: Uint8Array[], echo: EchoSettings, from = 0): { endpointFrame: number; echoMs: number } {
  const pcm = decodePackets(packets);
  const detector = new SpeechDetector({ sampleRate: 16000, ...echo });
  const frames = Math.floor(pcm.length / FRAME_SAMPLES);
  let muteUntil = -1;
  for (let i = 0; i < frames; i++) {
    if (i < muteUntil) continue; // the server ignores the microphone while it echoes
    if (i === muteUntil) detector.reset();
    const event = detector.push(pcm.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES));
    if (!event || event.kind === 'speech_start') continue;
    // A discarded utterance (shorter than minSpeechMs) ends the same way but is not echoed.
    const echoMs = event.kind === 'utterance' ? (event.audio.length / 16000) * 1000 : 0;
    if (i >= from) return { endpointFrame: i - from, echoMs };
    muteUntil = i + 1 + Math.ceil(echoMs / FRAME_MS);
  }
  return { endpointFrame: -1, echoMs: 0 };
}
