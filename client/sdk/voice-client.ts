// VoiceClient: joins a voice session over /v1/signal, sends the microphone and plays the agent's
// audio. It carries the session through network trouble: an ICE restart while the socket is up,
// and a resume on a new socket (keeping the peer connection, or replacing it) when the socket is lost.
import type { IceServerInfo, QualityInfo, ServerMessage, SessionMode } from '../../signaling/protocol.ts';
import type { ConversationTurn, SessionState } from '../../server/session-types.ts';
import { AudioPeer, type PeerSignal } from './audio-peer.ts';
import { LinkOutage } from './link-outage.ts';
import { MicLevelMeter } from './mic-level-meter.ts';
import { watchNetwork } from './network-watch.ts';
import { RemoteAudio } from './remote-audio.ts';
import { SessionLink, type ResumeRequest } from './session-link.ts';
import { TypedEmitter } from './typed-emitter.ts';
import { DEFAULT_VOICE_CLIENT_OPTIONS, type VoiceClientOptions } from './voice-client-options.ts';
import type { JoinedInfo, LinkCause, ResumedInfo, VoiceClientErrorInfo, VoiceClientEvents } from './voice-client-events.ts';

export type { JoinedInfo, LinkCause, ResumedInfo, RoomEvent, SpeechEvent, TranscriptInfo, VoiceClientErrorInfo, VoiceClientEvents } from './voice-client-events.ts';
export { DEFAULT_VOICE_CLIENT_OPTIONS, type VoiceClientOptions } from './voice-client-options.ts';

export class VoiceClientError extends Error implements VoiceClientErrorInfo {
  override readonly name = 'VoiceClientError';
  constructor(readonly code: string, message: string, readonly retryable = false) {
    super(message);
  }
}

const invalidState = (message: string) => new DOMException(message, 'InvalidStateError');

export class VoiceClient extends TypedEmitter<VoiceClientEvents> {
  /** The conversation so far, in index order, each turn once. */
  readonly turns: ConversationTurn[] = [];
  sessionId: string | null = null;
  /** Single use: replaced by every successful resume. */
  resumeToken: string | null = null;
  iceServers: IceServerInfo[] = [];
  state: SessionState | null = null;
  /** The mode the server runs the session in, from `joined`. */
  mode: SessionMode | null = null;
  /** The last link quality report from the server. */
  quality: QualityInfo | null = null;

