// The client's RTCPeerConnection: one sendrecv audio transceiver carrying the microphone track,
// perfect negotiation as the polite peer, trickled candidates, and the ICE-restart policy.
// VoiceClient owns it and replaces it (same track, same <audio>) when a resume needs new media.
import type { ClientMessage, IceCandidateInit, IceServerInfo, ServerMessage } from '../../signaling/protocol.ts';
import { iceUfrag, IceRestart, type IceRestartTrigger } from './ice-restart.ts';
import { TypedEmitter } from './typed-emitter.ts';

export type PeerSignal = Extract<ClientMessage, { type: 'offer' | 'answer' | 'candidate' }>;
export type RemoteSignal = Extract<ServerMessage, { type: 'offer' | 'answer' | 'candidate' }>;

export type AudioPeerEvents = {
  /** A message for the server. */
  signal: [message: PeerSignal];
  /** The agent's audio (the session's own track). */
  remotestream: [stream: MediaStream];
  /** Rooms: another participant's audio, on the m-line `mid` (the server's `tracks` message says whose). */
  participantstream: [mid: string | null, stream: MediaStream];
  connectionstatechange: [state: RTCPeerConnectionState];
  icerestart: [trigger: IceRestartTrigger | 'retry', attempt: number];
  icerecovered: [durationMs: number];
  error: [code: string, message: string];
};

export interface AudioPeerOptions {
  iceServers: IceServerInfo[];
  iceRestartRetryMs: number;
}

export class AudioPeer extends TypedEmitter<AudioPeerEvents> {
  readonly #pc: RTCPeerConnection;
  readonly #iceRestart: IceRestart;
  /** Server candidates that arrived before the description they belong to. */
  #pendingCandidates: (IceCandidateInit | null)[] = [];
  /** Our candidates for a renegotiation offer that is not answered yet (see #onLocalCandidate). */
  #unsentCandidates: (IceCandidateInit | null)[] = [];
  #closed = false;

