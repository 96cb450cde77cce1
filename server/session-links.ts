// Link health of the live sessions. A session is `reconnecting` while its socket or its media path
// is down (once it has connected at all), and returns to `listening` when both are back. While the
// socket is up and the media path is down, the server restarts ICE, again every
// `iceRestartRetryMs` until media returns or the reconnect window closes the session.
import type { Session } from './session.ts';
import type { PeerConnectionState } from '../media/peer.ts';

export interface ReconnectOutcome {
  success: boolean;
  /** From the start of the outage to recovery (or to giving up). */
  durationMs: number;
  /** What broke first. */
  cause: 'media' | 'signaling';
}

export interface LinkState {
  everConnected: boolean;
  /** What broke first in the outage in progress. */
  cause: 'media' | 'signaling' | null;
  restartTimer: NodeJS.Timeout | null;
  /** Closes the socket a session is attached to, when another one takes the session over. */
  evict: (() => void) | null;
  /** m-lines in the server's latest offer (rooms add one per remote participant). */
  mediaSections: number;
}

/** What the links need from the session directory. */
export interface LinkHooks {
  iceRestartRetryMs: number;
  /** The worker's ICE-restart offer for the session. */
  restartIce(sessionId: string): Promise<string>;
  offer(session: Session, sdp: string): void;
  reconnect(session: Session, outcome: ReconnectOutcome): void;
  iceRestart(session: Session): void;
  mediaLost(session: Session, detectionMs: number): void;
}

export class SessionLinks {
  readonly #links = new Map<string, LinkState>();
  readonly #hooks: LinkHooks;

  constructor(hooks: LinkHooks) {
    this.#hooks = hooks;
  }

  open(sessionId: string, evict: () => void): void {
    this.#links.set(sessionId, { everConnected: false, cause: null, restartTimer: null, evict, mediaSections: 1 });
  }

  get(sessionId: string): LinkState | undefined {
    return this.#links.get(sessionId);
  }

  /** The session ends: its link goes, and an outage still in progress counts as a failed reconnect. */
  remove(session: Session): void {
    const link = this.#links.get(session.id);
    this.#links.delete(session.id);
    if (link?.restartTimer) clearTimeout(link.restartTimer);
    if (session.state === 'reconnecting' && link?.cause && session.outageSince !== null) {
      this.#hooks.reconnect(session, { success: false, durationMs: Date.now() - session.outageSince, cause: link.cause });
    }
  }

  /** The peer connection's state, from the worker. */
  onConnection(session: Session, state: PeerConnectionState): void {
    const link = this.#links.get(session.id);
    if (!link) return;
    if (state === 'connected') {
      session.mediaUp = true;
      if (!link.everConnected) {
        link.everConnected = true;
        session.trySetState('connected');
        session.trySetState('listening');
        return;
      }
      this.update(session, 'recovered');
    } else if (state === 'failed' || state === 'disconnected') {
      if (!session.mediaUp) return;
      session.mediaUp = false;
      this.update(session, `ice_${state}`);
      this.restartIce(session);
    }
  }

  /** The worker's media watchdog: no packets for a while (`lost`), or packets again. */
  onMedia(session: Session, state: 'lost' | 'restored', silentMs: number): void {
    if (state === 'lost') {
      session.mediaUp = false;
      this.#hooks.mediaLost(session, silentMs);
      this.update(session, 'media_lost');
      this.restartIce(session);
    } else {
      session.mediaUp = true;
      this.update(session, 'recovered');
    }
  }

  /** Moves the session into or out of `reconnecting` from its socket and media state. */
  update(session: Session, reason: string): void {
    const link = this.#links.get(session.id);
    // Before the first connection there is nothing to recover: the session is still `connecting`.
    if (!link || session.closed || !link.everConnected) return;
    const down = !session.signalingUp || !session.mediaUp;
    if (down) {
      if (session.state !== 'reconnecting') {
        link.cause = session.mediaUp ? 'signaling' : 'media';
        session.outageSince = Date.now();
        session.trySetState('reconnecting', reason);
      }
      return;
    }
    if (session.state === 'reconnecting') {
      const durationMs = session.outageSince === null ? 0 : Date.now() - session.outageSince;
      const cause = link.cause ?? 'media';
      session.outageSince = null;
      link.cause = null;
      if (link.restartTimer) clearTimeout(link.restartTimer);
      link.restartTimer = null;
      session.trySetState(session.conversationState(), 'recovered');
      this.#hooks.reconnect(session, { success: true, durationMs, cause });
    }
  }

  /** Server-initiated ICE restart while the socket is up; retried until media returns or the session ends. */
  restartIce(session: Session): void {
    const link = this.#links.get(session.id);
    // A WHIP client restarts ICE itself (PATCH with If-Match: "*"): the server cannot offer to it.
    if (!link || session.closed || !session.signalingUp || session.mediaUp || session.access.transport === 'whip') return;
    if (link.restartTimer) clearTimeout(link.restartTimer);
    link.restartTimer = setTimeout(() => this.restartIce(session), this.#hooks.iceRestartRetryMs);
    this.#hooks.iceRestart(session);
    this.#hooks.restartIce(session.id).then(
      (sdp) => {
        if (!session.closed) this.#hooks.offer(session, sdp);
      },
      () => undefined, // the retry timer tries again
    );
  }
}
