// The session directory: admission (capacity), lookup, media event routing, resume, idle timeout,
// maximum duration, reconnect window, persistence of history, and cleanup that releases a
// session's media in its worker. Link health (reconnecting, server-initiated ICE restarts) is
// SessionLinks'.
import { TypedEmitter } from '../media/typed-emitter.ts';
import { Session, FULL_ACCESS, type SessionAccess } from './session.ts';
import { SignalingError, ERRORS, type ErrorCode } from '../signaling/errors.ts';
import type { MediaPool, MediaSessionEvent } from './media-pool.ts';
import type { Config } from './config.ts';
import type { SessionMode, QualityInfo } from '../signaling/protocol.ts';
import type { ConversationTurn, SessionState } from './session-types.ts';
import type { SessionStore } from './session-store.ts';
import type { ConversationWorkerEvent } from '../media/conversation-events.ts';
import { SessionRecorder } from './session-recorder.ts';
import { RoomDirectory } from './room-directory.ts';
import { SessionLinks, type ReconnectOutcome } from './session-links.ts';

export type { ReconnectOutcome };

export type SessionManagerEvents = {
  sessioncreated: [session: Session];
  sessionclosed: [session: Session, reason: string];
  statechange: [session: Session, state: SessionState, previous: SessionState];
  /** The media path was found dead `detectionMs` after its last packet. */
  medialost: [session: Session, detectionMs: number];
  reconnect: [session: Session, outcome: ReconnectOutcome];
  icerestart: [session: Session, initiator: 'server'];
  quality: [session: Session, quality: QualityInfo];
  turn: [session: Session, turn: ConversationTurn];
  storeerror: [error: Error];
  /** An error code was reported to a client (by the directory or by the signaling edge). */
  errorreported: [code: ErrorCode];
  /** Agent modes: a finished answer's stage timings, for telemetry. */
  agentturn: [session: Session, turn: ConversationTurn];
  /** A join was refused: the server is full or draining. */
  refused: [reason: 'capacity' | 'draining'];
};

export interface ResumeResult {
  session: Session;
  resumeToken: string;
  missedTurns: ConversationTurn[];
  media: 'kept' | 'new';
}

export class SessionManager extends TypedEmitter<SessionManagerEvents> {
  readonly #sessions = new Map<string, Session>();
  readonly #links: SessionLinks;
  readonly #config: Readonly<Config>;
  readonly #media: MediaPool;
  readonly #sweep: NodeJS.Timeout;
  /** Sessions whose media close is still being confirmed by their worker (id -> worker index). */
  readonly #mediaClosing = new Map<string, number>();
  #releaseWaiters: (() => void)[] = [];
  readonly #recorder: SessionRecorder;
  #draining = false;
  /** Who is in which room; room events reach the participants' sockets through it. */
  readonly rooms: RoomDirectory;

