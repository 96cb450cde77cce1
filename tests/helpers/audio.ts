// Test audio: read the speech fixture, encode it to Opus packets, and compare loudness envelopes.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OpusFrameEncoder, OpusFrameDecoder } from '../../media/opus-codec.ts';

export const SPEECH_WAV = fileURLToPath(new URL('../fixtures/speech-16k.wav', import.meta.url));

/** Reads a 16-bit mono PCM WAV file. */
export function readWav(path: string): { sampleRate: number; samples: Int16Array } {
  const buf = readFileSync(path);
  if (buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path} is not a WAV file`);
  let offset = 12;
  let sampleRate = 0;
  while (offset + 8 <= buf.length) {
    const id = buf.toString('ascii', offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    if (id === 'fmt ') {
      const channels = buf.readUInt16LE(offset + 10);
      sampleRate = buf.readUInt32LE(offset + 12);
      const bits = buf.readUInt16LE(offset + 22);
      if (channels !== 1 || bits !== 16) throw new Error(`${path}: need 16-bit mono`);
    } else if (id === 'data') {
      const data = buf.subarray(offset + 8, offset + 8 + size);
      const samples = new Int16Array(data.length / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = data.readInt16LE(i * 2);
      return { sampleRate, samples };
    }
    offset += 8 + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

/** The fixture as 20 ms Opus packets (16 kHz input), optionally followed by silence frames. */
export function speechPackets(silenceAfterMs = 0): { packets: Uint8Array[]; pcm: Int16Array } {
  const { samples } = readWav(SPEECH_WAV);
  const encoder = new OpusFrameEncoder({ sampleRate: 16000, bitrate: 32000, inbandFec: true });
  const frames = Math.ceil(samples.length / 320) + Math.ceil(silenceAfterMs / 20);
  const pcm = new Int16Array(frames * 320);
  pcm.set(samples);
  const packets: Uint8Array[] = [];
  for (let i = 0; i < frames; i++) packets.push(encoder.encode(pcm.subarray(i * 320, (i + 1) * 320)));
  encoder.free();
  return { packets, pcm };
}

/** 16 kHz PCM as 20 ms Opus packets (the last frame padded with silence). */
export function encodePackets(pcm: Int16Array): Uint8Array[] {
  const encoder = new OpusFrameEncoder({ sampleRate: 16000, bitrate: 32000, inbandFec: true });
  const frame = new Int16Array(320);
  const packets: Uint8Array[] = [];
  for (let offset = 0; offset < pcm.length; offset += 320) {
    frame.fill(0);
    frame.set(pcm.subarray(offset, offset + 320));
    packets.push(encoder.encode(frame));
  }
  encoder.free();
  return packets;
}

/** One 20 ms Opus frame of digital silence. */
export function silencePacket(): Uint8Array {
  const encoder = new OpusFrameEncoder({ sampleRate: 16000 });
  const packet = encoder.encode(new Int16Array(320));
  encoder.free();
  return packet;
}

/** Decodes a sequence of Opus payloads (in order) to 16 kHz PCM. */
export function decodePackets(payloads: Uint8Array[]): Int16Array {
  const decoder = new OpusFrameDecoder(16000);
  const out = new Int16Array(payloads.length * 1920);
  const scratch = new Int16Array(1920);
  let n = 0;
  for (const p of payloads) {
    const got = decoder.decode(p, scratch);
    out.set(scratch.subarray(0, got), n);
    n += got;
  }
  decoder.free();
  return out.subarray(0, n);
}

/**
 * Decodes received RTP in sequence order, concealing gaps (PLC) so the audio keeps its timing,
 * as a receiver's jitter buffer would.
 */
export function decodeStream(packets: { sequenceNumber: number; payload: Uint8Array }[]): Int16Array {
  if (packets.length === 0) return new Int16Array(0);
  // Unwrap 16-bit sequence numbers relative to the first packet.
  const first = packets[0]!.sequenceNumber;
  const bySeq = new Map<number, Uint8Array>();
  for (const p of packets) bySeq.set(((p.sequenceNumber - first + 0x8000) & 0xffff) - 0x8000, p.payload);
  const keys = [...bySeq.keys()];
  const lo = Math.min(...keys);
  const hi = Math.max(...keys);
  const decoder = new OpusFrameDecoder(16000);
  const out = new Int16Array((hi - lo + 1) * 1920);
  const scratch = new Int16Array(1920);
  let n = 0;
  for (let s = lo; s <= hi; s++) {
    const payload = bySeq.get(s);
    const got = payload ? decoder.decode(payload, scratch) : decoder.conceal(scratch);
    out.set(scratch.subarray(0, got), n);
    n += got;
  }
  decoder.free();
  return out.subarray(0, n);
}

/** RMS per 20 ms window, in dB (floored at -80). */
export function envelope(pcm: Int16Array, window = 320): number[] {
  const out: number[] = [];
  for (let i = 0; i + window <= pcm.length; i += window) {
    let sum = 0;
    for (let j = i; j < i + window; j++) sum += pcm[j]! * pcm[j]!;
    const rms = Math.sqrt(sum / window) / 32768;
    out.push(Math.max(-80, 20 * Math.log10(rms || 1e-9)));
  }
  return out;
}

/** Best Pearson correlation of two envelopes over lags in [-maxLag, maxLag] windows. */
export function envelopeSimilarity(a: number[], b: number[], maxLag = 50): { correlation: number; lag: number } {
  let best = { correlation: -1, lag: 0 };
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    const xs: number[] = [];
    const ys: number[] = [];
    for (let i = 0; i < a.length; i++) {
      const j = i + lag;
      if (j >= 0 && j < b.length) {
        xs.push(a[i]!);
        ys.push(b[j]!);
      }
    }
    if (xs.length < Math.min(a.length, b.length) * 0.6) continue;
    const c = pearson(xs, ys);
    if (c > best.correlation) best = { correlation: c, lag };
  }
  return best;
}

function pearson(x: number[], y: number[]): number {
  const n = x.length;
  const mx = x.reduce((s, v) => s + v, 0) / n;
  const my = y.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
    syy += (y[i]! - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? 0 : sxy / Math.sqrt(sxx * syy);
}

/** The parts one after another, in one array. */
export function concatPcm(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
