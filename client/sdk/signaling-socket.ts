// The WebSocket to /v1/signal: JSON framing and keepalive only. Kept apart from VoiceClient so that
// reconnect/resume can later replace the socket without touching the peer connection.
import type { ClientMessage, ServerMessage } from '../../signaling/protocol.ts';
import { TypedEmitter } from './typed-emitter.ts';

export type SignalingSocketEvents = {
  message: [message: ServerMessage];
  close: [code: number, reason: string];
};

export class SignalingSocket extends TypedEmitter<SignalingSocketEvents> {
  readonly #ws: WebSocket;
  #pingTimer: number | undefined;
  #pingId = 0;
  readonly #pingIntervalMs: number;

  constructor(url: string, pingIntervalMs: number) {
    super();
    this.#pingIntervalMs = pingIntervalMs;
    this.#ws = new WebSocket(url);
    this.#ws.onmessage = (event) => this.#onFrame(event.data);
    this.#ws.onclose = (event) => {
      this.#stopPing();
      this.safeEmit('close', event.code, event.reason);
    };
  }

  /** Resolves once the socket is open; rejects if it closes first. */
  open(): Promise<void> {
    if (this.#ws.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#ws.addEventListener('open', () => {
        this.#pingTimer = window.setInterval(() => this.send({ type: 'ping', id: ++this.#pingId }), this.#pingIntervalMs);
        resolve();
      }, { once: true });
      this.#ws.addEventListener('close', () => reject(new Error('signaling socket closed before it opened')), { once: true });
    });
  }

  /** Sends one message; silently dropped when the socket is not open (the close event reports why). */
  send(message: ClientMessage): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(message));
  }

  close(code = 1000, reason = 'client closed'): void {
    this.#stopPing();
    if (this.#ws.readyState === WebSocket.CONNECTING || this.#ws.readyState === WebSocket.OPEN) this.#ws.close(code, reason);
  }

  #stopPing(): void {
    window.clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  #onFrame(data: unknown): void {
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