  readonly #options: VoiceClientOptions;
  readonly #link: SessionLink;
  #peer: AudioPeer | undefined;
  #stream: MediaStream | undefined;
  #track: MediaStreamTrack | undefined;
  #meter: MicLevelMeter | undefined;
  readonly #audio: RemoteAudio;
  readonly #outage = new LinkOutage({
    reconnecting: (cause) => this.safeEmit('reconnecting', cause),
    reconnected: (info) => this.safeEmit('reconnected', info),
  });
  #joinWaiter: { resolve: (info: JoinedInfo) => void; reject: (err: Error) => void } | undefined;
  /** Answers and candidates produced while the socket was down, sent after the resume. */
  #held: PeerSignal[] = [];
  #muted = false;
  #serverMuted = false;
  #unwatchNetwork: (() => void) | undefined;
  #started = false;
  #closed = false;

  constructor(options: Partial<VoiceClientOptions> = {}) {
    super();
    const url = options.url ?? `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/signal`;
    this.#options = { ...DEFAULT_VOICE_CLIENT_OPTIONS, ...options, url };
    this.#audio = new RemoteAudio(this.#options.audioElement);
    this.#link = new SessionLink(this.#options, () => this.#resumeRequest());
    this.#link.on('message', (message) => this.#onMessage(message));
    this.#link.on('lost', () => this.#linkDown('signaling'));
    this.#link.on('ended', (reason) => this.#teardown(reason));
  }

  get connectionState(): RTCPeerConnectionState | 'new' {
    return this.#peer?.connectionState ?? 'new';
  }

  /** `reconnecting` from `reconnecting` to `reconnected`, else `ok`. */
  get link(): 'ok' | 'reconnecting' {
    return this.#outage.active ? 'reconnecting' : 'ok';
  }

  get muted(): boolean {
    return this.#muted;
  }

  /**
   * Joins, starts the microphone and sends the offer. Resolves with the `joined` message.
   * `mode` here overrides the constructor's.
   */
  async connect(options: { mode?: SessionMode } = {}): Promise<JoinedInfo> {
    if (this.#closed || this.#started) throw invalidState('connect() may be called once');
    this.#started = true;
    this.#unwatchNetwork = watchNetwork(() => this.#onNetworkChange());
    try {
      const token = await this.#accessToken();
      const join = { type: 'join' as const, room: this.#options.room, mode: options.mode ?? this.#options.mode, ...(token ? { token } : {}) };
      const joined = this.#link.join(join).then(
        () => new Promise<JoinedInfo>((resolve, reject) => (this.#joinWaiter = { resolve, reject })),
      );
      const [info, stream] = await Promise.all([joined, this.#acquireAudio()]);
      this.#startMedia(stream);
      return info;
    } catch (err) {
      this.disconnect();
      throw err;
    }
  }

  /** Leaves the session and releases the socket, the peer connection and the microphone. Idempotent. */
  disconnect(): void {
    if (this.#closed) return;
    this.#link.send({ type: 'leave' });
    this.#teardown('client disconnected');
  }

  /** Mutes or unmutes the microphone, and tells the server so that it does not take the silence for a dead path. */
  mute(muted: boolean): void {
    if (this.#closed) throw invalidState('the client is closed');
    this.#muted = muted;
    if (this.#track) this.#track.enabled = !muted;
    this.#sendMute();
  }

  /** Restarts ICE now. False when a restart is already under way or media has not started. */
  restartIce(): boolean {
    if (this.#closed) throw invalidState('the client is closed');
    return this.#peer?.restartIce('manual') ?? false;
  }

  /**
   * Test hook: the network dies under the session. The socket is dropped as if broken (so the
   * client resumes on a new one) and ICE restarts. With `offline`, resume attempts wait for it to
   * settle; with `loseMedia`, the peer connection is closed too, so the resume asks for new media.
   */
  simulateNetworkDrop(options: { offline?: PromiseLike<unknown>; loseMedia?: boolean } = {}): void {
    if (this.#closed || !this.sessionId) throw invalidState('no session to drop');
    const offline = options.offline && Promise.resolve(options.offline).then(() => undefined, () => undefined);
    this.#link.drop('simulated network drop', offline);
    if (options.loseMedia) {
      this.#peer?.close();
      this.#linkDown('media');
    } else {
      this.#peer?.restartIce('network-change');
    }
  }

  getStats(selector?: MediaStreamTrack | null): Promise<RTCStatsReport> {
    if (!this.#peer || this.#closed) throw invalidState('no active peer connection');
    return this.#peer.getStats(selector);
  }

  async #acquireAudio(): Promise<MediaStream> {
    const stream = this.#options.mediaStream ?? await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.#stream = stream;
    if (this.#closed) this.#stopOwnedTracks();
    return stream;
  }

  #startMedia(stream: MediaStream): void {
    const track = stream.getAudioTracks()[0];
    if (!track) throw new VoiceClientError('CLIENT_ERR_NO_AUDIO', 'the media stream has no audio track');
    if (this.#closed) throw new VoiceClientError('CLIENT_ERR_CLOSED', 'closed while starting');
    this.#track = track;
    track.enabled = !this.#muted;
    this.#startPeer();
    try {
      this.#meter = new MicLevelMeter(stream, this.#options.micLevelIntervalMs, (level) => this.safeEmit('micLevel', level));
    } catch (err) {
      console.warn('mic level meter unavailable', err);
    }
  }

  /** A new peer connection for the same track; its remote audio plays in the same element. */
  #startPeer(): void {
    if (!this.#track || !this.#stream) return;
    const peer = (this.#peer = new AudioPeer(this.#track, this.#stream, {
      iceServers: this.iceServers,
      iceRestartRetryMs: this.#options.iceRestartRetryMs,
    }));
    peer.on('signal', (message) => this.#onPeerSignal(peer, message));
    peer.on('remotestream', (stream) => this.#audio.playAgent(stream));
    peer.on('participantstream', (mid, stream) => this.#audio.playParticipant(mid, stream));
    peer.on('connectionstatechange', (state) => {
      this.safeEmit('connectionstatechange', state);
      if (state === 'connected' && !peer.restartingIce) this.#linkUp('media');
    });
    peer.on('icerestart', () => this.#linkDown('media'));
    peer.on('icerecovered', () => this.#linkUp('media'));
    peer.on('error', (code, message) => this.safeEmit('error', { code, message, retryable: false }));
  }

  #onPeerSignal(peer: AudioPeer, message: PeerSignal): void {
    if (peer !== this.#peer) return;
    if (this.#link.send(message)) return;
    // The socket is down. An offer is re-sent from the peer's state after the resume; the rest waits.
    if (message.type !== 'offer') this.#held.push(message);
  }

  async #resumeRequest(): Promise<ResumeRequest | null> {
    if (!this.sessionId || !this.resumeToken) return null;
    const token = await this.#accessToken();
    // Read after the token arrived: a turn may have come in meanwhile.
    const { sessionId, resumeToken } = this;
    if (!sessionId || !resumeToken) return null;
    const last = this.turns[this.turns.length - 1];
    return { type: 'resume', sessionId, resumeToken, lastTurnIndex: last?.index ?? -1, media: this.#peer?.alive ? 'keep' : 'new', ...(token ? { token } : {}) };
  }

  async #accessToken(): Promise<string | undefined> {
    const { token } = this.#options;
    return typeof token === 'function' ? token() : token;
  }

  #onResumed(message: ResumedInfo): void {
    this.resumeToken = message.resumeToken;
    this.mode = message.mode;
    const peer = this.#peer;
    if (message.media === 'kept' && peer && !peer.alive) {
      // The server kept a peer connection ours can no longer talk to: resume again, asking for new media.
      this.#link.drop('the peer connection died during the resume');
      return;
    }
    if (message.state !== this.state) this.#setState(message.state, this.state);
    for (const turn of message.missedTurns) this.#addTurn(turn);
    if (message.media === 'new' || !peer) {
      this.#held = [];
      peer?.close();
      this.#linkDown('media');
      this.#startPeer(); // its negotiationneeded sends the offer
    } else {
      this.#flushHeld(peer);
      if (!peer.iceConnected) peer.restartIce('resume');
    }
    if (this.#muted !== this.#serverMuted) this.#sendMute();
    this.safeEmit('resumed', message);
    this.#linkUp('signaling');
  }

  // After a resume with media kept: the answer first (the server may be waiting on it), then our
  // unanswered offer, then the candidates of the current ICE generation.
  #flushHeld(peer: AudioPeer): void {
    const held = this.#held.splice(0);
    for (const message of held) if (message.type === 'answer') this.#link.send(message);
    peer.resendOffer();
    const ufrag = peer.localUfrag;
    for (const message of held) {
      if (message.type !== 'candidate') continue;
      const fragment = message.candidate?.usernameFragment;
      if (!fragment || fragment === ufrag) this.#link.send(message);
    }
  }

  #onMessage(message: ServerMessage): void {
    switch (message.type) {
      case 'joined':
        this.sessionId = message.sessionId;
        this.resumeToken = message.resumeToken;
        this.iceServers = message.iceServers;
        this.mode = message.mode;
        if (this.#muted) this.#sendMute();
        this.#joinWaiter?.resolve(message);
        this.#joinWaiter = undefined;
        this.safeEmit('joined', message);
        break;
      case 'resumed':
        this.#onResumed(message);
        break;
      case 'offer':
      case 'answer':
      case 'candidate':
        this.#peer?.handle(message);
        break;
      case 'state':
        this.#setState(message.state, message.previous);
        break;
      case 'turn':
        this.#addTurn(message.turn);
        break;
      case 'history':
        for (const turn of message.turns) this.#addTurn(turn);
        break;
      case 'transcript':
        this.safeEmit('transcript', { role: message.role, text: message.text, final: message.final });
        break;
      case 'speech':
        this.safeEmit('speech', message.event);
        break;
      case 'quality':
        this.quality = message.quality;
        this.safeEmit('quality', message.quality);
        break;
      case 'error':
        this.#onError({ code: message.code, message: message.message, retryable: message.retryable });
        break;
      case 'pong':
        break;
      case 'room':
      case 'participant':
      case 'active_speaker':
      case 'agent':
      case 'tracks':
        this.safeEmit('room', message);
        break;
    }
  }

  #onError(error: VoiceClientErrorInfo): void {
    // Our offer crossed one of the server's: we answer the server's, and the crossed one is moot.
    if (error.code === 'SIG_ERR_GLARE') return;
    this.#joinWaiter?.reject(new VoiceClientError(error.code, error.message, error.retryable));
    this.#joinWaiter = undefined;
    this.safeEmit('error', error);
  }

  #setState(state: SessionState, previous: SessionState | null): void {
    this.state = state;
    this.safeEmit('state', state, previous);
  }

  /** Adds a turn unless it is known (by id or index), keeping index order; emits `turn` for new ones. */
  #addTurn(turn: ConversationTurn): void {
    if (this.turns.some((t) => t.turnId === turn.turnId || t.index === turn.index)) return;
    let at = this.turns.length;
    while (at > 0 && this.turns[at - 1].index > turn.index) at--;
    this.turns.splice(at, 0, turn);
    this.safeEmit('turn', turn);
  }

  #sendMute(): void {
    if (this.#link.send({ type: 'mute', muted: this.#muted })) this.#serverMuted = this.#muted;
  }

  #linkDown(cause: LinkCause): void {
    if (!this.#closed) this.#outage.down(cause);
  }

  #linkUp(cause: LinkCause): void {
    if (!this.#closed) this.#outage.up(cause);
  }

  // The old path may be dead: restart ICE, check the socket, and skip any backoff delay.
  #onNetworkChange(): void {
    if (this.#closed) return;
    this.#peer?.restartIce('network-change');
    this.#link.probe();
    this.#link.resumeNow();
  }

  #stopOwnedTracks(): void {
    if (this.#stream && this.#stream !== this.#options.mediaStream) for (const t of this.#stream.getTracks()) t.stop();
  }

  #teardown(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#joinWaiter?.reject(new VoiceClientError('CLIENT_ERR_CLOSED', reason, true));
    this.#joinWaiter = undefined;
    this.#outage.clear();
    this.#unwatchNetwork?.();
    this.#meter?.close();
    this.#peer?.close();
    this.#link.close();
    this.#stopOwnedTracks();
    this.#audio.stop();
    this.safeEmit('closed', reason);
  }
}
