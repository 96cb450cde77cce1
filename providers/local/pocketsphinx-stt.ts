/**
 * Offline speech-to-text with pocketsphinx (the embedded default: no keys, no network).
 *
 * A stream leases a decoder from its thread's pool at the first frame of an utterance and gives
 * it back at the final (or discard). When every decoder is busy the utterance's audio waits in
 * memory and is decoded, faster than real time, once one frees. Partials come at most every
 * `partialIntervalMs` of audio; none once the utterance is flushed, since its final is coming.
 */
import { EventQueue } from '../event-queue.ts';
import { ProviderError, isAbort } from '../types.ts';
import type { AudioFrame, SttOptions, SttProvider, SttStream, TranscriptEvent } from '../types.ts';
import { PROVIDER, sharedDecoderPool, type DecoderPool, type PocketsphinxDecoder } from './pocketsphinx-library.ts';

export interface PocketsphinxSttOptions {
  /** Folder with the acoustic model folder `en-us/`, `en-us.lm.bin` and `cmudict-en-us.dict`. */
  modelDir: string;
  /** Decoders shared by all streams of this thread (~100-150 MB each). */
  decoders: number;
  partialIntervalMs: number;
  /** Audio one utterance may hold while it waits for a decoder; beyond it the oldest is dropped. */
  maxBacklogMs: number;
  /** Further pocketsphinx options, e.g. `['-fwdflat', 'no']` for a faster, slightly worse search. */
  decoderArgs: readonly string[];
}

export const DEFAULT_POCKETSPHINX_STT_OPTIONS: PocketsphinxSttOptions = {
  modelDir: '/usr/share/pocketsphinx/model/en-us',
  decoders: 1,
  partialIntervalMs: 200,
  maxBacklogMs: 30_000,
  decoderArgs: [],
};

/** The only rate the en-us acoustic model was trained on. */
const SAMPLE_RATE = 16000;
/** Audio per native call: small enough for timely partials, large enough to keep hops rare. */
const CHUNK_SAMPLES = SAMPLE_RATE / 5;

export class PocketsphinxStt implements SttProvider {
  readonly name = PROVIDER;
  readonly #options: PocketsphinxSttOptions;
  readonly #pool: DecoderPool;
  #closed = false;

