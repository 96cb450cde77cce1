/**
 * An S2sProvider over an ordered list of speech-to-speech providers (rules in fallback.ts). The
 * connect is the first output: a failed or timed-out connect moves on; once connected, a session
 * failure propagates (the conversation state lives in the provider and cannot be replayed) and
 * counts against that provider's breaker.
 */
import { ProviderChain, toProviderError, type Attempt, type FallbackOptions } from './fallback.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import { isAbort, type AudioFrame, type S2sEvent, type S2sOptions, type S2sProvider, type S2sSession } from './types.ts';

export class FallbackS2s implements S2sProvider {
  readonly name: string;
  readonly #chain: ProviderChain<S2sProvider>;

  constructor(providers: readonly S2sProvider[], options: Partial<FallbackOptions> = {}) {
    this.#chain = new ProviderChain('s2s', providers, options);
    this.name = this.#chain.name;
  }

  /** One per provider, in order (telemetry listens to their `statechange`). */
  get breakers(): readonly CircuitBreaker[] {
    return this.#chain.breakers;
  }

  async connect(options: S2sOptions): Promise<S2sSession> {
    const attempt = await this.#chain.open(
      options.signal,
      (provider, context) => provider.connect({ ...options, signal: context.signal }),
      { dispose: (late) => late.close() },
    );
    attempt.permit.succeed();
    return new FailoverS2sSession(attempt, options.signal);
  }
}

class FailoverS2sSession implements S2sSession {
  readonly #attempt: Attempt<S2sProvider, S2sSession>;
  readonly #signal: AbortSignal;

  constructor(attempt: Attempt<S2sProvider, S2sSession>, signal: AbortSignal) {
    this.#attempt = attempt;
    this.#signal = signal;
  }

  pushAudio(frame: AudioFrame): void {
    this.#attempt.value.pushAudio(frame);
  }

  cancelResponse(heardText?: string): void {
    this.#attempt.value.cancelResponse(heardText);
  }

  say(text: string): void {
    this.#attempt.value.say(text);
  }

  close(): void {
    this.#attempt.permit.release();
    this.#attempt.unlink();
    this.#attempt.value.close();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<S2sEvent> {
    const { value: session, provider, permit } = this.#attempt;
    try {
      yield* session;
    } catch (error) {
      if (this.#signal.aborted || isAbort(error)) throw error;
      const failure = toProviderError(provider.name, error);
      permit.fail(failure);
      throw failure;
    } finally {
      this.#attempt.unlink();
    }
  }
}
