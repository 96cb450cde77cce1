// One session's media inside a worker: the peer, the jitter buffer, the decoder and the echo
// conversation (speech endpointing, then playback of the utterance).
import { Peer, type PeerOptions, type InboundRtp } from './peer.ts';
import { JitterBuffer, type JitterOutput } from './jitter-buffer.ts';
import { OpusFrameDecoder, OpusFrameEncoder } from './opus-codec.ts';
import { SpeechDetector } from './speech-detector.ts';
import { TypedEmitter } from './typed-emitter.ts';
import type { LatencyHistogram } from './latency-histogram.ts';

export interface MediaSessionOptions {
  mode: 'echo';
  echo: { endSilenceMs: number; minSpeechMs: number; maxUtteranceMs: number };
  jitterBuffer: { minDelayMs: number; maxDelayMs: number };
}

export type MediaSessionEvents = {
  speechstart: [at: number];
  utterance: [info: { speechStartAt: number; speechEndAt: number; endOfTurnAt: number; audioMs: number; accepted: boolean }];
  response: [info: { phase: 'start' | 'end'; at: number; audioMs: number; interrupted: boolean }];
};

const SAMPLE_RATE = 16000;
const FRAME_SAMPLES = 320; // 20 ms at 16 kHz
const RTP_TICKS_PER_FRAME = 960; // 20 ms at 48 kHz
const MAX_DECODED_SAMPLES = 1920; // 120 ms at 16 kHz, the longest Opus packet

/** Clock pair: `now()` is monotonic ms (performance.now), `wall()` is epoch ms. */
export interface MediaClock {
  now(): number;
  wall(): number;
}

export class MediaSession extends TypedEmitter<MediaSessionEvents> {
  readonly id: string;
  readonly peer: Peer;
  readonly jitterBuffer: JitterBuffer;
  #decoder: OpusFrameDecoder | null;
  #encoder: OpusFrameEncoder | null = null;
  readonly #detector: SpeechDetector;
  readonly #clock: MediaClock;
  readonly #latency: LatencyHistogram;
  readonly #decoded = new Int16Array(MAX_DECODED_SAMPLES);
  readonly #frame = new Int16Array(FRAME_SAMPLES);
  #frameFill = 0;
  readonly #outputs: JitterOutput[] = [];
  #mediaSeen = false;
  #ssrc: number | null = null;

  // Echo playback state.
  #playback: Int16Array | null = null;
  #playbackOffset = 0;
  #playbackFrame = new Int16Array(FRAME_SAMPLES);
  #rtpTimestamp = Math.floor(Math.random() * 0xffffffff);
  #lastSentAt = 0;
  #speechStartWall = 0;
  #closed = false;

