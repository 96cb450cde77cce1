/**
 * An SttProvider over an ordered list of STT providers (rules in fallback.ts). An STT stream
 * lives for a whole session, so "before the first output" is judged per utterance: the stream
 * keeps each utterance's audio until its final arrives, and when the provider fails before the
 * utterance produced any transcript event, a new stream (same provider on a retry, else the next)
 * gets that audio replayed, flushes included, and the user never notices. Once an utterance has
 * produced a partial, a failure propagates. After a switch the stream stays on the new provider;
 * the next session starts from the preferred one again (its breaker permitting).
 */
import { EventQueue } from './event-queue.ts';
import { DEFAULT_FALLBACK_OPTIONS, linkedAbort, ProviderChain, toProviderError, type FallbackOptions, type Slot } from './fallback.ts';
import type { CircuitBreaker } from './circuit-breaker.ts';
import { isAbort, ProviderError, type AudioFrame, type SttOptions, type SttProvider, type SttStream, type TranscriptEvent } from './types.ts';

export interface FallbackSttOptions extends FallbackOptions {
  /**
   * Audio kept per stream for replay (every utterance not yet answered by a final). An utterance
   * that outgrows it is dropped from the replay buffer, and a failure during it propagates.
   * 30 s of 16 kHz audio is ~1 MB.
   */
  maxReplayMs: number;
}

export const DEFAULT_FALLBACK_STT_OPTIONS: FallbackSttOptions = { ...DEFAULT_FALLBACK_OPTIONS, maxReplayMs: 30_000 };

export class FallbackStt implements SttProvider {
  readonly name: string;
  readonly #chain: ProviderChain<SttProvider>;
  readonly #maxReplayMs: number;

  constructor(providers: readonly SttProvider[], options: Partial<FallbackSttOptions> = {}) {
    const { maxReplayMs, ...rest } = { ...DEFAULT_FALLBACK_STT_OPTIONS, ...options };
    this.#chain = new ProviderChain('stt', providers, rest);
    this.#maxReplayMs = maxReplayMs;
    this.name = this.#chain.name;
  }

  /** One per provider, in order (telemetry listens to their `statechange`). */
  get breakers(): readonly CircuitBreaker[] {
    return this.#chain.breakers;
  }

  stream(options: SttOptions): SttStream {
    return new FailoverSttStream(this.#chain, options, this.#maxReplayMs);
  }
}

/** An utterance's audio, kept until its final arrives. */
interface Utterance {
  frames: AudioFrame[];
  ms: number;
  flushed: boolean;
  /** Outgrew the replay buffer: cannot be replayed whole. */
  lost: boolean;
}

interface CurrentStream {
  slot: Slot<SttProvider>;
  stream: SttStream | undefined;
  controller: AbortController;
  unlink: () => void;
}

class FailoverSttStream implements SttStream {
  readonly #chain: ProviderChain<SttProvider>;
  readonly #options: SttOptions;
  readonly #maxReplayMs: number;
  readonly #out = new EventQueue<TranscriptEvent>();
  /** Utterances the provider has not answered yet, oldest first. */
  readonly #pending: Utterance[] = [];
  #pendingMs = 0;
  /** The oldest pending utterance has produced a transcript event: no replay from here on. */
  #outputStarted = false;
  /** Undefined while switching providers (frames are only buffered then). */
  #current: CurrentStream | undefined;
  #timer: unknown;
  #closed = false;
  readonly #onAbort = (): void => this.#end();

