// A voice session in the main thread's directory: state, conversation history, the resume token,
// and the link to the client's signaling socket. Its media lives in a worker (MediaPool).
// The session outlives its socket and its media path: either can drop and come back (resume).
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { TypedEmitter } from '../media/typed-emitter.ts';
import { canTransition } from './session-state.ts';
import type { ConversationTurn, SessionState } from './session-types.ts';
import type { AgentTimings, TurnText } from '../media/conversation-events.ts';
import type { ServerMessage, SessionMode } from '../signaling/protocol.ts';
import type { ErrorCode } from '../signaling/errors.ts';

export type SessionEvents = {
  statechange: [state: SessionState, previous: SessionState, reason: string | undefined];
  turn: [turn: ConversationTurn];
  '@close': [reason: string];
};

export class InvalidStateError extends Error {
  override name = 'InvalidStateError';
}

export type MessageSink = (message: ServerMessage) => void;

/** How the session is signalled, and what its access token lets it do (signaling/auth.ts grants). */
export interface SessionAccess {
  /** `websocket`: /v1/signal; `whip`: the HTTP API (no server-initiated offers: the client drives). */
  transport: 'websocket' | 'whip';
  /** Its audio reaches the room and the agent (`publish` grant). */
  publish: boolean;
  /** It receives the other participants' audio (`subscribe` grant). */
  subscribe: boolean;
}

export const FULL_ACCESS: Readonly<SessionAccess> = { transport: 'websocket', publish: true, subscribe: true };