  constructor(id: string, options: MediaSessionOptions, peerOptions: PeerOptions, clock: MediaClock, latency: LatencyHistogram) {
    super();
    this.id = id;
    this.#clock = clock;
    this.#latency = latency;
    this.peer = new Peer(peerOptions);
    this.jitterBuffer = new JitterBuffer({
      minDelayMs: options.jitterBuffer.minDelayMs,
      maxDelayMs: options.jitterBuffer.maxDelayMs,
    });
    this.#decoder = new OpusFrameDecoder(SAMPLE_RATE);
    this.#detector = new SpeechDetector({
      sampleRate: SAMPLE_RATE,
      endSilenceMs: options.echo.endSilenceMs,
      minSpeechMs: options.echo.minSpeechMs,
      maxUtteranceMs: options.echo.maxUtteranceMs,
    });
    this.peer.on('rtp', (packet) => this.#onRtp(packet));
  }

  /** True once per report interval if media arrived since the last call. */
  takeMediaSeen(): boolean {
    const seen = this.#mediaSeen;
    this.#mediaSeen = false;
    return seen;
  }

  get responding(): boolean {
    return this.#playback !== null;
  }

  /** Periodic tick: releases due frames from the jitter buffer (concealing what never came). */
  poll(): void {
    if (this.#closed) return;
    const outputs = this.jitterBuffer.poll(this.#clock.now(), this.#clearedOutputs());
    if (outputs.length > 0) this.#consume(outputs);
  }

  /** Pacer tick: sends the next 20 ms of the answer, if any. */
  sendNextFrame(): void {
    const playback = this.#playback;
    if (!playback || this.#closed) return;
    const first = this.#playbackOffset === 0;
    const remaining = playback.length - this.#playbackOffset;
    const frame = this.#playbackFrame;
    if (remaining >= FRAME_SAMPLES) {
      frame.set(playback.subarray(this.#playbackOffset, this.#playbackOffset + FRAME_SAMPLES));
    } else {
      frame.fill(0);
      frame.set(playback.subarray(this.#playbackOffset));
    }
    this.#playbackOffset += FRAME_SAMPLES;
    this.#encoder ??= new OpusFrameEncoder({ sampleRate: SAMPLE_RATE });
    const packet = this.#encoder.encode(frame);
    const now = this.#clock.now();
    // A new talkspurt advances the RTP clock by the real pause, so the receiver's timing stays true.
    if (first && this.#lastSentAt > 0) {
      const gapTicks = Math.max(RTP_TICKS_PER_FRAME, Math.round((now - this.#lastSentAt) * 48));
      this.#rtpTimestamp = (this.#rtpTimestamp + gapTicks) >>> 0;
    } else if (!first) {
      this.#rtpTimestamp = (this.#rtpTimestamp + RTP_TICKS_PER_FRAME) >>> 0;
    }
    this.#lastSentAt = now;
    this.peer.sendAudio(packet, this.#rtpTimestamp, first);
    const audioMs = Math.round((playback.length / SAMPLE_RATE) * 1000);
    if (first) this.safeEmit('response', { phase: 'start', at: this.#clock.wall(), audioMs, interrupted: false });
    if (this.#playbackOffset >= playback.length) {
      this.#playback = null;
      this.#playbackOffset = 0;
      this.#detector.reset();
      this.safeEmit('response', { phase: 'end', at: this.#clock.wall(), audioMs, interrupted: false });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#playback = null;
    await this.peer.close();
    this.#decoder?.free();
    this.#decoder = null;
    this.#encoder?.free();
    this.#encoder = null;
    this.removeAllListeners();
  }

  #onRtp(packet: InboundRtp): void {
    if (this.#closed) return;
    this.#mediaSeen = true;
    if (this.#ssrc !== packet.ssrc) {
      // A new source (client restarted its track): start the stream afresh.
      if (this.#ssrc !== null) this.jitterBuffer.reset();
      this.#ssrc = packet.ssrc;
    }
    const outputs = this.jitterBuffer.push(packet, this.#clock.now(), this.#clearedOutputs());
    if (outputs.length > 0) this.#consume(outputs);
  }

  #clearedOutputs(): JitterOutput[] {
    this.#outputs.length = 0;
    return this.#outputs;
  }

  #consume(outputs: JitterOutput[]): void {
    const decoder = this.#decoder;
    if (!decoder) return;
    for (const output of outputs) {
      let samples: number;
      try {
        if (output.kind === 'packet') samples = decoder.decode(output.payload, this.#decoded);
        else if (output.kind === 'fec') samples = decoder.decodeFec(output.payload, this.#decoded);
        else samples = decoder.conceal(this.#decoded);
      } catch {
        // A corrupt payload must not take the session (or the worker) down: conceal instead.
        samples = decoder.conceal(this.#decoded);
      }
      this.#deliver(samples);
      if (output.kind === 'packet') {
        this.#latency.record(this.#clock.now() - output.arrivalMs - output.holdMs);
      }
    }
  }

  // Re-slices decoded audio into 20 ms frames whatever the packet duration was.
  #deliver(samples: number): void {
    let offset = 0;
    while (offset < samples) {
      const n = Math.min(FRAME_SAMPLES - this.#frameFill, samples - offset);
      this.#frame.set(this.#decoded.subarray(offset, offset + n), this.#frameFill);
      this.#frameFill += n;
      offset += n;
      if (this.#frameFill === FRAME_SAMPLES) {
        this.#frameFill = 0;
        this.#onFrame(this.#frame);
      }
    }
  }

  #onFrame(frame: Int16Array): void {
    // Echo mode is half-duplex: while the answer plays, the microphone is not listened to.
    if (this.#playback) return;
    const event = this.#detector.push(frame);
    if (!event) return;
    const wall = this.#clock.wall();
    if (event.kind === 'speech_start') {
      this.#speechStartWall = wall;
      this.safeEmit('speechstart', wall);
      return;
    }
    const endSilenceMs = this.#detector.options.endSilenceMs;
    const speechEndAt = event.kind === 'utterance' && event.cut ? wall : wall - endSilenceMs;
    const audioMs = event.kind === 'utterance' ? Math.round((event.audio.length / SAMPLE_RATE) * 1000) : event.voicedMs;
    const accepted = event.kind === 'utterance';
    this.safeEmit('utterance', { speechStartAt: this.#speechStartWall, speechEndAt, endOfTurnAt: wall, audioMs, accepted });
    if (event.kind === 'utterance') {
      this.#playback = event.audio;
      this.#playbackOffset = 0;
    }
  }
}
