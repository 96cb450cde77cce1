// One WebSocket to /v1/signal: JSON framing, keepalive and dead-socket detection. Kept apart from
// VoiceClient so that a resume replaces the socket without touching the peer connection.
import type { ClientMessage, ServerMessage } from '../../signaling/protocol.ts';
import { TypedEmitter } from './typed-emitter.ts';

export type SignalingSocketEvents = {
  message: [message: ServerMessage];
  /** The socket ended without `close()` being called: by the server, the network or `drop()`. */
  close: [code: number, reason: string];
};

export interface SignalingSocketOptions {
  pingIntervalMs: number;
  /** A ping with no frame at all received within this time means the socket is dead. */
  pongTimeoutMs: number;
}

/** The close code the browser reports when the connection died without a closing handshake. */
export const CLOSE_ABNORMAL = 1006;
/** Server close code: another socket resumed the session. */
export const CLOSE_TAKEN_OVER = 4001;
/** What the browser sends to the server when we drop a socket we consider dead (4000-4999: private use). */
const CLOSE_DROPPED = 4000;

// Closes after which the session is gone or resuming cannot help: a normal close (the server closes
// with 1000 only when the session ended), protocol or policy violations (1002, 1003, 1007, 1008,
// 1009, 1010), "try again later" (1013, the server is full), and a takeover by another socket.
// Everything else (1001, 1005, 1006, 1011, 1012, 1014, 1015...) is a broken link: resume.
const SESSION_ENDING_CLOSES = new Set([1000, 1002, 1003, 1007, 1008, 1009, 1010, 1013, CLOSE_TAKEN_OVER]);

export function isSessionEndingClose(code: number): boolean {
  return SESSION_ENDING_CLOSES.has(code);
}

export class SignalingSocket extends TypedEmitter<SignalingSocketEvents> {
  readonly #ws: WebSocket;
  readonly #options: SignalingSocketOptions;
  readonly #opened: Promise<void>;
  #rejectOpen: (err: Error) => void = () => undefined;
  #pingTimer: number | undefined;
  #replyTimer: number | undefined;
  #pingId = 0;
  #ended = false;

  constructor(url: string, options: SignalingSocketOptions) {
    super();
    this.#options = options;
    const ws = (this.#ws = new WebSocket(url));
    this.#opened = new Promise((resolve, reject) => {
      this.#rejectOpen = reject;
      ws.onopen = () => {
        this.#pingTimer = window.setInterval(() => this.probe(), options.pingIntervalMs);
        resolve();
      };
    });
    this.#opened.catch(() => undefined); // callers that never await open() must not see an unhandled rejection
    ws.onmessage = (event) => this.#onFrame(event.data);
    ws.onclose = (event) => this.#end(event.code, event.reason);
  }

  /** Resolves once the socket is open; rejects if it ends first. */
  open(): Promise<void> {
    return this.#opened;
  }

  get isOpen(): boolean {
    return !this.#ended && this.#ws.readyState === WebSocket.OPEN;
  }

  /** Sends one message; returns false (and drops it) when the socket is not open. */
  send(message: ClientMessage): boolean {
    if (!this.isOpen) return false;
    this.#ws.send(JSON.stringify(message));
    return true;
  }

  /** Pings now; the socket is dropped if nothing comes back within `pongTimeoutMs`. */
  probe(): void {
    if (!this.send({ type: 'ping', id: ++this.#pingId })) return;
    this.#replyTimer ??= window.setTimeout(() => this.drop('no reply from the server'), this.#options.pongTimeoutMs);
  }

  /** Ends the socket as if the network had died: `close` is emitted with 1006. */
  drop(reason: string): void {
    if (this.#ended) return;
    this.#end(CLOSE_ABNORMAL, reason);
    this.#ws.close(CLOSE_DROPPED, reason.slice(0, 100));
  }

  /** Closes the socket on purpose; no `close` event follows. */
  close(code = 1000, reason = 'client closed'): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopTimers();
    this.#rejectOpen(new Error('signaling socket closed'));
    this.#detach();
    if (this.#ws.readyState === WebSocket.CONNECTING || this.#ws.readyState === WebSocket.OPEN) this.#ws.close(code, reason);
  }

  #end(code: number, reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#stopTimers();
    this.#rejectOpen(new Error(`signaling socket closed before it opened (${code})`));
    this.#detach();
    this.safeEmit('close', code, reason);
  }

  #detach(): void {
    this.#ws.onopen = null;
    this.#ws.onmessage = null;
    this.#ws.onclose = null;
  }

  #stopTimers(): void {
    window.clearInterval(this.#pingTimer);
    window.clearTimeout(this.#replyTimer);
    this.#pingTimer = undefined;
    this.#replyTimer = undefined;
  }

  #onFrame(data: unknown): void {
    // Any frame proves the socket alive, not only the pong.
    window.clearTimeout(this.#replyTimer);
    this.#replyTimer = undefined;
    if (typeof data !== 'string') return;
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn('signaling: ignoring a frame that is not JSON');
      return;
    }
    if (typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string') {
      this.safeEmit('message', message as ServerMessage);
    }
  }
}
