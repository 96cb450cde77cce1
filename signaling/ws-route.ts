// The WebSocket signaling route at /v1/signal: one connection drives one session. Every inbound
// frame is rate-limited (a token bucket per socket), size-capped and schema-validated; a bad one gets
// an `error` and the session carries on; a client that keeps sending garbage is disconnected. Join
// and resume need an access token (signaling/auth.ts), in the message or the upgrade's Authorization.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { parseClientMessage, PROTOCOL_VERSION, type ClientMessage, type ServerMessage } from './protocol.ts';
import { ERRORS, errorMessage, isErrorCode, SignalingError, type ErrorCode } from './errors.ts';
import { checkAudioSdp } from './sdp-check.ts';
import { authorize, mayActFor, type AccessClaims, type AccessTokens, type Grant } from './auth.ts';
import { admitSession } from './session-admission.ts';
import { bearerToken } from './request-auth.ts';
import { TokenBucket } from './token-bucket.ts';
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
  tokens: AccessTokens;
}

/** Who is at the other end of the socket, from its upgrade request. */
interface SocketPeer {
  remoteAddress: string;
  /** The upgrade's `Authorization: Bearer` token: used when join/resume carry none. */
  bearer: string | null;
}

export function registerSignalingRoute(app: FastifyInstance, deps: SignalingDeps): void {
  app.get('/v1/signal', { websocket: true }, (socket, request) => {
    const peer = { remoteAddress: request.ip, bearer: bearerToken(request.headers.authorization) };
    new SignalingConnection(socket, deps, request.log, peer).start();
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
  readonly #peer: SocketPeer;
  readonly #bucket: TokenBucket;
  /** A join or resume is verifying its token: a second one must not race it. */
  #admitting = false;

  constructor(socket: WebSocket, deps: SignalingDeps, log: FastifyBaseLogger, peer: SocketPeer) {
    this.#socket = socket;
    this.#deps = deps;
    this.#log = log;
    this.#peer = peer;
    this.#bucket = new TokenBucket(deps.config.limits.signalRate);
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
    if (!this.#bucket.take(performance.now())) {
      const { perSecond, burst } = this.#deps.config.limits.signalRate;
      this.#reject('SIG_ERR_RATE_LIMITED', `more than ${burst} messages at once or ${perSecond} per second; message dropped`);
      return;
    }
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
    if (message.type === 'join' || message.type === 'resume') {
      if (this.#session || this.#admitting) throw new SignalingError('SIG_ERR_ALREADY_JOINED', 'this connection already has a session');
      this.#admitting = true;
      try {
        const claims = await this.#deps.tokens.verify(message.token ?? this.#peer.bearer, { remoteAddress: this.#peer.remoteAddress });
        if (this.#socket.readyState !== this.#socket.OPEN) return; // gone while the token was checked
        if (message.type === 'join') this.#join(message.room, message.mode, claims);
        else await this.#resume(message.sessionId, message.resumeToken, message.lastTurnIndex ?? -1, message.media ?? 'keep', claims);
      } finally {
        this.#admitting = false;
      }
      return;
    }
    const session = this.#session;
    if (!session) throw new SignalingError('SIG_ERR_NOT_JOINED', `"${message.type}" before "join"`);
    const { media } = this.#deps;
    switch (message.type) {
      case 'offer': {
        checkAudioSdp(message.sdp, this.#deps.sessions.mediaSectionsOf(session));
        const sdp = await media.acceptOffer(session.id, message.sdp);
        if (!session.closed) this.#send({ type: 'answer', sdp });
        return;
      }
      case 'answer':
        checkAudioSdp(message.sdp, this.#deps.sessions.mediaSectionsOf(session));
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
        if (!message.muted) requireAccess(session, 'publish');
        this.#deps.sessions.setMuted(session, message.muted);
        return;
      case 'history':
        this.#send({ type: 'history', turns: session.history.filter((t) => t.index > (message.afterIndex ?? -1)) });
        return;
      case 'subscription':
        requireAccess(session, 'subscribe');
        this.#checkParticipants(session, [message.participantId]);
        media.setSubscriptionMuted(session.id, message.participantId, message.muted);
        return;
      case 'subscribe':
        requireAccess(session, 'subscribe');
        this.#checkParticipants(session, message.participantIds ?? []);
        media.subscribe(session.id, message.participantIds);
        return;
    }
  }

  #join(requestedRoom: string | undefined, requestedMode: string | undefined, claims: AccessClaims): void {
    let created: { session: Session; resumeToken: string };
    try {
      created = admitSession(this.#deps, claims, { room: requestedRoom, mode: requestedMode, transport: 'websocket', evict: () => this.#evict() });
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
      iceServers: this.#deps.config.iceServers,
      room: session.room,
      mode: session.mode,
      protocol: PROTOCOL_VERSION,
    });
    this.#send({ type: 'state', state: session.state, previous: null });
    this.#sendRoom(session);
  }

  async #resume(sessionId: string, token: string, lastTurnIndex: number, media: 'keep' | 'new', claims: AccessClaims): Promise<void> {
    authorize(claims, 'join');
    // Both must hold: the session's resume token, and an access token of its identity (or admin).
    // Another identity's session is refused exactly like an unknown one.
    const target = this.#deps.sessions.get(sessionId);
    if (target && !mayActFor(claims, target)) throw new SignalingError('SESSION_ERR_RESUME_REFUSED', 'resume refused: start a new session');
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
    this.#sendRoom(session); // room events sent while the socket was down are not replayed
  }

  #sendRoom(session: Session): void {
    const room = this.#deps.sessions.rooms.snapshot(session.id);
    if (room) this.#send(room);
  }

  #checkParticipants(session: Session, participantIds: string[]): void {
    const unknown = participantIds.find((id) => !this.#deps.sessions.rooms.isOtherParticipant(session.id, id));
    if (unknown !== undefined) throw new SignalingError('ROOM_ERR_UNKNOWN_PARTICIPANT', `"${unknown}" is not another participant of room "${session.room}"`);
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
    // The server's own trouble is not the client's fault; a flood is, though retrying later helps.
    if (ERRORS[code].retryable && code !== 'SIG_ERR_RATE_LIMITED') return;
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

/** Publishing and subscribing are fixed at join by the token's grants. */
function requireAccess(session: Session, grant: Extract<Grant, 'publish' | 'subscribe'>): void {
  if (!session.access[grant]) throw new SignalingError('AUTH_ERR_MISSING_GRANT', `the session's token lacks the "${grant}" grant`);
}
