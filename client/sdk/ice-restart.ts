// ICE restart policy for one RTCPeerConnection: restart when ICE reports the path disconnected or
// failed, or when asked to (network change, resume, user); one restart at a time; restart again if
// the path has not recovered within `retryMs`. The restart offer itself is sent by the owner's
// negotiationneeded handler, like every offer of the client's.
import { TypedEmitter } from './typed-emitter.ts';

export type IceRestartTrigger = 'ice-disconnected' | 'ice-failed' | 'network-change' | 'resume' | 'manual';

export type IceRestartEvents = {
  restarting: [trigger: IceRestartTrigger | 'retry', attempt: number];
  /** New ICE credentials are in use and ICE is connected. */
  recovered: [durationMs: number];
  /** A retry found our restart offer still unanswered: it was probably lost, send it again. */
  staleoffer: [];
};

export const DEFAULT_ICE_RESTART_RETRY_MS = 3_000;

/** The ICE username fragment of a description (our single m-line has one). */
export const iceUfrag = (description: RTCSessionDescription | null): string | null =>
  /^a=ice-ufrag:(\S+)/m.exec(description?.sdp ?? '')?.[1] ?? null;

export class IceRestart extends TypedEmitter<IceRestartEvents> {
  readonly #pc: RTCPeerConnection;
  readonly #retryMs: number;
  /** The restart in flight: when it began and the local ufrag it replaces. */
  #inFlight: { since: number; ufrag: string | null; attempt: number } | null = null;
  #timer: number | undefined;
  #closed = false;

  constructor(pc: RTCPeerConnection, retryMs = DEFAULT_ICE_RESTART_RETRY_MS) {
    super();
    this.#pc = pc;
    this.#retryMs = retryMs;
    pc.addEventListener('iceconnectionstatechange', this.#onChange);
    pc.addEventListener('signalingstatechange', this.#onChange);
  }

  get inFlight(): boolean {
    return this.#inFlight !== null;
  }

  /** Starts a restart unless one is already in flight (or the connection never had a remote side). */
  request(trigger: IceRestartTrigger): boolean {
    if (this.#closed || this.#inFlight || this.#pc.signalingState === 'closed' || !this.#pc.remoteDescription) return false;
    this.#inFlight = { since: performance.now(), ufrag: iceUfrag(this.#pc.currentLocalDescription), attempt: 0 };
    this.#restart(trigger);
    return true;
  }

  close(): void {
    this.#closed = true;
    this.#inFlight = null;
    window.clearTimeout(this.#timer);
    this.#pc.removeEventListener('iceconnectionstatechange', this.#onChange);
    this.#pc.removeEventListener('signalingstatechange', this.#onChange);
  }

  #restart(trigger: IceRestartTrigger | 'retry'): void {
    const inFlight = this.#inFlight;
    if (!inFlight) return;
    inFlight.attempt++;
    this.#pc.restartIce();
    this.safeEmit('restarting', trigger, inFlight.attempt);
    window.clearTimeout(this.#timer);
    this.#timer = window.setTimeout(() => this.#onRetryDue(), this.#retryMs);
  }

  #onRetryDue(): void {
    if (this.#closed || !this.#inFlight || this.#finishIfRecovered()) return;
    if (this.#pc.signalingState === 'have-local-offer') {
      // Our restart offer is still unanswered. Another restartIce() would only queue one more
      // restart behind it: send the same offer again instead (the first copy may be lost).
      this.safeEmit('staleoffer');
      this.#timer = window.setTimeout(() => this.#onRetryDue(), this.#retryMs);
      return;
    }
    this.#restart('retry');
  }

  readonly #onChange = (): void => {
    if (this.#closed) return;
    if (this.#inFlight) {
      this.#finishIfRecovered();
      return;
    }
    const ice = this.#pc.iceConnectionState;
    if (ice === 'disconnected') this.request('ice-disconnected');
    else if (ice === 'failed') this.request('ice-failed');
  };

  // A restart is over once an offer/answer exchange put new local credentials in effect and ICE is
  // connected: ICE can stay "connected" through a restart on a healthy path, so the state alone
  // says nothing.
  #finishIfRecovered(): boolean {
    const inFlight = this.#inFlight;
    if (!inFlight) return false;
    const pc = this.#pc;
    const ice = pc.iceConnectionState;
    const ufrag = iceUfrag(pc.currentLocalDescription);
    if (pc.signalingState !== 'stable' || (ice !== 'connected' && ice !== 'completed') || ufrag === null || ufrag === inFlight.ufrag) return false;
    this.#inFlight = null;
    window.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.safeEmit('recovered', Math.round(performance.now() - inFlight.since));
    return true;
  }
}
