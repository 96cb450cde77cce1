/**
 * A scripted S2sProvider for tests that run without a network. A session delivers the scripted
 * `events` right after connect, answers every say(text) with `reply(text)`, and lets the test play
 * the provider with `emit(event)` / `fail(error)`. It records the audio, cancels and says it got.
 *
 * ```ts
 * const s2s = new FakeS2s({ events: [{ type: 'speech_started' }], faults: [{ error }] });
 * // the first connect rejects with `error`; the second session delivers speech_started
 * s2s.sessions[0].emit({ type: 'response_done' });
 * ```
 *
 * Faults are consumed one per connect(), in order. Iteration ends on close() or abort.
 */
import { EventQueue } from '../event-queue.ts';
import type { AudioFrame, ProviderError, S2sEvent, S2sOptions, S2sProvider, S2sSession } from '../types.ts';
import { toneFrame } from './fake-tts.ts';

export interface S2sFault {
  /** Events delivered before the fault strikes; 0 (default): the connect itself fails. */
  afterEvents?: number;
  /** The error to fail with; without one the connect (or the session) stalls until aborted. */
  error?: ProviderError;
  /** Called when the fault strikes, so a test can act at exactly that moment. */
  onStrike?: () => void;
}

export interface FakeS2sOptions {
  name: string;
  /** Delivered by every session right after connect. */
  events: S2sEvent[];
  /** A session's answer to say(text). */
  reply: (text: string) => S2sEvent[];
  /** One per connect(), in order; connects beyond the list work. */
  faults: S2sFault[];
}

export const DEFAULT_FAKE_S2S_OPTIONS: FakeS2sOptions = {
  name: 'fake-s2s',
  events: [],
  reply: (text) => [
    { type: 'transcript', role: 'agent', text, final: true },
    ...[0, 1, 2].map((i): S2sEvent => ({ type: 'audio', frame: toneFrame({ sampleRate: 24_000, frameMs: 20, hz: 440, startSample: i * 480 }) })),
    { type: 'response_done' },
  ],
  faults: [],
};

export class FakeS2s implements S2sProvider {
  readonly name: string;
  readonly faults: S2sFault[];
  /** The options of every connect() call, oldest first (also the failed ones). */
  readonly connects: S2sOptions[] = [];
  /** Every session that connected, oldest first. */
  readonly sessions: FakeS2sSession[] = [];
  readonly #options: FakeS2sOptions;

  constructor(options: Partial<FakeS2sOptions> = {}) {
    this.#options = { ...DEFAULT_FAKE_S2S_OPTIONS, ...options };
    this.name = this.#options.name;
    this.faults = [...this.#options.faults];
  }

  async connect(options: S2sOptions): Promise<FakeS2sSession> {
    this.connects.push(options);
    const fault = this.faults.shift();
    options.signal.throwIfAborted();
    if (fault && (fault.afterEvents ?? 0) === 0) {
      fault.onStrike?.();
      if (fault.error) throw fault.error;
      await new Promise((_, reject) => options.signal.addEventListener('abort', () => reject(options.signal.reason), { once: true }));
    }
    const session = new FakeS2sSession(options, fault, this.#options.reply);
    this.sessions.push(session);
    for (const event of this.#options.events) session.emit(event);
    return session;
  }
}

export class FakeS2sSession implements S2sSession {
  readonly options: S2sOptions;
  readonly frames: AudioFrame[] = [];
  /** The heardText of each cancelResponse() call. */
  readonly cancels: Array<string | undefined> = [];
  readonly said: string[] = [];
  closed = false;
  readonly #out = new EventQueue<S2sEvent>();
  readonly #reply: (text: string) => S2sEvent[];
  #fault: S2sFault | undefined;
  #delivered = 0;
  #stalled = false;

  constructor(options: S2sOptions, fault: S2sFault | undefined, reply: (text: string) => S2sEvent[]) {
    this.options = options;
    this.#fault = fault;
    this.#reply = reply;
    options.signal.addEventListener('abort', () => this.close(), { once: true });
  }

  /** Delivers an event now, as the provider would (subject to the scripted fault). */
  emit(event: S2sEvent): void {
    if (this.closed || this.#stalled) return;
    const fault = this.#fault;
    if (fault && this.#delivered === fault.afterEvents) {
      this.#fault = undefined;
      this.#stalled = true;
      if (fault.error) this.#out.fail(fault.error);
      fault.onStrike?.();
      return;
    }
    this.#out.push(event);
    this.#delivered++;
  }

  /** Fails the session now (a dropped connection). */
  fail(error: ProviderError): void {
    this.#out.fail(error);
  }

  pushAudio(frame: AudioFrame): void {
    if (!this.closed) this.frames.push(frame);
  }

  cancelResponse(heardText?: string): void {
    this.cancels.push(heardText);
  }

  say(text: string): void {
    this.said.push(text);
    for (const event of this.#reply(text)) this.emit(event);
  }

  close(): void {
    this.closed = true;
    this.#out.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<S2sEvent> {
    return this.#out[Symbol.asyncIterator]();
  }
}
