// The WebSocket signaling route at /v1/signal: one connection drives one session. Every inbound
// frame is size-capped and schema-validated; a bad one gets an `error` and the session carries on;
// a client that keeps sending garbage is disconnected.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { parseClientMessage, SESSION_MODES, PROTOCOL_VERSION, type ClientMessage, type ServerMessage, type SessionMode } from './protocol.ts';
import { ERRORS, errorMessage, isErrorCode, SignalingError, type ErrorCode } from './errors.ts';
import { checkAudioSdp } from './sdp-check.ts';
import type { SessionManager } from '../server/session-manager.ts';
import type { MediaPool } from '../server/media-pool.ts';
import type { Session } from '../server/session.ts';
import type { Config } from '../server/config.ts';

/** Frames above this are refused by the WebSocket layer itself (close 1009); below it, by us. */
export const HARD_MAX_FRAME_BYTES = 1024 * 1024;

const CLOSE_NORMAL = 1000;
const CLOSE_POLICY = 1008;
const CLOSE_TRY_AGAIN = 1013;
/** Application close code: another socket resumed this session. */
const CLOSE_TAKEN_OVER = 4001;

export interface SignalingDeps {
  config: Readonly<Config>;
  sessions: SessionManager;
  media: MediaPool;
}

export function registerSignalingRoute(app: FastifyInstance, deps: SignalingDeps): void {
  app.get('/v1/signal', { websocket: true }, (socket, request) => {
    new SignalingConnection(socket, deps, request.log).start();
  });
}

class SignalingConnection {
  readonly #socket: WebSocket;
  readonly #deps: SignalingDeps;
  #session: Session | null = null;
  #badMessages: number[] = [];
  #joinTimer: NodeJS.Timeout | null = null;
  /** Carries the session id on every line once the connection has a session. */
  #log: FastifyBaseLogger;

  constructor(socket: WebSocket, deps: SignalingDeps, log: FastifyBaseLogger) {
    this.#socket = socket;
    this.#deps = deps;
    this.#log = log;
  }