  constructor(track: MediaStreamTrack, stream: MediaStream, options: AudioPeerOptions) {
    super();
    const pc = (this.#pc = new RTCPeerConnection({ iceServers: options.iceServers }));
    pc.onicecandidate = ({ candidate: c }) => {
      if (c && !c.candidate) return; // Firefox's per-generation end marker; the null event follows.
      this.#onLocalCandidate(c && { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment });
    };
    pc.addEventListener('signalingstatechange', () => {
      if (pc.signalingState === 'stable') this.#sendUnsentCandidates();
    });
    pc.ontrack = ({ track: remote, streams, transceiver }) => {
      const remoteStream = streams[0] ?? new MediaStream([remote]);
      if (transceiver === own) this.safeEmit('remotestream', remoteStream);
      else this.safeEmit('participantstream', transceiver.mid, remoteStream);
    };
    pc.onconnectionstatechange = () => this.safeEmit('connectionstatechange', pc.connectionState);
    // Every local offer, the first one and ICE restarts included, comes from negotiationneeded.
    pc.onnegotiationneeded = () => void this.#sendOffer();
    this.#iceRestart = new IceRestart(pc, options.iceRestartRetryMs);
    this.#iceRestart.on('restarting', (trigger, attempt) => this.safeEmit('icerestart', trigger, attempt));
    this.#iceRestart.on('recovered', (durationMs) => this.safeEmit('icerecovered', durationMs));
    this.#iceRestart.on('staleoffer', () => this.resendOffer());
    const own = pc.addTransceiver(track, { direction: 'sendrecv', streams: [stream] });
  }

  get connectionState(): RTCPeerConnectionState {
    return this.#pc.connectionState;
  }

  /** Whether this connection can carry on after a resume (`media: 'keep'`). */
  get alive(): boolean {
    return !this.#closed && this.#pc.connectionState !== 'closed' && this.#pc.connectionState !== 'failed';
  }

  get iceConnected(): boolean {
    const ice = this.#pc.iceConnectionState;
    return ice === 'connected' || ice === 'completed';
  }

  /** ICE username fragment of our latest local description (pending or current). */
  get localUfrag(): string | null {
    return iceUfrag(this.#pc.localDescription);
  }

  get restartingIce(): boolean {
    return this.#iceRestart.inFlight;
  }

  /** Restarts ICE unless a restart is already in flight; returns whether one was started. */
  restartIce(trigger: IceRestartTrigger): boolean {
    return this.#iceRestart.request(trigger);
  }

  /** Sends our outstanding offer again (its first copy may have been lost with the socket). */
  resendOffer(): void {
    const local = this.#pc.localDescription;
    if (!this.#closed && this.#pc.signalingState === 'have-local-offer' && local?.type === 'offer') {
      this.#emitSignal({ type: 'offer', sdp: local.sdp });
    }
  }

  handle(message: RemoteSignal): void {
    if (this.#closed) return;
    if (message.type === 'candidate') {
      // Candidates of a restart can beat its answer: hold them until the answer is applied.
      if (this.#pc.remoteDescription && this.#pc.signalingState !== 'have-local-offer') void this.#addCandidate(message.candidate);
      else this.#pendingCandidates.push(message.candidate);
      return;
    }
    void this.#applyRemoteDescription({ type: message.type, sdp: message.sdp });
  }

  getStats(selector?: MediaStreamTrack | null): Promise<RTCStatsReport> {
    return this.#pc.getStats(selector);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#iceRestart.close();
    this.#pc.close();
    this.removeAllListeners();
  }

  // Candidates of a renegotiation offer (an ICE restart) wait for its answer: if the offer crossed
  // one of the server's, the server refuses it and would refuse its candidates too (unknown ICE
  // ufrag), so after the rollback they are dropped. The first offer has no rival: it trickles at once.
  #onLocalCandidate(candidate: IceCandidateInit | null): void {
    if (this.#pc.signalingState === 'have-local-offer' && this.#pc.currentRemoteDescription) this.#unsentCandidates.push(candidate);
    else this.#emitSignal({ type: 'candidate', candidate });
  }

  #sendUnsentCandidates(): void {
    const ufrag = this.localUfrag;
    for (const candidate of this.#unsentCandidates.splice(0)) {
      if (!candidate?.usernameFragment || candidate.usernameFragment === ufrag) this.#emitSignal({ type: 'candidate', candidate });
    }
  }

  #emitSignal(message: PeerSignal): void {
    if (!this.#closed) this.safeEmit('signal', message);
  }

  async #sendOffer(): Promise<void> {
    const pc = this.#pc;
    try {
      await pc.setLocalDescription();
      if (pc.signalingState === 'have-local-offer' && pc.localDescription?.type === 'offer') this.#emitSignal({ type: 'offer', sdp: pc.localDescription.sdp });
    } catch (err) {
      this.#fail(err);
    }
  }

  async #applyRemoteDescription(description: RTCSessionDescriptionInit): Promise<void> {
    const pc = this.#pc;
    if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') {
      // The answer to an offer that was rolled back (glare) or answered already (a re-sent offer).
      console.warn(`ignoring an answer in signaling state ${pc.signalingState}`);
      return;
    }
    try {
      // The client is the polite peer: a server offer during glare wins, and setRemoteDescription
      // rolls our pending offer back implicitly. negotiationneeded fires again afterwards if needed.
      await pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        await pc.setLocalDescription();
        if (pc.localDescription) this.#emitSignal({ type: 'answer', sdp: pc.localDescription.sdp });
      }
      if (pc.signalingState === 'stable') for (const candidate of this.#pendingCandidates.splice(0)) await this.#addCandidate(candidate);
    } catch (err) {
      this.#fail(err);
    }
  }

  async #addCandidate(candidate: IceCandidateInit | null): Promise<void> {
    try {
      await this.#pc.addIceCandidate(candidate ?? undefined);
    } catch (err) {
      if (!this.#closed) console.warn('could not add a remote ICE candidate', err); // one bad candidate is not fatal
    }
  }

  #fail(err: unknown): void {
    if (this.#closed) return;
    this.safeEmit('error', 'CLIENT_ERR_NEGOTIATION', err instanceof Error ? err.message : String(err));
  }
}
