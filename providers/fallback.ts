/**
 * What the fallback wrappers (fallback-stt/-tts/-agent/-s2s.ts) share: an ordered list of
 * providers, preferred first (e.g. [cloud, local]), each behind its own CircuitBreaker, and the
 * rules for moving along it:
 * - a provider whose circuit is open is skipped;
 * - a failure before the first output (first transcript event, audio frame, text delta, or the
 *   S2S connect) is retried on the same provider when retryable and retries remain, after a short
 *   backoff; otherwise the next provider is tried; no output within `firstOutputTimeoutMs` counts as
 *   a retryable failure;
 * - after output has started a failure propagates: replaying would duplicate speech or text;
 * - when every provider has failed, the last ProviderError propagates;
 * - an abort propagates at once and never counts as a failure.
 * Every switch to another provider is reported to `onFallback`.
 */
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitPermit } from './circuit-breaker.ts';
import { isAbort, ProviderError, type ProviderKind } from './types.ts';

/** Time and timers, injected so tests can drive backoffs and timeouts without sleeping. */
export interface FallbackClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const SYSTEM_CLOCK: FallbackClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface FallbackEvent {
  kind: ProviderKind;
  /** The provider given up on (or skipped because its circuit is open). */
  from: string;
  to: string;
  /** The failure's ProviderError code, PROVIDER_ERR_TIMEOUT or PROVIDER_ERR_CIRCUIT_OPEN. */
  reason: string;
}

export interface FallbackOptions {
  /** Further attempts on the same provider after a retryable failure before the first output. */
  retries: number;
  /** Backoff before retry n (from 0) is retryDelayMs * 2^n. */
  retryDelayMs: number;
  /** No first output within this many ms is a retryable failure; 0 disables. */
  firstOutputTimeoutMs: number;
  /** For each provider's breaker; `now` defaults to the clock's. */
  breaker: Partial<CircuitBreakerOptions>;
  clock: FallbackClock;
  onFallback: (event: FallbackEvent) => void;
}

export const DEFAULT_FALLBACK_OPTIONS: FallbackOptions = {
  retries: 1,
  retryDelayMs: 100,
  firstOutputTimeoutMs: 5_000,
  breaker: {},
  clock: SYSTEM_CLOCK,
  onFallback: () => {},
};

export const CIRCUIT_OPEN_CODE = 'PROVIDER_ERR_CIRCUIT_OPEN';
export const TIMEOUT_CODE = 'PROVIDER_ERR_TIMEOUT';

/** A provider chosen for an attempt, with its breaker's permit. */
export interface Slot<P> {
  index: number;
  provider: P;
  permit: CircuitPermit;
  /** Retries spent on this provider for the current output. */
  retriesUsed: number;
}

export interface AttemptContext {
  /** Aborted when the caller aborts or when the wrapper abandons this attempt. */
  signal: AbortSignal;
  /** Starts the first-output timeout (for `timer: 'manual'`: when output can be expected). */
  startTimer(): void;
}

/** An attempt that produced its first output: the caller now owns it. */
export interface Attempt<P, T> extends Slot<P> {
  value: T;
  controller: AbortController;
  /** Detaches the attempt's signal from the caller's; call once the attempt is over. */
  unlink(): void;
}

export interface OpenHooks<T> {
  /** 'attempt' (default): the first-output timeout runs from the start of each attempt. */
  timer?: 'attempt' | 'manual';
  /** Frees a value that arrived after the attempt was given up (a late S2S session). */
  dispose?: (value: T) => void;
  /** Set when the caller's own input failed: that is not the provider's fault, so it propagates. */
  inputFailure?: () => { error: unknown } | undefined;
}

export class ProviderChain<P extends { readonly name: string }> {
  readonly name: string;
  readonly breakers: readonly CircuitBreaker[];
  readonly options: FallbackOptions;

