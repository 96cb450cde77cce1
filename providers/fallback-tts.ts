/**
 * A TtsProvider over an ordered list of TTS providers (rules in fallback.ts). The text arrives as
 * a stream that only one provider can read, so it is recorded as it is read: an attempt that
 * fails before its first audio frame hands the next attempt a reader that replays the text so far
 * and then follows the live stream. The first-output timeout runs from the first text chunk an
 * attempt reads, because a TTS cannot speak before the agent has written something.
 */
import { abortError, ProviderChain, type FallbackOptions } from './fallback.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import type { AudioFrame, TtsOptions, TtsProvider } from './types.ts';

export class FallbackTts implements TtsProvider {
  readonly name: string;
  readonly #chain: ProviderChain<TtsProvider>;

  constructor(providers: readonly TtsProvider[], options: Partial<FallbackOptions> = {}) {
    this.#chain = new ProviderChain('tts', providers, options);
    this.name = this.#chain.name;
  }

  /** One per provider, in order (telemetry listens to their `statechange`). */
  get breakers(): readonly CircuitBreaker[] {
    return this.#chain.breakers;
  }

  synthesize(text: AsyncIterable<string>, options: TtsOptions): AsyncIterable<AudioFrame> {
    return this.#synthesize(text, options);
  }

  async *#synthesize(text: AsyncIterable<string>, options: TtsOptions): AsyncGenerator<AudioFrame> {
    const input = new ReplayableText(text);
    try {
      yield* this.#chain.stream(
        options.signal,
        (provider, attempt) => provider.synthesize(input.reader(attempt.signal, attempt.startTimer), { ...options, signal: attempt.signal }),
        // A failing text source (the agent) is not the TTS provider's fault: it propagates as is.
        { timer: 'manual', inputFailure: () => input.failure },
      );
    } finally {
      input.close();
    }
  }
}

/** Reads a text stream once and lets successive readers each read it from the start. */
class ReplayableText {
  readonly #source: AsyncIterator<string>;
  readonly #chunks: string[] = [];
  #done = false;
  #pulling: Promise<void> | undefined;
  failure: { error: unknown } | undefined;

  constructor(text: AsyncIterable<string>) {
    this.#source = text[Symbol.asyncIterator]();
  }

  async *reader(signal: AbortSignal, onFirstChunk: () => void): AsyncGenerator<string> {
    for (let index = 0; ; index++) {
      while (index >= this.#chunks.length) {
        if (this.failure) throw this.failure.error;
        if (this.#done) return;
        await this.#pullUnlessAborted(signal);
      }
      if (index === 0) onFirstChunk();
      yield this.#chunks[index]!;
    }
  }

  /** Stops the source when the synthesis ends early (barge-in, every provider failed). */
  close(): void {
    if (this.#done || this.failure) return;
    this.#done = true;
    this.#source.return?.().catch(() => {});
  }

  #pullUnlessAborted(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      // An abandoned attempt stops waiting at once; the pull itself goes on for the next reader.
      const onAbort = (): void => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      this.#pull().then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  #pull(): Promise<void> {
    this.#pulling ??= this.#source.next().then(
      (result) => {
        if (result.done) this.#done = true;
        else this.#chunks.push(result.value);
        this.#pulling = undefined;
      },
      (error: unknown) => {
        this.failure = { error };
        this.#pulling = undefined;
      },
    );
    return this.#pulling;
  }
}