interface PendingTurn {
  speechStartAt: number;
  speechEndAt: number;
  endOfTurnAt: number;
  userAudioMs: number;
  firstPacketOutAt: number | null;
}

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export class Session extends TypedEmitter<SessionEvents> {
  readonly id = randomBytes(16).toString('base64url');
  readonly room: string;
  readonly mode: SessionMode;
  /** Who joined (the access token's `sub`); null for a session created without a token (internal use). */
  readonly identity: string | null;
  readonly access: Readonly<SessionAccess>;
  readonly createdAt = Date.now();
  readonly history: ConversationTurn[] = [];
  workerIndex: number | null = null;
  lastActivityAt = Date.now();
  /** When the current state was entered (ms since epoch). */
  stateSince = Date.now();
  /** Link health: the session is `reconnecting` while either is down (after it first connected). */
  signalingUp = true;
  mediaUp = false;
  /** When the current outage began (ms since epoch), for the reconnect metrics. */
  outageSince: number | null = null;
  #resumeTokenHash: string;
  #state: SessionState = 'connecting';
  #sink: MessageSink | null = null;
  /** Onlookers (the session API's event streams): they see what the client is sent. */
  readonly #observers = new Set<MessageSink>();
  #pendingTurn: PendingTurn | null = null;
  #closed = false;

  constructor(room: string | undefined, mode: SessionMode, identity: string | null = null, access: Readonly<SessionAccess> = FULL_ACCESS) {
    super();
    this.room = room ?? `room-${this.id.slice(0, 8)}`;
    this.mode = mode;
    this.identity = identity;
    this.access = access;
    this.#resumeTokenHash = '';
  }

  get state(): SessionState {
    return this.#state;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get resumeTokenHash(): string {
    return this.#resumeTokenHash;
  }

  /** Issues a new single-use resume token; the previous one stops working. Only its hash is kept. */
  rotateResumeToken(): string {
    const token = randomBytes(32).toString('base64url');
    this.#resumeTokenHash = hashToken(token);
    return token;
  }

  /** Constant-time check of a presented resume token. */
  resumeTokenMatches(token: string): boolean {
    if (!this.#resumeTokenHash) return false;
    const a = Buffer.from(hashToken(token), 'hex');
    const b = Buffer.from(this.#resumeTokenHash, 'hex');
    return a.length === b.length && timingSafeEqual(a, b);
  }

  attach(sink: MessageSink | null): void {
    this.#sink = sink;
  }

  send(message: ServerMessage): void {
    this.#sink?.(message);
    for (const observer of this.#observers) observer(message);
  }

  /** Adds an onlooker of every message the session sends; returns its removal. Closing removes all. */
  observe(observer: MessageSink): () => void {
    if (this.#closed) return () => undefined;
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  get observers(): number {
    return this.#observers.size;
  }

  sendError(code: ErrorCode, message: string, retryable: boolean): void {
    this.send({ type: 'error', code, message, retryable });
  }

  touch(): void {
    this.lastActivityAt = Date.now();
  }

  setState(next: SessionState, reason?: string): void {
    const previous = this.#state;
    if (next === previous) return;
    if (!canTransition(previous, next)) {
      throw new InvalidStateError(`session ${this.id}: ${previous} -> ${next} is not allowed`);
    }
    this.#state = next;
    this.stateSince = Date.now();
    this.send({ type: 'state', state: next, previous, ...(reason ? { reason } : {}) });
    this.safeEmit('statechange', next, previous, reason);
  }

  /** Moves to `next` only when that is legal now (media events may race a state change). */
  trySetState(next: SessionState, reason?: string): boolean {
    if (this.#state === next || !canTransition(this.#state, next)) return false;
    this.setState(next, reason);
    return true;
  }

  /** Where the conversation stands, from the turn in progress: where a recovered session returns to. */
  conversationState(): 'listening' | 'processing' | 'responding' {
    if (!this.#pendingTurn) return 'listening';
    return this.#pendingTurn.firstPacketOutAt === null ? 'processing' : 'responding';
  }

  // Media events from the worker build the turn: utterance -> processing, first packet out ->
  // responding, last packet out -> the turn is recorded and announced. A session that is
  // reconnecting still records turns (they reach the client on resume) but stays reconnecting.
  onUtterance(info: { speechStartAt: number; speechEndAt: number; endOfTurnAt: number; audioMs: number }): void {
    this.touch();
    this.#pendingTurn = {
      speechStartAt: info.speechStartAt,
      speechEndAt: info.speechEndAt,
      endOfTurnAt: info.endOfTurnAt,
      userAudioMs: info.audioMs,
      firstPacketOutAt: null,
    };
    if (this.#state === 'listening') this.setState('processing');
  }

  onResponseStart(at: number): void {
    if (this.#pendingTurn) this.#pendingTurn.firstPacketOutAt = at;
    if (this.#state === 'processing') this.setState('responding');
  }

  onResponseEnd(
    at: number,
    audioMs: number,
    heardMs: number,
    interrupted: boolean,
    agent?: { text: TurnText | null; timings?: AgentTimings; skipped?: boolean },
  ): ConversationTurn | null {
    const pending = this.#pendingTurn;
    this.#pendingTurn = null;
    let turn: ConversationTurn | null = null;
    if (pending && !agent?.skipped) {
      const text = agent?.text ?? null;
      turn = {
        turnId: randomUUID(),
        index: this.history.length,
        mode: this.mode,
        userText: text?.userText ?? null,
        agentText: text ? text.agentText : null,
        heardText: text ? text.heardText : null,
        interrupted,
        ...(text?.speaker ? { speaker: text.speaker } : {}),
        userAudioMs: pending.userAudioMs,
        agentAudioMs: audioMs,
        heardAudioMs: heardMs,
        timings: {
          speechStartAt: pending.speechStartAt,
          speechEndAt: pending.speechEndAt,
          endOfTurnAt: pending.endOfTurnAt,
          firstPacketOutAt: pending.firstPacketOutAt,
          lastPacketOutAt: audioMs > 0 ? at : null,
          ...(agent?.timings ? { sttFinalAt: agent.timings.sttFinalAt, agentFirstTextAt: agent.timings.agentFirstTextAt, ttsFirstAudioAt: agent.timings.ttsFirstAudioAt } : {}),
        },
      };
      this.history.push(turn);
      this.send({ type: 'turn', turn });
      this.safeEmit('turn', turn);
    }
    if (this.#state === 'responding' || this.#state === 'processing') this.setState('listening');
    return turn;
  }

  /** Ends the session once; the manager drops it on '@close'. */
  close(reason: string, finalState: 'disconnected' | 'error' = 'disconnected'): void {
    if (this.#closed) return;
    if (finalState === 'error') this.trySetState('error', reason);
    this.trySetState('disconnected', reason);
    this.#closed = true;
    this.safeEmit('@close', reason);
    this.#sink = null;
    this.#observers.clear();
    this.removeAllListeners();
  }
}