  constructor(chain: ProviderChain<SttProvider>, options: SttOptions, maxReplayMs: number) {
    this.#chain = chain;
    this.#options = options;
    this.#maxReplayMs = maxReplayMs;
    if (options.signal.aborted) {
      this.#end();
      return;
    }
    options.signal.addEventListener('abort', this.#onAbort, { once: true });
    const slot = chain.admit(0);
    if (slot) this.#start(slot);
    else this.#end(chain.allOpenError());
  }

  pushAudio(frame: AudioFrame): void {
    if (this.#closed) return;
    let utterance = this.#pending.at(-1);
    if (!utterance || utterance.flushed) {
      utterance = { frames: [], ms: 0, flushed: false, lost: false };
      this.#pending.push(utterance);
    }
    if (!utterance.lost) {
      const ms = (frame.samples.length * 1000) / frame.sampleRate;
      if (this.#pendingMs + ms > this.#maxReplayMs) {
        utterance.lost = true;
        this.#pendingMs -= utterance.ms;
        utterance.frames = [];
        utterance.ms = 0;
      } else {
        // A copy: the caller may reuse its sample buffer for the next frame.
        utterance.frames.push({ samples: frame.samples.slice(), sampleRate: frame.sampleRate });
        utterance.ms += ms;
        this.#pendingMs += ms;
      }
    }
    this.#current?.stream?.pushAudio(frame);
  }

  flush(): void {
    if (this.#closed) return;
    const last = this.#pending.at(-1);
    if (last && !last.flushed) last.flushed = true;
    else this.#pending.push({ frames: [], ms: 0, flushed: true, lost: false });
    this.#current?.stream?.flush();
    this.#armTimer();
  }

  discard(): void {
    if (this.#closed) return;
    const last = this.#pending.at(-1);
    if (last && !last.flushed) {
      this.#pending.pop();
      this.#pendingMs -= last.ms;
      if (this.#pending.length === 0) this.#outputStarted = false;
    }
    this.#current?.stream?.discard();
  }

  close(): void {
    this.#end();
  }

  [Symbol.asyncIterator](): AsyncIterator<TranscriptEvent> {
    return this.#out[Symbol.asyncIterator]();
  }

  #start(slot: Slot<SttProvider>): void {
    const { controller, unlink } = linkedAbort(this.#options.signal);
    const current: CurrentStream = { slot, stream: undefined, controller, unlink };
    this.#current = current;
    try {
      current.stream = slot.provider.stream({ ...this.#options, signal: controller.signal });
    } catch (error) {
      void this.#fail(current, error);
      return;
    }
    for (const utterance of this.#pending) {
      for (const frame of utterance.frames) current.stream.pushAudio(frame);
      if (utterance.flushed) current.stream.flush();
    }
    this.#armTimer();
    void this.#pump(current, current.stream);
  }

  async #pump(current: CurrentStream, stream: SttStream): Promise<void> {
    const name = current.slot.provider.name;
    try {
      for await (const event of stream) {
        if (current !== this.#current) return;
        this.#deliver(current, event);
      }
      if (current !== this.#current) return;
      // A stream that ends on its own has lost its connection: retryable.
      throw new ProviderError(name, 'PROVIDER_ERR_STREAM_ENDED', `${name}: stream ended before it was closed`, true);
    } catch (error) {
      if (current === this.#current) await this.#fail(current, error);
    }
  }

  #deliver(current: CurrentStream, event: TranscriptEvent): void {
    this.#clearTimer();
    this.#outputStarted = true;
    this.#out.push(event);
    if (event.type !== 'final') return;
    const answered = this.#pending.shift();
    if (answered) this.#pendingMs -= answered.ms;
    this.#outputStarted = false;
    current.slot.permit.succeed();
    current.slot.retriesUsed = 0;
    this.#armTimer();
  }

  async #fail(current: CurrentStream, error: unknown): Promise<void> {
    this.#clearTimer();
    this.#current = undefined;
    current.stream?.close();
    current.controller.abort();
    current.unlink();
    const { signal } = this.#options;
    if (this.#closed || signal.aborted || isAbort(error)) {
      current.slot.permit.release();
      this.#end();
      return;
    }
    const failure = toProviderError(current.slot.provider.name, error);
    current.slot.permit.fail(failure);
    if (this.#outputStarted || this.#audioLost()) return this.#end(failure);
    let next: Slot<SttProvider> | undefined;
    try {
      next = await this.#chain.next(current.slot, failure, signal);
    } catch {
      return this.#end(); // aborted during the backoff
    }
    if (this.#closed || !next || this.#audioLost()) {
      next?.permit.release();
      return this.#end(failure);
    }
    this.#start(next);
  }

  #audioLost(): boolean {
    return this.#pending.some((utterance) => utterance.lost);
  }

  /** Runs from a flush until the oldest pending utterance's first transcript event. */
  #armTimer(): void {
    const { firstOutputTimeoutMs, clock } = this.#chain.options;
    const current = this.#current;
    if (firstOutputTimeoutMs <= 0 || this.#timer !== undefined || !current || this.#outputStarted) return;
    if (!this.#pending[0]?.flushed) return;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      if (current === this.#current) void this.#fail(current, this.#chain.timeoutError(current.slot.provider.name));
    }, firstOutputTimeoutMs);
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    this.#chain.options.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Ends the iteration (after what is queued) or, with an error, rejects it. Idempotent. */
  #end(error?: unknown): void {
    this.#closed = true;
    this.#clearTimer();
    this.#options.signal.removeEventListener('abort', this.#onAbort);
    const current = this.#current;
    this.#current = undefined;
    if (current) {
      if (this.#options.signal.aborted) current.controller.abort(this.#options.signal.reason);
      current.stream?.close();
      current.slot.permit.release();
      current.unlink();
    }
    this.#pending.length = 0;
    this.#pendingMs = 0;
    if (error !== undefined) this.#out.fail(error);
    else this.#out.end();
  }
}