  constructor(
    readonly kind: ProviderKind,
    readonly providers: readonly P[],
    options: Partial<FallbackOptions> = {},
  ) {
    if (providers.length === 0) throw new Error('a fallback needs at least one provider');
    this.options = { ...DEFAULT_FALLBACK_OPTIONS, ...options };
    const breaker = { now: this.options.clock.now, ...this.options.breaker };
    this.breakers = providers.map((provider) => new CircuitBreaker(provider.name, breaker));
    this.name = `fallback(${providers.map((provider) => provider.name).join(',')})`;
  }

  /** The first provider from `start` on whose circuit admits a call; reports the switch. */
  admit(start: number, from?: { name: string; reason: string }): Slot<P> | undefined {
    let switching = from;
    for (let index = start; index < this.providers.length; index++) {
      const provider = this.providers[index]!;
      const permit = this.breakers[index]!.acquire();
      if (!permit) {
        switching ??= { name: provider.name, reason: CIRCUIT_OPEN_CODE };
        continue;
      }
      if (switching) this.#reportFallback({ kind: this.kind, from: switching.name, to: provider.name, reason: switching.reason });
      return { index, provider, permit, retriesUsed: 0 };
    }
    return undefined;
  }

  /** Where to go after `failure` (before any output): the same provider again after a backoff, or the next. */
  async next(slot: Slot<P>, failure: ProviderError, signal: AbortSignal): Promise<Slot<P> | undefined> {
    if (failure.retryable && slot.retriesUsed < this.options.retries) {
      await this.delay(this.options.retryDelayMs * 2 ** slot.retriesUsed, signal);
      const permit = this.breakers[slot.index]!.acquire();
      if (permit) return { ...slot, permit, retriesUsed: slot.retriesUsed + 1 };
    }
    return this.admit(slot.index + 1, { name: slot.provider.name, reason: failure.code });
  }

  /** Runs `start` on provider after provider until one yields its first output (the resolved value). */
  async open<T>(
    signal: AbortSignal,
    start: (provider: P, attempt: AttemptContext) => T | Promise<T>,
    hooks: OpenHooks<T> = {},
  ): Promise<Attempt<P, T>> {
    let slot = this.admit(0);
    let lastFailure: ProviderError | undefined;
    while (slot) {
      const { controller, unlink } = linkedAbort(signal);
      try {
        const value = await this.#firstOutput(slot.provider, signal, controller.signal, start, hooks);
        return { ...slot, value, controller, unlink };
      } catch (error) {
        controller.abort();
        unlink();
        const input = hooks.inputFailure?.();
        if (input || signal.aborted || isAbort(error)) {
          slot.permit.release();
          throw input ? input.error : signal.aborted ? abortError(signal) : error;
        }
        lastFailure = toProviderError(slot.provider.name, error);
        slot.permit.fail(lastFailure);
        slot = await this.next(slot, lastFailure, signal);
      }
    }
    throw lastFailure ?? this.allOpenError();
  }

  /** `open` for providers that answer with an async iterable: yields the winner's whole output. */
  async *stream<T>(
    signal: AbortSignal,
    factory: (provider: P, attempt: AttemptContext) => AsyncIterable<T>,
    hooks: Omit<OpenHooks<never>, 'dispose'> = {},
  ): AsyncGenerator<T> {
    const attempt = await this.open(
      signal,
      async (provider, context) => {
        const iterator = factory(provider, context)[Symbol.asyncIterator]();
        return { iterator, first: await iterator.next() };
      },
      { ...hooks, dispose: ({ iterator }) => closeIterator(iterator) },
    );
    yield* drain(attempt, signal, hooks.inputFailure);
  }

