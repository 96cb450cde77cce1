// One session's media inside a worker: the peer, the jitter buffer, the decoder, the listening side
// of the conversation (echo: EchoResponder; agent modes: the listening pipeline), the outbound
// speech playout (encoded and timestamped by AnswerSender, which also adapts its quality to the
// client's reports), media-loss detection. The peer can be replaced (full rejoin) without losing
// the session. What to answer is decided outside media/: a
// conversation listens to `listen` events and fills `playout`.
import { Peer, type PeerOptions, type InboundRtp, type IceCandidateInit, type PeerConnectionState } from './peer.ts';
import { JitterBuffer, type JitterOutput } from './jitter-buffer.ts';
import { InboundAudio } from './inbound-audio.ts';
import { EchoResponder, type EchoOptions } from './echo-responder.ts';
import type { QualitySnapshot } from './outbound-quality.ts';
import { AnswerSender } from './answer-sender.ts';
import { TypedEmitter } from './typed-emitter.ts';
import type { LatencyHistogram } from './latency-histogram.ts';
import { SpeechPlayout, heardPart, type PlayoutResult } from './speech-playout.ts';
import { CaptureClock } from './capture-clock.ts';
import type { ListeningPipeline, ListenEvent } from './listening-pipeline.ts';
import { levelDb } from './active-speaker.ts';
import type { OutboundTrack } from './forwarder.ts';

export type MediaMode = 'echo' | 'stt_tts' | 's2s';

export interface MediaSessionOptions {
  mode: MediaMode;
  echo: EchoOptions;
  /** Agent modes (the rest of the agent's settings are the worker's, from the server config). */
  voice: { language: string };
  jitterBuffer: { minDelayMs: number; maxDelayMs: number };
  /** No inbound RTP for this long (while connected and not muted) means the media path died. */
  mediaTimeoutMs: number;
  /**
   * The client may be heard (the `publish` grant). Without it, inbound audio keeps the media path
   * alive but reaches nobody: not the agent, not the room.
   */
  publish: boolean;
}

export interface QualityReport extends QualitySnapshot {
  jitterBufferDelayMs: number;
  inboundLossPercent: number;
}

export type MediaSessionEvents = {
  candidate: [candidate: IceCandidateInit | null];
  connection: [state: PeerConnectionState];
  speechstart: [at: number];
  utterance: [info: { speechStartAt: number; speechEndAt: number; endOfTurnAt: number; audioMs: number; accepted: boolean }];
  /**
   * heardMs: answer audio the client can be assumed to have received (see #stopPlayback);
   * `playout` (on end) says what was played of the answer's text.
   */
  response: [info: { phase: 'start' | 'end'; at: number; audioMs: number; heardMs: number; interrupted: boolean; playout?: PlayoutResult }];
  /** Agent modes: what the listening pipeline heard (see media/listening-pipeline.ts). */
  listen: [event: ListenEvent, at: number];
  /** The media path died (no RTP for mediaTimeoutMs) or came back. */
  media: [info: { state: 'lost' | 'restored'; at: number; silentMs: number }];
  quality: [report: QualityReport];
  /** Rooms: every inbound packet as it arrives (before the jitter buffer), for forwarding. */
  rtp: [packet: InboundRtp];
  /** Rooms: the level of each decoded 20 ms frame (dBFS), for the active speaker. */
  level: [db: number];
  /** Rooms: each encoded frame of the agent's answer as sent, so other participants hear it too. */
  outbound: [payload: Uint8Array, timestamp: number, marker: boolean];
  /** Rooms: a server offer (outbound tracks changed) for the client. */
  offer: [sdp: string];
  /** The peer was replaced (resume with new media): its outbound tracks are gone. */
  peerreplaced: [];
};

const SAMPLE_RATE = 16000;

/** Clock pair: `now()` is monotonic ms (performance.now), `wall()` is epoch ms. */
export interface MediaClock {
  now(): number;
  wall(): number;
}

