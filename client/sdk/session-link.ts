// The session's signaling link: the socket to /v1/signal that carries the session and, when that
// socket is lost, the resume on a new one, attempted on a backoff schedule until the server resumes
// the session, refuses, or the deadline passes. A close that ends the session is final.
import type { ClientMessage, ServerMessage } from '../../signaling/protocol.ts';
import { ReconnectBackoff, type ReconnectBackoffOptions } from './reconnect-backoff.ts';
import { isSessionEndingClose, SignalingSocket } from './signaling-socket.ts';
import { TypedEmitter } from './typed-emitter.ts';

export type JoinRequest = Extract<ClientMessage, { type: 'join' }>;
export type ResumeRequest = Extract<ClientMessage, { type: 'resume' }>;

export type SessionLinkEvents = {
  /** Every message of the socket that carries the session, `joined` and `resumed` included. */
  message: [message: ServerMessage];
  /** The socket was lost; resume attempts have begun. */
  lost: [reason: string];
  /** The link is over for good: the session ended, a resume was refused, or the deadline passed. */
  ended: [reason: string];
};

export interface SessionLinkOptions {
  url: string;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  reconnectDeadlineMs: number;
  reconnectBackoff: Partial<Omit<ReconnectBackoffOptions, 'deadlineMs'>>;
  resumeAttemptTimeoutMs: number;
}

interface ResumeProgress {
  backoff: ReconnectBackoff;
  startedAt: number;
  /** `wait`: a backoff delay runs; `offline`: held by a simulated drop; `attempt`: a socket is trying. */
  phase: 'wait' | 'offline' | 'attempt';
  timer: number | undefined;
}

export class SessionLink extends TypedEmitter<SessionLinkEvents> {
  readonly #options: SessionLinkOptions;
  /** Builds the `resume` message when an attempt starts (the tokens and the last turn change). */
  readonly #resumeRequest: () => ResumeRequest | null | Promise<ResumeRequest | null>;
  #socket: SignalingSocket | undefined;
  /** The current socket carries the session: joined or resumed on it. */
  #ready = false;
  #joined = false;
  #resume: ResumeProgress | undefined;
  #offline: Promise<void> | undefined;
  #sessionEnded = false;
  #closed = false;

  constructor(options: SessionLinkOptions, resumeRequest: () => ResumeRequest | null | Promise<ResumeRequest | null>) {
    super();
    this.#options = options;
    this.#resumeRequest = resumeRequest;
  }

  get ready(): boolean {
    return this.#ready && this.#socket?.isOpen === true;
  }

  /** Opens the first socket and sends `join`; rejects if the socket closes before it opens. */
  async join(request: JoinRequest): Promise<void> {
    const socket = this.#openSocket();
    await socket.open();
    socket.send(request);
  }

  /** Sends on the socket that carries the session; false (dropped) while there is none. */
  send(message: ClientMessage): boolean {
    return this.ready && this.#socket!.send(message);
  }

  /** Checks that the socket is alive (a ping that must be answered), e.g. after a network change. */
  probe(): void {
    this.#socket?.probe();
  }

  /** Drops the socket as if the network died, and resumes. With `offline`, attempts wait for it to settle. */
  drop(reason: string, offline?: Promise<void>): void {
    if (offline) {
      this.#offline = offline;
      void offline.then(() => {
        if (this.#offline !== offline) return;
        this.#offline = undefined;
        this.resumeNow();
      });
    }
    this.#socket?.drop(reason);
  }

  /** Attempts a resume at once instead of after the backoff delay (the network is back). */
  resumeNow(): void {
    const resume = this.#resume;
    if (this.#closed || !resume || resume.phase === 'attempt') return;
    window.clearTimeout(resume.timer);
    this.#attempt();
  }

  /** Closes the link; no event follows. The caller sends `leave` first if it wants to. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    window.clearTimeout(this.#resume?.timer);
    this.#resume = undefined;
    this.#ready = false;
    this.#socket?.close();
    this.#socket = undefined;
    this.removeAllListeners();
  }

  #openSocket(): SignalingSocket {
    const { url, pingIntervalMs, pongTimeoutMs } = this.#options;
    const socket = (this.#socket = new SignalingSocket(url, { pingIntervalMs, pongTimeoutMs }));
    this.#ready = false;
    socket.on('message', (message) => {
      if (socket === this.#socket) this.#onMessage(message);
    });
    socket.on('close', (code, reason) => {
      if (socket === this.#socket) this.#onClose(code, reason);
    });
    return socket;
  }

  #onMessage(message: ServerMessage): void {
    const resume = this.#resume;
    if (message.type === 'joined') {
      this.#joined = true;
      this.#ready = true;
    } else if (message.type === 'resumed' && resume) {
      window.clearTimeout(resume.timer);
      this.#resume = undefined;
      this.#ready = true;
    } else if (message.type === 'state' && message.state === 'disconnected') {
      this.#sessionEnded = true;
    }
    this.safeEmit('message', message);
    if (message.type === 'error' && resume && !this.#ready && !this.#closed) {
      // The resume itself failed: a refusal is final, the server's own trouble is worth another try.
      if (message.retryable) this.#socket?.drop(`resume failed: ${message.code}`);
      else this.#end(`resume refused (${message.code})`);
    }
  }

  #onClose(code: number, reason: string): void {
    this.#socket = undefined;
    this.#ready = false;
    if (this.#closed) return;
    const why = `signaling closed (${code}${reason ? `: ${reason}` : ''})`;
    if (!this.#joined || this.#sessionEnded || isSessionEndingClose(code)) {
      this.#end(why);
      return;
    }
    let resume = this.#resume;
    if (resume) {
      window.clearTimeout(resume.timer);
    } else {
      const backoff = new ReconnectBackoff({ ...this.#options.reconnectBackoff, deadlineMs: this.#options.reconnectDeadlineMs });
      resume = this.#resume = { backoff, startedAt: performance.now(), phase: 'wait', timer: undefined };
      this.safeEmit('lost', why);
      if (this.#closed) return;
    }
    const delay = resume.backoff.next(performance.now() - resume.startedAt);
    if (delay === null) {
      this.#end(`could not resume the session within ${this.#options.reconnectDeadlineMs} ms; last: ${why}`);
      return;
    }
    resume.phase = 'wait';
    resume.timer = window.setTimeout(() => this.#attempt(), delay);
  }

  #attempt(): void {
    const resume = this.#resume;
    if (!resume || this.#closed) return;
    if (this.#offline) {
      resume.phase = 'offline';
      return;
    }
    resume.phase = 'attempt';
    const socket = this.#openSocket();
    resume.timer = window.setTimeout(() => socket.drop('resume attempt timed out'), this.#options.resumeAttemptTimeoutMs);
    socket.open().then(async () => {
      if (socket !== this.#socket) return;
      let request: ResumeRequest | null;
      try {
        request = await this.#resumeRequest();
      } catch {
        // No access token for now (e.g. the token endpoint is unreachable): this attempt fails, a later one may not.
        socket.drop('no access token for the resume');
        return;
      }
      if (socket !== this.#socket || this.#closed) return;
      if (request) socket.send(request);
      else this.#end('nothing to resume');
    }, () => undefined); // the socket's close event schedules the next attempt
  }

  #end(reason: string): void {
    if (this.#closed) return;
    this.safeEmit('ended', reason);
    this.close();
  }
}
