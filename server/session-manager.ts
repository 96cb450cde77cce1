// The session directory: admission (capacity), lookup, media event routing, idle timeout and
// maximum duration, and cleanup that releases a session's media in its worker.
import { TypedEmitter } from '../media/typed-emitter.ts';
import { Session } from './session.ts';
import { SignalingError } from '../signaling/errors.ts';
import type { MediaPool, MediaSessionEvent } from './media-pool.ts';
import type { Config } from './config.ts';
import type { SessionMode } from '../signaling/protocol.ts';
import type { SessionState } from './session-types.ts';

export type SessionManagerEvents = {
  sessioncreated: [session: Session];
  sessionclosed: [session: Session, reason: string];
  statechange: [session: Session, state: SessionState, previous: SessionState];
};

export class SessionManager extends TypedEmitter<SessionManagerEvents> {
  readonly #sessions = new Map<string, Session>();
  readonly #config: Readonly<Config>;
  readonly #media: MediaPool;
  readonly #sweep: NodeJS.Timeout;
  /** Sessions whose media close is still being confirmed by their worker (id -> worker index). */
  readonly #mediaClosing = new Map<string, number>();
  #releaseWaiters: (() => void)[] = [];

  constructor(config: Readonly<Config>, media: MediaPool) {
    super();
    this.#config = config;
    this.#media = media;
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
        session.sendError('MEDIA_ERR_WORKER_DIED', `the media worker hosting this session stopped (worker ${index})`, true);
        this.close(session, 'media_worker_died', 'error');
      }
    });
    const sweepEvery = Math.max(50, Math.min(1000, Math.floor(config.idleTimeoutMs / 4)));
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

  get(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  all(): IterableIterator<Session> {
    return this.#sessions.values();
  }

  create(room: string | undefined, mode: SessionMode): Session {
    if (this.#sessions.size >= this.#config.maxSessions) {
      throw new SignalingError('SESSION_ERR_CAPACITY', 'the server is at capacity; retry later or on another server');
    }
    const session = new Session(room, mode);
    this.#sessions.set(session.id, session);
    session.on('statechange', (state, previous) => this.safeEmit('statechange', session, state, previous));
    session.workerIndex = this.#media.open(session.id, {
      mode,
      echo: { ...this.#config.echo },
      jitterBuffer: { ...this.#config.jitterBuffer },
    });
    this.safeEmit('sessioncreated', session);
    return session;
  }

  close(session: Session, reason: string, finalState: 'disconnected' | 'error' = 'disconnected'): void {
    if (!this.#sessions.delete(session.id)) return;
    const worker = this.#media.workerOf(session.id);
    if (worker !== null) {
      this.#mediaClosing.set(session.id, worker);
      this.#media.close(session.id);
    }
    session.close(reason, finalState);
    this.safeEmit('sessionclosed', session, reason);
  }

  /** Ends every session, telling each client first (retryable: another server can take it). */
  shutdown(): void {
    for (const session of [...this.#sessions.values()]) {
      session.sendError('SERVER_ERR_SHUTDOWN', 'the server is shutting down', true);
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
    if (!session) return;
    switch (event.ev) {
      case 'candidate':
        session.send({ type: 'candidate', candidate: event.candidate });
        return;
      case 'connection':
        if (event.state === 'connected') {
          // First connection, or recovery: a recovered session resumes listening (any turn in flight
          // finished or was dropped while the path was down).
          session.trySetState(session.state === 'reconnecting' ? 'listening' : 'connected');
          session.trySetState('listening');
        } else if (event.state === 'failed' || event.state === 'disconnected') {
          session.trySetState('reconnecting', `ice_${event.state}`);
        }
        return;
      case 'speech':
        session.touch();
        return;
      case 'utterance':
        if (event.accepted) session.onUtterance(event);
        return;
      case 'response':
        if (event.phase === 'start') session.onResponseStart(event.at);
        else session.onResponseEnd(event.at, event.audioMs, event.interrupted);
        return;
    }
  }

  #notifyReleased(): void {
    if (this.#mediaClosing.size === 0) for (const resolve of this.#releaseWaiters.splice(0)) resolve();
  }

  #expire(): void {
    const now = Date.now();
    for (const session of [...this.#sessions.values()]) {
      if (now - session.createdAt >= this.#config.maxSessionDurationMs) {
        session.sendError('SESSION_ERR_MAX_DURATION', 'the session reached its maximum duration', false);
        this.close(session, 'max_duration');
      } else if (session.state === 'reconnecting' && now - session.stateSince >= this.#config.reconnectWindowMs) {
        session.sendError('SESSION_ERR_MEDIA_LOST', 'the media path did not recover in time', true);
        this.close(session, 'reconnect_timeout');
      } else if (now - session.lastActivityAt >= this.#config.idleTimeoutMs) {
        session.sendError('SESSION_ERR_IDLE_TIMEOUT', 'the session was idle too long', true);
        this.close(session, 'idle_timeout');
      }
    }
  }
}