  constructor(options: Partial<PocketsphinxSttOptions> = {}) {
    this.#options = { ...DEFAULT_POCKETSPHINX_STT_OPTIONS, ...options };
    const dir = this.#options.modelDir;
    const args = ['-hmm', `${dir}/en-us`, '-lm', `${dir}/en-us.lm.bin`, '-dict', `${dir}/cmudict-en-us.dict`];
    args.push('-samprate', String(SAMPLE_RATE), ...this.#options.decoderArgs);
    this.#pool = sharedDecoderPool(args, this.#options.decoders);
  }

  stream(options: SttOptions): SttStream {
    if (this.#closed) throw new Error('PocketsphinxStt is closed');
    return new PocketsphinxStream(this.#pool, this.#options, options);
  }

  /** Creates a decoder ahead of the first turn (else that turn waits ~0.5 s for it). */
  async warmUp(): Promise<void> {
    if (this.#closed) return;
    const decoder = await this.#pool.lease(new AbortController().signal);
    this.#pool.giveBack(decoder, false);
  }

  /** Lets go of the thread's decoders (freed once no other provider uses them). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool.releaseUser();
  }
}

/** The audio of one user turn, from its first frame to flush() or discard(). */
class Utterance {
  readonly #chunks: Int16Array[] = [];
  #pending = 0;
  #wake: (() => void) | undefined;
  flushed = false;
  dropped = false; // discarded, or the stream closed
  decodedSamples = 0;
  partialAtSamples = 0;
  lastPartial = '';

  constructor(readonly maxBacklogSamples: number) {}

  get pendingSamples(): number {
    return this.#pending;
  }

  /** Returns the samples dropped to respect the backlog bound. */
  append(samples: Int16Array): number {
    this.#chunks.push(samples);
    this.#pending += samples.length;
    let dropped = 0;
    while (this.#pending > this.maxBacklogSamples && this.#chunks.length > 1) {
      const oldest = this.#chunks.shift() as Int16Array;
      this.#pending -= oldest.length;
      dropped += oldest.length;
    }
    this.notify();
    return dropped;
  }

  /** Up to `max` of the oldest pending samples, as one array; undefined when none are pending. */
  take(max: number): Int16Array | undefined {
    if (this.#pending === 0) return undefined;
    const out = new Int16Array(Math.min(max, this.#pending));
    let filled = 0;
    while (filled < out.length) {
      const head = this.#chunks[0];
      const n = Math.min(head.length, out.length - filled);
      out.set(head.subarray(0, n), filled);
      filled += n;
      if (n === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(n);
    }
    this.#pending -= filled;
    return out;
  }

  /** Resolves at the next append, flush or drop. */
  changed(): Promise<void> {
    return new Promise((resolve) => (this.#wake = resolve));
  }

  notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

class PocketsphinxStream implements SttStream {
  readonly #events = new EventQueue<TranscriptEvent>();
  readonly #pool: DecoderPool;
  readonly #options: PocketsphinxSttOptions;
  readonly #stt: SttOptions;
  /** Utterances in order; the head is the one being decoded, `#open` the one receiving audio. */
  readonly #queue: Utterance[] = [];
  #open: Utterance | undefined;
  #running = false;
  #closed = false;
  readonly #stop = new AbortController();
  readonly #onAbort = (): void => this.close();
  #droppedSamples = 0;

  constructor(pool: DecoderPool, options: PocketsphinxSttOptions, stt: SttOptions) {
    this.#pool = pool;
    this.#options = options;
    this.#stt = stt;
    if (stt.sampleRate !== SAMPLE_RATE) {
      this.#fail(new ProviderError(PROVIDER, 'PROVIDER_ERR_SAMPLE_RATE', `${PROVIDER}: needs ${SAMPLE_RATE} Hz audio, got ${stt.sampleRate}`, false));
    } else if (!/^en([-_]|$)/i.test(stt.language)) {
      this.#fail(new ProviderError(PROVIDER, 'PROVIDER_ERR_LANGUAGE', `${PROVIDER}: only English is installed, not ${stt.language}`, false));
    } else if (stt.signal.aborted) {
      this.close();
    } else {
      stt.signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  pushAudio(frame: AudioFrame): void {
    if (this.#closed) return;
    if (frame.sampleRate !== SAMPLE_RATE) {
      this.#fail(new ProviderError(PROVIDER, 'PROVIDER_ERR_SAMPLE_RATE', `${PROVIDER}: frame at ${frame.sampleRate} Hz, expected ${SAMPLE_RATE}`, false));
      return;
    }
    if (!this.#open) this.#begin();
    // A copy: the pipeline may reuse its frame buffers, and the search reads this one later.
    this.#droppedSamples += (this.#open as Utterance).append(frame.samples.slice());
  }

  flush(): void {
    if (this.#closed) return;
    const utterance = this.#open ?? this.#begin();
    this.#open = undefined;
    utterance.flushed = true;
    utterance.notify();
  }

  discard(): void {
    const utterance = this.#open;
    this.#open = undefined;
    if (!utterance) return;
    utterance.dropped = true;
    utterance.notify();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stt.signal.removeEventListener('abort', this.#onAbort);
    this.#stop.abort();
    for (const utterance of this.#queue) {
      utterance.dropped = true;
      utterance.notify();
    }
    this.#open = undefined;
    this.#events.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<TranscriptEvent> {
    return this.#events[Symbol.asyncIterator]();
  }

  toJSON(): { pendingUtterances: number; droppedMs: number } {
    return { pendingUtterances: this.#queue.length, droppedMs: (this.#droppedSamples / SAMPLE_RATE) * 1000 };
  }

  #begin(): Utterance {
    const utterance = new Utterance((this.#options.maxBacklogMs / 1000) * SAMPLE_RATE);
    this.#open = utterance;
    this.#queue.push(utterance);
    if (!this.#running) void this.#run();
    return utterance;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        await this.#decode(this.#queue[0]);
        this.#queue.shift();
      }
    } catch (error) {
      if (!isAbort(error)) this.#fail(error);
    } finally {
      this.#running = false;
    }
  }

  async #decode(utterance: Utterance): Promise<void> {
    // Wait for audio, flush or discard before taking a decoder from someone who has audio.
    while (utterance.pendingSamples === 0 && !utterance.flushed && !utterance.dropped) await utterance.changed();
    if (utterance.dropped) return;
    if (utterance.pendingSamples === 0) {
      this.#events.push({ type: 'final', text: '' });
      return;
    }
    const decoder = await this.#pool.lease(this.#stop.signal);
    let broken = true;
    try {
      if (utterance.dropped) {
        broken = false;
        return;
      }
      await decoder.startUtterance();
      const complete = await this.#feed(decoder, utterance);
      await decoder.endUtterance();
      broken = false;
      if (complete && !this.#closed) this.#events.push({ type: 'final', text: (await decoder.hypothesis()).trim() });
    } finally {
      this.#pool.giveBack(decoder, broken);
    }
  }

  /** Feeds the utterance to the decoder until it is flushed (true) or dropped (false). */
  async #feed(decoder: PocketsphinxDecoder, utterance: Utterance): Promise<boolean> {
    const partialSamples = (this.#options.partialIntervalMs / 1000) * SAMPLE_RATE;
    for (;;) {
      if (utterance.dropped) return false;
      const chunk = utterance.take(CHUNK_SAMPLES);
      if (!chunk) {
        if (utterance.flushed) return true;
        await utterance.changed();
        continue;
      }
      await decoder.process(chunk);
      utterance.decodedSamples += chunk.length;
      if (utterance.flushed || utterance.decodedSamples - utterance.partialAtSamples < partialSamples) continue;
      utterance.partialAtSamples = utterance.decodedSamples;
      const text = (await decoder.hypothesis()).trim();
      if (text && text !== utterance.lastPartial && !utterance.dropped && !utterance.flushed) {
        utterance.lastPartial = text;
        this.#events.push({ type: 'partial', text });
      }
    }
  }

  #fail(error: unknown): void {
    if (this.#closed) return;
    const failure = error instanceof ProviderError ? error : new ProviderError(PROVIDER, 'PROVIDER_ERR_DECODER', `${PROVIDER}: ${(error as Error).message}`, true);
    this.#events.fail(failure);
    this.close();
  }
}