export class MediaSession extends TypedEmitter<MediaSessionEvents> {
  readonly id: string;
  #peer: Peer;
  readonly jitterBuffer: JitterBuffer;
  readonly #options: MediaSessionOptions;

  get options(): MediaSessionOptions {
    return this.#options;
  }
  readonly #peerOptions: PeerOptions;
  #inbound: InboundAudio | null;
  readonly #sender = new AnswerSender();
  readonly #echo: EchoResponder;
  readonly #clock: MediaClock;
  readonly #latency: LatencyHistogram;
  readonly #outputs: JitterOutput[] = [];
  #mediaSeen = false;
  #ssrc: number | null = null;
  #lastRtpAt = 0;
  #mediaLost = false;
  #muted = false;

  /** The answer being played; the pacer pulls 20 ms frames from it. */
  readonly playout = new SpeechPlayout();
  #listening: ListeningPipeline | null = null;
  #playbackStarted = false;
  readonly #captureClock = new CaptureClock();
  #playbackStartedAt = 0;
  #closed = false;
  /** Whether this session's participant is the one the agent (or the echo) listens to. */
  #agent = true;
  /** Rooms, agent listening to all: the session whose playout is the agent's answer. */
  #respondingHost: MediaSession | null = null;

  constructor(id: string, options: MediaSessionOptions, peerOptions: PeerOptions, clock: MediaClock, latency: LatencyHistogram) {
    super();
    this.id = id;
    this.#options = options;
    this.#peerOptions = peerOptions;
    this.#clock = clock;
    this.#latency = latency;
    this.jitterBuffer = new JitterBuffer({
      minDelayMs: options.jitterBuffer.minDelayMs,
      maxDelayMs: options.jitterBuffer.maxDelayMs,
    });
    this.#inbound = new InboundAudio(SAMPLE_RATE, (frame, atMs) => this.#onFrame(frame, atMs));
    this.#echo = new EchoResponder(SAMPLE_RATE, options.echo, () => this.#clock.wall());
    this.#peer = this.#createPeer();
  }

  /** Told the jitter buffer's next deadline when a packet is held, so the owner can poll on time. */
  onDeadline: ((atMs: number) => void) | null = null;

  get peer(): Peer {
    return this.#peer;
  }

  /** Slow path of a resume: the client has a new peer connection; ours is replaced, the session stays. */
  async replacePeer(): Promise<void> {
    const old = this.#peer;
    this.#peer = this.#createPeer();
    this.#ssrc = null;
    this.#lastRtpAt = 0;
    this.jitterBuffer.reset();
    await old.close();
    this.safeEmit('peerreplaced');
  }

  /** Rooms: only the designated participant's session runs the agent; the others only forward. */
  setAgent(agent: boolean): void {
    this.#agent = agent;
  }

  get agent(): boolean {
    return this.#agent;
  }

  /**
   * Rooms where the agent listens to everyone: this participant is heard too (through its own
   * listening pipeline), while the answers play on `host`'s session. null: not heard.
   */
  listenAlong(host: MediaSession | null): void {
    this.#respondingHost = host;
  }

  /** Rooms: a send-only track on this client's connection for another participant's audio. */
  addOutboundTrack(participantId: string): OutboundTrack {
    return this.#peer.addOutboundTrack(participantId);
  }