  start(): void {
    this.#joinTimer = setTimeout(() => {
      this.#send(errorMessage('SIG_ERR_JOIN_TIMEOUT', 'no join message in time'));
      this.#socket.close(CLOSE_POLICY, 'join timeout');
    }, this.#deps.config.joinTimeoutMs);
    this.#socket.on('message', (data, isBinary) => this.#onFrame(data as Buffer | Buffer[], isBinary));
    this.#socket.on('close', () => this.#onClose());
    this.#socket.on('error', () => undefined);
  }

  #send(message: ServerMessage): void {
    if (this.#socket.readyState === this.#socket.OPEN) this.#socket.send(JSON.stringify(message));
  }

  #onFrame(data: Buffer | Buffer[], isBinary: boolean): void {
    const buffer = Array.isArray(data) ? Buffer.concat(data) : data;
    if (buffer.length > this.#deps.config.maxMessageBytes) {
      this.#reject('SIG_ERR_TOO_LARGE', `message of ${buffer.length} bytes exceeds ${this.#deps.config.maxMessageBytes}`);
      return;
    }
    if (isBinary) {
      this.#reject('SIG_ERR_BAD_MESSAGE', 'binary frames are not part of the protocol');
      return;
    }
    const parsed = parseClientMessage(buffer.toString('utf8'));
    if (!parsed.ok) {
      this.#reject(parsed.code, parsed.message);
      return;
    }
    this.#session?.touch();
    this.#dispatch(parsed.message).catch((error: unknown) => this.#onFailure(error));
  }

  async #dispatch(message: ClientMessage): Promise<void> {
    if (message.type === 'ping') {
      this.#send({ type: 'pong', ...(message.id !== undefined ? { id: message.id } : {}) });
      return;
    }
    if (message.type === 'join') {
      this.#join(message.room, message.mode);
      return;
    }
    if (message.type === 'resume') {
      await this.#resume(message.sessionId, message.resumeToken, message.lastTurnIndex ?? -1, message.media ?? 'keep');
      return;
    }
    const session = this.#session;
    if (!session) throw new SignalingError('SIG_ERR_NOT_JOINED', `"${message.type}" before "join"`);
    const { media } = this.#deps;
    switch (message.type) {
      case 'offer': {
        checkAudioSdp(message.sdp);
        const sdp = await media.acceptOffer(session.id, message.sdp);
        if (!session.closed) this.#send({ type: 'answer', sdp });
        return;
      }
      case 'answer':
        checkAudioSdp(message.sdp);
        await media.acceptAnswer(session.id, message.sdp);
        return;
      case 'candidate':
        await media.addCandidate(session.id, message.candidate);
        return;
      case 'leave':
        // The session's @close handler closes the socket (1000, reason "client_left").
        this.#deps.sessions.close(session, 'client_left');
        return;
      case 'mute':
        this.#deps.sessions.setMuted(session, message.muted);
        return;
      case 'history':
        this.#send({ type: 'history', turns: session.history.filter((t) => t.index > (message.afterIndex ?? -1)) });
        return;
    }
  }

  #join(room: string | undefined, requestedMode: string | undefined): void {
    if (this.#session) throw new SignalingError('SIG_ERR_ALREADY_JOINED', 'this connection already has a session');
    const mode = (requestedMode ?? 'echo') as SessionMode;
    if (!SESSION_MODES.includes(mode)) {
      throw new SignalingError('SIG_ERR_UNSUPPORTED_MODE', `mode "${requestedMode}" is not available; use one of ${SESSION_MODES.join(', ')}`);
    }
    let created: { session: Session; resumeToken: string };
    try {
      created = this.#deps.sessions.create(room, mode, () => this.#evict());
    } catch (error) {
      if (error instanceof SignalingError && (error.code === 'SESSION_ERR_CAPACITY' || error.code === 'SERVER_ERR_DRAINING')) {
        this.#send(errorMessage(error.code, error.message));
        this.#deps.sessions.reportError(error.code);
        this.#socket.close(CLOSE_TRY_AGAIN, error.code === 'SERVER_ERR_DRAINING' ? 'draining' : 'at capacity');
        return;
      }
      throw error;
    }
    const { session, resumeToken } = created;
    this.#adopt(session);
    this.#send({
      type: 'joined',
      sessionId: session.id,
      resumeToken,
      iceServers: [],
      room: session.room,
      mode: session.mode,
      protocol: PROTOCOL_VERSION,
    });
    this.#send({ type: 'state', state: session.state, previous: null });
  }

  async #resume(sessionId: string, token: string, lastTurnIndex: number, media: 'keep' | 'new'): Promise<void> {
    if (this.#session) throw new SignalingError('SIG_ERR_ALREADY_JOINED', 'this connection already has a session');
    const result = await this.#deps.sessions.resume(sessionId, token, lastTurnIndex, media, (m) => this.#send(m), () => this.#evict());
    const { session } = result;
    this.#adopt(session);
    this.#log.info({ media: result.media, missedTurns: result.missedTurns.length }, 'session resumed');
    this.#send({
      type: 'resumed',
      sessionId: session.id,
      resumeToken: result.resumeToken,
      state: session.state,
      room: session.room,
      mode: session.mode,
      missedTurns: result.missedTurns,
      media: result.media,
    });
  }

  /** Binds this connection to a session (after join or resume). */
  #adopt(session: Session): void {
    this.#log = this.#log.child({ sessionId: session.id });
    if (this.#joinTimer) clearTimeout(this.#joinTimer);
    this.#joinTimer = null;
    this.#session = session;
    session.attach((message) => this.#send(message));
    session.once('@close', (reason) => {
      if (this.#session !== session) return;
      this.#session = null;
      if (this.#socket.readyState === this.#socket.OPEN) this.#socket.close(CLOSE_NORMAL, reason.slice(0, 100));
    });
  }

  /** Another socket resumed our session: let go of it without detaching it. */
  #evict(): void {
    this.#session = null;
    if (this.#socket.readyState === this.#socket.OPEN) this.#socket.close(CLOSE_TAKEN_OVER, 'session resumed elsewhere');
  }

  #onFailure(error: unknown): void {
    const code = (error as { code?: unknown })?.code;
    if (typeof code === 'string' && isErrorCode(code)) {
      this.#reject(code, (error as Error).message);
      return;
    }
    this.#log.error({ err: (error as Error)?.message }, 'signaling failure');
    this.#reject('SERVER_ERR_INTERNAL', 'internal error');
  }

  /** Reports a refused message and counts it toward the abuse limit. */
  #reject(code: ErrorCode, message: string): void {
    this.#log.debug({ code }, 'message refused');
    this.#send(errorMessage(code, message));
    this.#deps.sessions.reportError(code);
    if (ERRORS[code].retryable) return; // the server's own trouble is not the client's fault
    const now = Date.now();
    const { maxBadMessages, abuseWindowMs } = this.#deps.config;
    this.#badMessages = this.#badMessages.filter((t) => now - t < abuseWindowMs);
    this.#badMessages.push(now);
    if (this.#badMessages.length > maxBadMessages) {
      this.#send(errorMessage('SIG_ERR_ABUSE', 'too many invalid messages; disconnecting'));
      this.#socket.close(CLOSE_POLICY, 'too many invalid messages');
    }
  }

  #onClose(): void {
    if (this.#joinTimer) clearTimeout(this.#joinTimer);
    const session = this.#session;
    this.#session = null;
    // The session outlives its socket: it waits for a resume within the reconnect window.
    if (session) {
      this.#log.info('signaling socket closed; session waits for a resume');
      this.#deps.sessions.detach(session);
    }
  }
}
