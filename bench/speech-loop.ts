// The audio every simulated client sends: the speech fixture as 20 ms Opus frames, then silence,
// looped. The plan also says, per frame, where the server's endpointing will fire, found by running
// the server's own SpeechDetector over the same decoded audio the server will decode. For the agent
// (listening-pipeline) steps: the same speech with a shorter silence ("talking"), or room noise ("silent").
import { speechPackets, decodePackets, encodePackets } from '../tests/helpers/audio.ts';
import { SpeechDetector } from '../media/speech-detector.ts';
import type { LoadAudio } from './ipc.ts';

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

/**
 * Agent modes: the speech fixture, then `silenceMs` of silence, looped. No echo to wait for, so the
 * silence only has to end the turn; `speechEndFrame` is the fixture's last frame (counts utterances).
 */
export function buildTalkLoop(silenceMs: number): SpeechLoop {
  const speechFrames = speechPackets(0).packets.length;
  const silence = Math.ceil(silenceMs / FRAME_MS) * FRAME_MS;
  return { packets: speechPackets(silence).packets, speechFrames, silenceMs: silence, speechEndFrame: speechFrames - 1, endpointFrame: -1, echoMs: 0 };
}

/** Level of the silent clients' room noise: under the VAD gate's -55 dBFS floor, as a quiet room is. */
export const ROOM_NOISE_DBFS = -60;
const SILENT_LOOP_FRAMES = 250;

/**
 * Quiet white noise at ROOM_NOISE_DBFS (not digital zero: a real microphone has a noise floor, and
 * Opus works on it like on any audio), 5 s, looped. Deterministic.
 */
export function buildSilentLoop(): SpeechLoop {
  const pcm = new Int16Array(SILENT_LOOP_FRAMES * FRAME_SAMPLES);
  // Uniform noise in [-a, a] has RMS a/sqrt(3).
  const amplitude = 32768 * 10 ** (ROOM_NOISE_DBFS / 20) * Math.sqrt(3);
  let seed = 0x2545f491;
  for (let i = 0; i < pcm.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    pcm[i] = Math.round(((seed / 2 ** 32) * 2 - 1) * amplitude);
  }
  return { packets: encodePackets(pcm), speechFrames: 0, silenceMs: SILENT_LOOP_FRAMES * FRAME_MS, speechEndFrame: -1, endpointFrame: -1, echoMs: 0 };
}

/** The loop a load client sends for `audio`. */
export function buildLoadLoop(audio: LoadAudio, echo: EchoSettings, minSilenceMs: number): SpeechLoop {
  switch (audio.kind) {
    case 'echo-speech':
      return buildSpeechLoop(echo, minSilenceMs);
    case 'talking':
      return buildTalkLoop(audio.silenceMs);
    case 'silent':
      return buildSilentLoop();
  }
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
