// Writes a session's record and turns to the SessionStore without making the caller wait, and
// keeps track of every write still in flight so shutdown can flush them (nothing lost on drain).
import type { Session } from './session.ts';
import type { ConversationTurn } from './session-types.ts';
import type { SessionStore } from './session-store.ts';

export class SessionRecorder {
  readonly #store: SessionStore;
  readonly #pending = new Set<Promise<unknown>>();
  readonly #onError: (error: Error) => void;

  constructor(store: SessionStore, onError: (error: Error) => void) {
    this.#store = store;
    this.#onError = onError;
  }

  /** The session as it is now (state, current resume token hash). */
  saveRecord(session: Session): void {
    this.#track(
      this.#store.saveSession({
        sessionId: session.id,
        room: session.room,
        mode: session.mode,
        identity: session.identity,
        createdAt: session.createdAt,
        state: session.state,
        closedAt: null,
        closeReason: null,
        resumeTokenHash: session.resumeTokenHash,
      }),
    );
  }

  appendTurn(session: Session, turn: ConversationTurn): void {
    this.#track(this.#store.appendTurn(session.id, turn));
  }

  closeSession(session: Session, reason: string): void {
    this.#track(this.#store.closeSession(session.id, reason, session.state));
  }

  /** Resolves once every write issued so far has finished (failed ones are reported, not thrown). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  #track(write: Promise<unknown>): void {
    const tracked = write.catch((error: Error) => this.#onError(error)).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }
}
