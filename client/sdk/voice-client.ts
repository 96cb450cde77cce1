// VoiceClient: joins a voice session over /v1/signal, sends the microphone and plays the agent's audio.
import type { IceCandidateInit, IceServerInfo, ServerMessage } from '../../signaling/protocol.ts';
import type { ConversationTurn, SessionState } from '../../server/session-types.ts';
import { MicLevelMeter } from './mic-level-meter.ts';
import { SignalingSocket } from './signaling-socket.ts';
import { TypedEmitter } from './typed-emitter.ts';

export type JoinedInfo = Extract<ServerMessage, { type: 'joined' }>;
export type VoiceClientErrorInfo = { code: string; message: string; retryable: boolean };

export type VoiceClientEvents = {
  joined: [info: JoinedInfo];
  state: [state: SessionState, previous: SessionState | null];
  turn: [turn: ConversationTurn];
  error: [error: VoiceClientErrorInfo];
  connectionstatechange: [state: RTCPeerConnectionState];
  micLevel: [level: number];
  closed: [reason: string];
};

export interface VoiceClientOptions {
  /** Signaling URL; defaults to ws(s)://<current host>/v1/signal. */
  url: string;
  room?: string;
  mode?: string;
  /** Audio to send instead of capturing the microphone; the caller keeps ownership of its tracks. */
  mediaStream?: MediaStream;
  /** Where the agent's audio plays; a detached `<audio autoplay>` is created when absent. */
  audioElement?: HTMLAudioElement;
  pingIntervalMs: number;
  micLevelIntervalMs: number;
}
export const DEFAULT_VOICE_CLIENT_OPTIONS = { pingIntervalMs: 15_000, micLevelIntervalMs: 100 } as const;

export class VoiceClientError extends Error implements VoiceClientErrorInfo {
  override readonly name = 'VoiceClientError';
  constructor(readonly code: string, message: string, readonly retryable = false) {
    super(message);
  }
}

const invalidState = (message: string) => new DOMException(message, 'InvalidStateError');

export class VoiceClient extends TypedEmitter<VoiceClientEvents> {
  readonly turns: ConversationTurn[] = [];
  sessionId: string | null = null;
  resumeToken: string | null = null;
  iceServers: IceServerInfo[] = [];
  state: SessionState | null = null;

  readonly #options: VoiceClientOptions;
  #socket: SignalingSocket | undefined;
  #pc: RTCPeerConnection | undefined;
  #stream: MediaStream | undefined;
  #meter: MicLevelMeter | undefined;
  #audio: HTMLAudioElement | undefined;
  #joinWaiter: { resolve: (info: JoinedInfo) => void; reject: (err: Error) => void } | undefined;
  #pendingCandidates: (IceCandidateInit | null)[] = [];
  #started = false;
  #closed = false;

  constructor(options: Partial<VoiceClientOptions> = {}) {
    super();
    const url = options.url ?? `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/signal`;
    this.#options = { ...DEFAULT_VOICE_CLIENT_OPTIONS, ...options, url };
  }

  get connectionState(): RTCPeerConnectionState | 'new' {
    return this.#pc?.connectionState ?? 'new';
  }