  /** Rooms: the agent's answer, hosted by another participant's session, on this client's main track. */
  sendAgentAudio(payload: Uint8Array, timestamp: number, marker: boolean): void {
    if (!this.#closed) this.#peer.sendAudio(payload, timestamp, marker);
  }

  /** Sends our offer again if it is still unanswered (lost with a socket), else offers if tracks changed. */
  renegotiate(): void {
    const pending = this.#peer.pendingOffer;
    if (pending) this.safeEmit('offer', pending);
    else this.#renegotiate(this.#peer);
  }

  setMuted(muted: boolean): void {
    this.#muted = muted;
    if (!muted) this.#lastRtpAt = this.#clock.now(); // give a fresh timeout after unmuting
  }

  /** True once per report interval if media arrived since the last call. */
  takeMediaSeen(): boolean {
    const seen = this.#mediaSeen;
    this.#mediaSeen = false;
    return seen;
  }

  get responding(): boolean {
    return this.playout.active;
  }

  /** Agent modes: frames go through this pipeline and come out as `listen` events. */
  setListening(pipeline: ListeningPipeline | null): void {
    if (this.#listening !== pipeline) this.#listening?.close(); // gives back its Silero lease
    this.#listening = pipeline;
  }

  /** The running transcript of the user's turn (steers the turn detector's mid-phrase wait). */
  hintTranscript(text: string): void {
    this.#listening?.setPartialTranscript(text);
  }

  /** Barge-in or cancellation: stops the answer now (the next pacer tick sends nothing). */
  interruptResponse(): void {
    this.#stopPlayback(true, false);
  }

  /** Periodic tick: releases due frames from the jitter buffer and watches for a dead media path. */
  poll(): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    const outputs = this.jitterBuffer.poll(now, this.#clearedOutputs());
    if (outputs.length > 0) this.#consume(outputs);
    this.#watchMedia(now);
  }

  /** Pacer tick: sends the next 20 ms of the answer, if any. */
  sendNextFrame(): void {
    if (!this.playout.active || this.#closed) return;
    const now = this.#clock.now();
    const frame = this.playout.nextFrame();
    this.#listening?.sent(frame, now);
    if (!frame) {
      this.#sender.pause(); // an underrun between sentences: the next audio starts a talkspurt
      if (this.playout.drained) this.#stopPlayback(false, false);
      return;
    }
    const first = !this.#playbackStarted;
    const { payload, timestamp, marker } = this.#sender.encode(frame, now);
    this.#peer.sendAudio(payload, timestamp, marker);
    this.safeEmit('outbound', payload, timestamp, marker);
    if (first) {
      this.#playbackStarted = true;
      this.#playbackStartedAt = now;
      this.safeEmit('response', { phase: 'start', at: this.#clock.wall(), audioMs: this.playout.result().audioMs, heardMs: 0, interrupted: false });
    }
    if (this.playout.drained) this.#stopPlayback(false, false);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.playout.finish();
    this.#listening?.close();
    this.#listening = null;
    await this.#peer.close();
    this.#inbound?.free();
    this.#inbound = null;
    this.#sender.free();
    this.removeAllListeners();
  }

  #createPeer(): Peer {
    const peer = new Peer(this.#peerOptions);
    peer.on('rtp', (packet) => this.#onRtp(packet));
    peer.on('candidate', (candidate) => this.safeEmit('candidate', candidate));
    peer.on('negotiationneeded', () => this.#renegotiate(peer));
    peer.on('connectionstatechange', (state) => {
      // The media-loss clock starts at connection, so a path that dies before its first packet is
      // detected too.
      if (state === 'connected' && this.#lastRtpAt === 0) this.#lastRtpAt = this.#clock.now();
      this.safeEmit('connection', state);
    });
    peer.on('receiverreport', (report) => {
      const quality = this.#sender.onReceiverReport(report, this.#clock.now());
      const jb = this.jitterBuffer.toJSON();
      const expected = jb.received + jb.lost;
      this.safeEmit('quality', {
        ...quality,
        jitterBufferDelayMs: jb.targetDelayMs,
        inboundLossPercent: expected > 0 ? Math.round((jb.lost / expected) * 1000) / 10 : 0,
      });
    });
    return peer;
  }

  #renegotiate(peer: Peer): void {
    peer.renegotiate().then(
      (sdp) => {
        if (sdp && peer === this.#peer && !this.#closed) this.safeEmit('offer', sdp);
      },
      () => undefined, // a closed peer; a failed offer is retried at the next change
    );
  }

  #watchMedia(now: number): void {
    if (this.#muted || this.#lastRtpAt === 0 || this.#mediaLost) return;
    const silentMs = now - this.#lastRtpAt;
    if (silentMs < this.#options.mediaTimeoutMs) return;
    this.#mediaLost = true;
    // A user utterance cut by the drop is discarded (the rule in docs/protocol.md): half a sentence
    // is not a turn, and the user repeats it once the path is back.
    this.#echo.reset();
    this.#listening?.reset();
    this.#inbound?.reset();
    if (this.playout.active) this.#stopPlayback(true, true);
    this.safeEmit('media', { state: 'lost', at: this.#clock.wall(), silentMs: Math.round(silentMs) });
  }

  // Ends playback. On a media loss, only the audio sent before the last packet we received from the
  // client counts as heard: after that moment we have no evidence the path still carried anything.
  #stopPlayback(interrupted: boolean, mediaLost: boolean): void {
    if (!this.playout.active) return;
    const playout = this.playout.finish();
    const sentMs = playout.playedMs;
    const heardMs = mediaLost
      ? Math.max(0, Math.min(sentMs, Math.round(this.#lastRtpAt - this.#playbackStartedAt)))
      : sentMs;
    if (mediaLost && this.#playbackStarted) {
      playout.heardText = heardPart(playout.text, heardMs, playout.audioMs);
    }
    this.#playbackStarted = false;
    this.#sender.pause(); // the next answer starts a talkspurt
    this.#echo.reset();
    this.safeEmit('response', { phase: 'end', at: this.#clock.wall(), audioMs: playout.audioMs, heardMs, interrupted, playout });
  }

  #onRtp(packet: InboundRtp): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    this.#mediaSeen = true;
    if (this.#mediaLost) {
      this.#mediaLost = false;
      this.safeEmit('media', { state: 'restored', at: this.#clock.wall(), silentMs: Math.round(now - this.#lastRtpAt) });
    }
    this.#lastRtpAt = now;
    if (!this.#options.publish) return;
    this.safeEmit('rtp', packet);
    if (this.#ssrc !== packet.ssrc) {
      // A new source (client restarted its track or its peer): start the stream afresh.
      if (this.#ssrc !== null) this.jitterBuffer.reset();
      this.#ssrc = packet.ssrc;
      this.#captureClock.reset();
    }
    const outputs = this.jitterBuffer.push(packet, now, this.#clearedOutputs());
    if (outputs.length > 0) this.#consume(outputs);
    if (this.onDeadline) {
      const due = this.jitterBuffer.nextDeadlineMs();
      if (due !== null) this.onDeadline(due);
    }
  }

  #clearedOutputs(): JitterOutput[] {
    this.#outputs.length = 0;
    return this.#outputs;
  }

  #consume(outputs: JitterOutput[]): void {
    const inbound = this.#inbound;
    if (!inbound) return;
    for (const output of outputs) {
      // When the output's first sample was captured, on the media clock (see CaptureClock).
      inbound.push(output, this.#captureClock.map(output.timestamp, output.kind === 'packet' ? output.arrivalMs : null, this.#clock.now()));
      if (output.kind === 'packet') {
        this.#latency.record(this.#clock.now() - output.arrivalMs - output.holdMs);
      }
    }
  }

  #onFrame(frame: Int16Array, capturedAtMs: number): void {
    this.safeEmit('level', levelDb(frame));
    const listening = this.#listening;
    const host = this.#agent ? this : listening ? this.#respondingHost : null;
    if (!host) return;
    if (listening) {
      for (const event of listening.push(frame, host.playout.active, capturedAtMs)) this.safeEmit('listen', event, this.#clock.wall());
      return;
    }
    // Echo mode is half-duplex: while the answer plays, the microphone is not listened to.
    if (this.playout.active) return;
    const event = this.#echo.push(frame);
    if (!event) return;
    if (event.type === 'speechstart') return void this.safeEmit('speechstart', event.at);
    const { type: _type, audio, ...info } = event;
    this.safeEmit('utterance', info);
    if (audio) {
      this.playout.begin();
      this.playout.push({ samples: audio, sampleRate: SAMPLE_RATE });
      this.playout.end();
    }
  }
}