  delay(ms: number, signal: AbortSignal): Promise<void> {
    const { clock } = this.options;
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(abortError(signal));
      const onAbort = (): void => {
        clock.clearTimeout(handle);
        reject(abortError(signal));
      };
      const handle = clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  timeoutError(provider: string): ProviderError {
    return new ProviderError(provider, TIMEOUT_CODE, `${provider}: no output within ${this.options.firstOutputTimeoutMs} ms`, true);
  }

  allOpenError(): ProviderError {
    // Retryable: the circuits half-open after openMs.
    return new ProviderError(this.name, CIRCUIT_OPEN_CODE, `${this.name}: every provider's circuit is open`, true);
  }

  #reportFallback(event: FallbackEvent): void {
    try {
      this.options.onFallback(event);
    } catch (error) {
      process.emitWarning(`onFallback threw: ${(error as Error)?.stack ?? String(error)}`);
    }
  }

  /** Resolves with start's value, or rejects on its failure, the first-output timeout or the caller's abort. */
  #firstOutput<T>(
    provider: P,
    signal: AbortSignal,
    attemptSignal: AbortSignal,
    start: (provider: P, attempt: AttemptContext) => T | Promise<T>,
    hooks: OpenHooks<T>,
  ): Promise<T> {
    const { clock, firstOutputTimeoutMs } = this.options;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: unknown;
      const settle = (): boolean => {
        if (settled) return false;
        settled = true;
        if (timer !== undefined) clock.clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        return true;
      };
      const onAbort = (): void => {
        if (settle()) reject(abortError(signal));
      };
      const startTimer = (): void => {
        if (settled || timer !== undefined || firstOutputTimeoutMs <= 0) return;
        timer = clock.setTimeout(() => {
          if (settle()) reject(this.timeoutError(provider.name));
        }, firstOutputTimeoutMs);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      let started: Promise<T>;
      try {
        started = Promise.resolve(start(provider, { signal: attemptSignal, startTimer }));
      } catch (error) {
        started = Promise.reject(error);
      }
      started.then(
        (value) => (settle() ? resolve(value) : hooks.dispose?.(value)),
        (error) => settle() && reject(error),
      );
      if (hooks.timer !== 'manual') startTimer();
    });
  }
}

/** The rest of a stream whose first item has arrived: reports the outcome to the breaker, never replays. */
async function* drain<P extends { readonly name: string }, T>(
  attempt: Attempt<P, { iterator: AsyncIterator<T>; first: IteratorResult<T> }>,
  signal: AbortSignal,
  inputFailure?: () => { error: unknown } | undefined,
): AsyncGenerator<T> {
  const { iterator, first } = attempt.value;
  let finished = false;
  try {
    for (let result = first; !result.done; result = await iterator.next()) yield result.value;
    finished = true;
    if (signal.aborted) attempt.permit.release();
    else attempt.permit.succeed();
  } catch (error) {
    finished = true;
    const input = inputFailure?.();
    if (input || signal.aborted || isAbort(error)) {
      attempt.permit.release();
      throw input ? input.error : signal.aborted ? abortError(signal) : error;
    }
    const failure = toProviderError(attempt.provider.name, error);
    attempt.permit.fail(failure);
    throw failure;
  } finally {
    if (!finished) {
      // The consumer stopped early (barge-in): not the provider's fault; stop its work.
      attempt.permit.release();
      attempt.controller.abort();
      closeIterator(iterator);
    }
    attempt.unlink();
  }
}

function closeIterator(iterator: AsyncIterator<unknown>): void {
  iterator.return?.().catch(() => {});
}

/** A controller aborted with `parent`; unlink() when done so a long-lived parent keeps no listeners. */
export function linkedAbort(parent: AbortSignal): { controller: AbortController; unlink: () => void } {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(parent.reason);
  if (parent.aborted) controller.abort(parent.reason);
  else parent.addEventListener('abort', onAbort, { once: true });
  return { controller, unlink: () => parent.removeEventListener('abort', onAbort) };
}

export function abortError(signal: AbortSignal): unknown {
  return isAbort(signal.reason) ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}

/** Anything else a provider throws (a bug, an unwrapped socket error) is a non-retryable failure. */
export function toProviderError(provider: string, error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const wrapped = new ProviderError(provider, 'PROVIDER_ERR_UNEXPECTED', `${provider}: ${message}`, false);
  wrapped.cause = error;
  return wrapped;
}