  /** Joins, starts the microphone and sends the offer. Resolves with the `joined` message. */
  async connect(): Promise<JoinedInfo> {
    if (this.#closed || this.#started) throw invalidState('connect() may be called once');
    this.#started = true;
    const socket = (this.#socket = new SignalingSocket(this.#options.url, this.#options.pingIntervalMs));
    socket.on('message', (message) => this.#onMessage(message));
    socket.on('close', (code, reason) => this.#teardown(`signaling closed (${code}${reason ? `: ${reason}` : ''})`));
    try {
      const joined = socket.open().then(() => {
        socket.send({ type: 'join', room: this.#options.room, mode: this.#options.mode });
        return new Promise<JoinedInfo>((resolve, reject) => (this.#joinWaiter = { resolve, reject }));
      });
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
    this.#socket?.send({ type: 'leave' });
    this.#teardown('client disconnected');
  }

  getStats(selector?: MediaStreamTrack | null): Promise<RTCStatsReport> {
    if (!this.#pc || this.#closed) throw invalidState('no active peer connection');
    return this.#pc.getStats(selector);
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
    const pc = (this.#pc = new RTCPeerConnection({ iceServers: this.iceServers }));
    pc.onicecandidate = ({ candidate: c }) => {
      if (c && !c.candidate) return; // Firefox's per-generation end marker; the null event follows.
      const candidate = c && { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment };
      this.#socket?.send({ type: 'candidate', candidate });
    };
    pc.ontrack = ({ track: remote, streams }) => this.#play(streams[0] ?? new MediaStream([remote]));
    pc.onconnectionstatechange = () => this.safeEmit('connectionstatechange', pc.connectionState);
    // Every local offer, the first one included, comes from negotiationneeded (perfect negotiation).
    pc.onnegotiationneeded = () => void this.#sendOffer(pc);
    pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
    try {
      this.#meter = new MicLevelMeter(stream, this.#options.micLevelIntervalMs, (level) => this.safeEmit('micLevel', level));
    } catch (err) {
      console.warn('mic level meter unavailable', err);
    }
  }

  async #sendOffer(pc: RTCPeerConnection): Promise<void> {
    try {
      await pc.setLocalDescription();
      if (pc.localDescription?.type === 'offer') this.#socket?.send({ type: 'offer', sdp: pc.localDescription.sdp });
    } catch (err) {
      this.#fail('CLIENT_ERR_NEGOTIATION', err);
    }
  }

  async #applyRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
    const pc = this.#pc;
    if (!pc) return;
    try {
      // The client is the polite peer: a server offer during glare wins, and setRemoteDescription
      // rolls our pending offer back implicitly. negotiationneeded fires again afterwards if needed.
      await pc.setRemoteDescription(description);
      for (const candidate of this.#pendingCandidates.splice(0)) await this.#addCandidate(pc, candidate);
      if (description.type === 'offer') {
        await pc.setLocalDescription();
        if (pc.localDescription) this.#socket?.send({ type: 'answer', sdp: pc.localDescription.sdp });
      }
    } catch (err) {
      this.#fail('CLIENT_ERR_NEGOTIATION', err);
    }
  }

  async #addCandidate(pc: RTCPeerConnection, candidate: IceCandidateInit | null): Promise<void> {
    try {
      await pc.addIceCandidate(candidate ?? undefined);
    } catch (err) {
      console.warn('could not add a remote ICE candidate', err); // one bad candidate is not fatal
    }
  }

  #onMessage(message: ServerMessage): void {
    switch (message.type) {
      case 'joined':
        this.sessionId = message.sessionId;
        this.resumeToken = message.resumeToken;
        this.iceServers = message.iceServers;
        this.#joinWaiter?.resolve(message);
        this.#joinWaiter = undefined;
        this.safeEmit('joined', message);
        break;
      case 'offer':
      case 'answer':
        void this.#applyRemoteDescription({ type: message.type, sdp: message.sdp });
        break;
      case 'candidate':
        // Before the first remote description the browser would reject candidates: hold them.
        if (this.#pc?.remoteDescription) void this.#addCandidate(this.#pc, message.candidate);
        else this.#pendingCandidates.push(message.candidate);
        break;
      case 'state':
        this.state = message.state;
        this.safeEmit('state', message.state, message.previous);
        break;
      case 'turn':
        this.turns.push(message.turn);
        this.safeEmit('turn', message.turn);
        break;
      case 'error':
        this.#joinWaiter?.reject(new VoiceClientError(message.code, message.message, message.retryable));
        this.#joinWaiter = undefined;
        this.safeEmit('error', { code: message.code, message: message.message, retryable: message.retryable });
        break;
      case 'pong':
        break;
    }
  }

  #play(stream: MediaStream): void {
    this.#audio ??= this.#options.audioElement ?? document.createElement('audio');
    this.#audio.autoplay = true;
    this.#audio.srcObject = stream;
    this.#audio.play().catch((err) => console.warn('remote audio did not start', err));
  }

  #fail(code: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.safeEmit('error', { code, message, retryable: false });
  }

  #stopOwnedTracks(): void {
    if (this.#stream && this.#stream !== this.#options.mediaStream) for (const t of this.#stream.getTracks()) t.stop();
  }

  #teardown(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#joinWaiter?.reject(new VoiceClientError('CLIENT_ERR_CLOSED', reason, true));
    this.#joinWaiter = undefined;
    this.#meter?.close();
    this.#pc?.close();
    this.#socket?.close();
    this.#stopOwnedTracks();
    if (this.#audio) this.#audio.srcObject = null;
    this.safeEmit('closed', reason);
  }
}
