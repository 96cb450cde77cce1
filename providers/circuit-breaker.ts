/**
 * Stops calling a provider that keeps failing, so a dead vendor costs one quick skip per turn
 * instead of a timeout, and lets a trial call through after a pause to find out whether it is back.
 *
 *   closed --(failureThreshold consecutive failures)--> open --(openMs)--> half-open
 *   half-open --(trial succeeds)--> closed        half-open --(trial fails)--> open
 *
 * Time comes from the injected `now`, and open -> half-open happens when the breaker is next
 * asked, so the breaker owns no timers and tests need no sleeps.
 */
import { TypedEmitter } from '../media/typed-emitter.ts';
import { isAbort } from './types.ts';

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failures (retryable or not; aborts never count) that open the circuit. */
  failureThreshold: number;
  /** How long the circuit stays open before one trial call is let through. */
  openMs: number;
  /** Monotonic clock in ms. */
  now: () => number;
}

export const DEFAULT_CIRCUIT_BREAKER_OPTIONS: CircuitBreakerOptions = {
  failureThreshold: 3,
  openMs: 30_000,
  now: () => performance.now(),
};

export type CircuitBreakerEvents = {
  statechange: [state: CircuitState, previous: CircuitState];
};

/**
 * A call's admission: the caller reports how the call went, as often as it has news (a long-lived
 * STT stream succeeds once per final). Reports from a call admitted before the circuit last changed
 * state are stale and ignored, so a slow call that began while closed cannot close a circuit that
 * other calls have since opened.
 */
export interface CircuitPermit {
  succeed(): void;
  /** An abort is not a failure: it only releases the permit. */
  fail(error: unknown): void;
  /** The call ended without a verdict (aborted, abandoned, closed). */
  release(): void;
}

interface Ticket {
  generation: number;
}

export class CircuitBreaker extends TypedEmitter<CircuitBreakerEvents> {
  readonly name: string;
  readonly #options: CircuitBreakerOptions;
  #state: CircuitState = 'closed';
  /** Bumped on every state change; tickets from older generations are stale. */
  #generation = 0;
  #failures = 0;
  #openedAt = 0;
  #opens = 0;
  #trial: Ticket | undefined;
  #trialStartedAt = 0;

  constructor(name: string, options: Partial<CircuitBreakerOptions> = {}) {
    super();
    this.name = name;
    this.#options = { ...DEFAULT_CIRCUIT_BREAKER_OPTIONS, ...options };
  }

  get state(): CircuitState {
    this.#refresh();
    return this.#state;
  }

  /** A permit when a call may go ahead; undefined while open or while a half-open trial runs. */
  acquire(): CircuitPermit | undefined {
    this.#refresh();
    if (this.#state === 'open') return undefined;
    if (this.#state === 'closed') return this.#permit(false);
    // A trial silent for openMs (a long-lived stream with nothing to say yet) must not keep every
    // other caller away for good, so it stops blocking the next trial.
    if (this.#trial && this.#options.now() - this.#trialStartedAt < this.#options.openMs) return undefined;
    return this.#permit(true);
  }

  toJSON(): { name: string; state: CircuitState; consecutiveFailures: number; opens: number } {
    return { name: this.name, state: this.state, consecutiveFailures: this.#failures, opens: this.#opens };
  }

  #permit(trial: boolean): CircuitPermit {
    const ticket: Ticket = { generation: this.#generation };
    if (trial) {
      this.#trial = ticket;
      this.#trialStartedAt = this.#options.now();
    }
    return {
      succeed: () => this.#report(ticket, 'success'),
      fail: (error) => this.#report(ticket, isAbort(error) ? 'release' : 'failure'),
      release: () => this.#report(ticket, 'release'),
    };
  }

  #report(ticket: Ticket, outcome: 'success' | 'failure' | 'release'): void {
    this.#refresh();
    if (ticket.generation !== this.#generation) return;
    if (outcome === 'release') {
      if (this.#trial === ticket) this.#trial = undefined;
      return;
    }
    if (this.#state === 'open') return;
    if (outcome === 'success') {
      this.#failures = 0;
      if (this.#state === 'half-open') this.#transition('closed');
    } else if (this.#state === 'half-open' || ++this.#failures >= this.#options.failureThreshold) {
      this.#transition('open');
    }
    // The call whose report moved the circuit stays current: its later reports still count.
    ticket.generation = this.#generation;
  }

  #refresh(): void {
    if (this.#state === 'open' && this.#options.now() - this.#openedAt >= this.#options.openMs) {
      this.#transition('half-open');
    }
  }

  #transition(next: CircuitState): void {
    const previous = this.#state;
    this.#state = next;
    this.#generation++;
    this.#trial = undefined;
    if (next === 'open') {
      this.#openedAt = this.#options.now();
      this.#opens++;
    }
    if (next === 'closed') this.#failures = 0;
    this.safeEmit('statechange', next, previous);
  }
}