  constructor(config: Readonly<Config>, media: MediaPool, store: SessionStore) {
    super();
    this.#config = config;
    this.#media = media;
    this.#links = new SessionLinks({
      iceRestartRetryMs: config.iceRestartRetryMs,
      restartIce: (id) => media.restartIce(id),
      offer: (session, sdp) => this.#offerToClient(session, sdp),
      reconnect: (session, outcome) => this.safeEmit('reconnect', session, outcome),
      iceRestart: (session) => this.safeEmit('icerestart', session, 'server'),
      mediaLost: (session, detectionMs) => this.safeEmit('medialost', session, detectionMs),
    });
    this.rooms = new RoomDirectory(config.rooms, (id, message) => this.#sessions.get(id)?.send(message));
    this.rooms.on('roomclosed', (room) => media.closeRoom(room));
    this.rooms.on('agentmoved', (_room, sessionId) => media.designateAgent(sessionId));
    media.on('activespeaker', (room, participantId) => this.rooms.setActiveSpeaker(room, participantId));
    this.#recorder = new SessionRecorder(store, (error) => this.safeEmit('storeerror', error));
    media.on('session', (event) => this.#onMediaEvent(event));
    media.on('activity', (ids) => {
      for (const id of ids) this.#sessions.get(id)?.touch();
    });
    media.on('workerexit', (index, ids) => {
      for (const [id, worker] of this.#mediaClosing) if (worker === index) this.#mediaClosing.delete(id);
      this.#notifyReleased();
      for (const id of ids) {
        const session = this.#sessions.get(id);
        if (!session) continue;
        this.#sendError(session, 'MEDIA_ERR_WORKER_DIED', `the media worker hosting this session stopped (worker ${index})`);
        this.close(session, 'media_worker_died', 'error');
      }
    });
    const sweepEvery = Math.max(50, Math.min(1000, Math.floor(Math.min(config.idleTimeoutMs, config.reconnectWindowMs) / 4)));
    this.#sweep = setInterval(() => this.#expire(), sweepEvery);
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Sessions whose worker has not yet confirmed that their media is released. */
  get mediaClosing(): number {
    return this.#mediaClosing.size;
  }

  /** Resolves once every closed session's worker has confirmed its media is released. */
  mediaReleased(): Promise<void> {
    if (this.#mediaClosing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#releaseWaiters.push(resolve));
  }

  /** Resolves once every write to the session store issued so far has finished. */
  flush(): Promise<void> {
    return this.#recorder.flush();
  }

  get(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  all(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  /**
   * Admits a session; returns it with its first resume token. `identity` (the access token's `sub`)
   * may hold at most `limits.sessionsPerIdentity` live sessions; null = internal, not counted.
   */
  create(
    room: string | undefined,
    mode: SessionMode,
    evict: () => void,
    identity: string | null = null,
    access: Readonly<SessionAccess> = FULL_ACCESS,
  ): { session: Session; resumeToken: string } {
    if (this.#draining) {
      this.safeEmit('refused', 'draining');
      throw new SignalingError('SERVER_ERR_DRAINING', 'the server is draining for a restart; join another server or retry');
    }
    if (this.#sessions.size >= this.#config.maxSessions) {
      this.safeEmit('refused', 'capacity');
      throw new SignalingError('SESSION_ERR_CAPACITY', 'the server is at capacity; retry later or on another server');
    }
    if (identity !== null && this.sessionsOf(identity) >= this.#config.limits.sessionsPerIdentity) {
      throw new SignalingError('SESSION_ERR_IDENTITY_LIMIT', `"${identity}" already has ${this.#config.limits.sessionsPerIdentity} sessions; leave one first`);
    }
    const session = new Session(room, mode, identity, access);
    const seat = { ...this.rooms.admit(session.room, session.id, identity), subscribe: access.subscribe }; // throws ROOM_ERR_FULL
    const resumeToken = session.rotateResumeToken();
    this.#sessions.set(session.id, session);
    this.#links.open(session.id, evict);
    session.on('statechange', (state, previous) => {
      this.#recorder.saveRecord(session); // the stored record (HTTP history) shows the live state
      this.safeEmit('statechange', session, state, previous);
    });
    session.on('turn', (turn) => {
      this.#recorder.appendTurn(session, turn);
      this.safeEmit('turn', session, turn);
    });
    session.workerIndex = this.#media.open(session.id, {
      mode,
      echo: { ...this.#config.echo },
      voice: { language: this.#config.voice.language },
      jitterBuffer: { ...this.#config.jitterBuffer },
      mediaTimeoutMs: this.#config.mediaTimeoutMs,
      publish: access.publish,
    }, seat);
    // Without the publish grant its audio reaches no one (the worker drops it): muted for good, as
    // the room is told, and silence from it is not a lost media path.
    if (!access.publish) this.setMuted(session, true);
    this.#recorder.saveRecord(session);
    this.safeEmit('sessioncreated', session);
    return { session, resumeToken };
  }

  /** Live sessions (reconnecting ones included) held by `identity`. */
  sessionsOf(identity: string): number {
    let count = 0;
    for (const session of this.#sessions.values()) if (session.identity === identity) count++;
    return count;
  }

  /** The client's socket went away. The session waits for a resume within the reconnect window. */
  detach(session: Session): void {
    const link = this.#links.get(session.id);
    if (!link || session.closed) return;
    session.attach(null);
    link.evict = null;
    session.signalingUp = false;
    if (!link.everConnected) {
      // Nothing to come back to: no media was ever connected and no turn taken.
      this.close(session, 'socket_closed');
      return;
    }
    this.#links.update(session, 'signaling_lost');
  }

  /**
   * Reattaches a session to a new socket. Any failure (unknown session, closed, wrong, reused or
   * expired token) is one and the same error, so a guesser learns nothing.
   */
  async resume(
    sessionId: string,
    token: string,
    lastTurnIndex: number,
    media: 'keep' | 'new',
    sink: (m: Parameters<Session['send']>[0]) => void,
    evict: () => void,
  ): Promise<ResumeResult> {
    const session = this.#sessions.get(sessionId);
    const link = this.#links.get(sessionId);
    if (!session || !link || session.closed || !session.resumeTokenMatches(token)) {
      throw new SignalingError('SESSION_ERR_RESUME_REFUSED', 'resume refused: start a new session');
    }
    // Replace the peer first: if that fails, the token is still valid and the client can retry.
    let mediaResult: 'kept' | 'new' = 'kept';
    if (media === 'new') {
      await this.#media.replacePeer(session.id);
      if (session.closed) throw new SignalingError('SESSION_ERR_RESUME_REFUSED', 'resume refused: start a new session');
      session.mediaUp = false;
      link.cause ??= 'media';
      link.mediaSections = 1;
      mediaResult = 'new';
    }
    const resumeToken = session.rotateResumeToken(); // single use: the presented token dies here
    this.#recorder.saveRecord(session);
    const previousEvict = link.evict;
    link.evict = evict;
    if (previousEvict) previousEvict(); // an old socket that had not noticed it was dead
    session.attach(sink);
    session.signalingUp = true;
    session.touch();
    this.#links.update(session, mediaResult === 'new' ? 'peer_replaced' : 'recovered');
    // Media still down over a kept peer: offer an ICE restart on the new socket (any restart offer
    // sent before went down with the old one).
    if (media === 'keep' && !session.mediaUp && link.everConnected) this.#links.restartIce(session);
    // A room's server offer sent while the socket was down went with it: send it again.
    else if (media === 'keep') this.#media.renegotiate(session.id);
    const missedTurns = session.history.filter((t) => t.index > lastTurnIndex);
    return { session, resumeToken, missedTurns, media: mediaResult };
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Stops admitting sessions and tells every client the server is going away. */
  startDrain(deadlineMs: number): void {
    if (this.#draining) return;
    this.#draining = true;
    for (const session of this.#sessions.values()) session.send({ type: 'draining', deadlineMs });
  }

  /** How many m-lines the client's SDP may have: those of the server's latest offer (at least one). */
  mediaSectionsOf(session: Session): number {
    return this.#links.get(session.id)?.mediaSections ?? 1;
  }

  #offerToClient(session: Session, sdp: string): void {
    if (session.access.transport === 'whip') return; // never asked to: it subscribes to no one
    const link = this.#links.get(session.id);
    if (link) link.mediaSections = Math.max(1, sdp.match(/^m=/gm)?.length ?? 1);
    session.send({ type: 'offer', sdp });
  }

  /** Counts an error code sent to a client by the signaling edge. */
  reportError(code: ErrorCode): void {
    this.safeEmit('errorreported', code);
  }

  #sendError(session: Session, code: ErrorCode, message: string): void {
    session.sendError(code, message, ERRORS[code].retryable);
    this.safeEmit('errorreported', code);
  }

  setMuted(session: Session, muted: boolean): void {
    this.#media.setMuted(session.id, muted);
    this.rooms.setMuted(session.id, muted);
  }

  close(session: Session, reason: string, finalState: 'disconnected' | 'error' = 'disconnected'): void {
    if (!this.#sessions.delete(session.id)) return;
    this.#links.remove(session);
    const worker = this.#media.workerOf(session.id);
    if (worker !== null) {
      this.#mediaClosing.set(session.id, worker);
      this.#media.close(session.id);
    }
    this.rooms.leave(session.id);
    session.close(reason, finalState);
    this.#recorder.closeSession(session, reason);
    this.safeEmit('sessionclosed', session, reason);
  }

  /** Ends every session, telling each client first (retryable: another server can take it). */
  shutdown(): void {
    for (const session of [...this.#sessions.values()]) {
      this.#sendError(session, 'SERVER_ERR_SHUTDOWN', 'the server is shutting down');
      this.close(session, 'server_shutdown');
    }
  }

  stop(): void {
    clearInterval(this.#sweep);
  }

  #onMediaEvent(event: MediaSessionEvent): void {
    if (event.ev === 'closed') {
      this.#mediaClosing.delete(event.sessionId);
      this.#notifyReleased();
      return;
    }
    const session = this.#sessions.get(event.sessionId);
    const link = this.#links.get(event.sessionId);
    if (!session || !link) return;
    switch (event.ev) {
      case 'candidate':
        session.send({ type: 'candidate', candidate: event.candidate });
        return;
      case 'tracks':
        session.send({ type: 'tracks', tracks: event.tracks });
        return;
      case 'offer':
        this.#offerToClient(session, event.sdp);
        return;
      case 'connection':
        this.#links.onConnection(session, event.state);
        return;
      case 'media':
        this.#links.onMedia(session, event.state, event.silentMs);
        return;
      case 'quality':
        session.send({ type: 'quality', quality: event.report });
        this.safeEmit('quality', session, event.report);
        return;
      case 'speech':
        session.touch();
        return;
      case 'utterance':
        if (event.accepted) session.onUtterance(event);
        return;
      case 'response':
        if (event.phase === 'start') session.onResponseStart(event.at);
        else session.onResponseEnd(event.at, event.audioMs, event.heardMs, event.interrupted);
        return;
      case 'conversation':
        this.#onConversationEvent(session, event.event);
        return;
    }
  }

  #onConversationEvent(session: Session, event: ConversationWorkerEvent): void {
    switch (event.kind) {
      case 'utterance':
        session.onUtterance(event.info);
        session.send({ type: 'speech', event: 'end_of_turn' });
        return;
      case 'response': {
        const info = event.info;
        if (info.phase === 'start') {
          session.onResponseStart(info.at);
          return;
        }
        const turn = session.onResponseEnd(info.at, info.audioMs, info.heardMs, info.interrupted, info);
        if (turn) this.safeEmit('agentturn', session, turn);
        return;
      }
      case 'transcript':
        session.touch();
        session.send({ type: 'transcript', ...event.info });
        return;
      case 'bargein':
        session.send({ type: 'speech', event: 'barge_in' });
        return;
      case 'error': {
        const code = event.info.code as ErrorCode;
        if (code in ERRORS) this.#sendError(session, code, event.info.message);
        return;
      }
    }
  }

  #notifyReleased(): void {
    if (this.#mediaClosing.size === 0) for (const resolve of this.#releaseWaiters.splice(0)) resolve();
  }

  #expire(): void {
    const now = Date.now();
    for (const session of [...this.#sessions.values()]) {
      if (now - session.createdAt >= this.#config.maxSessionDurationMs) {
        this.#sendError(session, 'SESSION_ERR_MAX_DURATION', 'the session reached its maximum duration');
        this.close(session, 'max_duration');
      } else if (session.state === 'reconnecting' && session.outageSince !== null && now - session.outageSince >= this.#config.reconnectWindowMs) {
        this.#sendError(session, 'SESSION_ERR_MEDIA_LOST', 'the connection did not recover in time');
        this.close(session, 'reconnect_timeout');
      } else if (now - session.lastActivityAt >= this.#config.idleTimeoutMs) {
        this.#sendError(session, 'SESSION_ERR_IDLE_TIMEOUT', 'the session was idle too long');
        this.close(session, 'idle_timeout');
      }
    }
  }
}
