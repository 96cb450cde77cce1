/**
 * A scripted SttProvider for tests that run without a network. Each `flush()` answers with the
 * next scripted transcript (its partials, then its final), or with `transcribe(utterance)` once
 * the script is used up; every stream records the audio pushed into it.
 *
 * ```ts
 * const stt = new FakeStt({ transcripts: ['hello there'], faults: [{ error: ProviderError.fromHttpStatus('x', 503, '') }] });
 * // the first stream fails at its first flush; the second answers 'hello there'
 * stt.streams[1].utterances[0]  // the frames of the first utterance it heard
 * ```
 *
 * Faults are consumed one per opened stream, in order. Iteration ends on close() or abort, as the
 * SttStream contract says.
 */
import { EventQueue } from '../event-queue.ts';
import type { AudioFrame, ProviderError, SttOptions, SttProvider, SttStream, TranscriptEvent } from '../types.ts';

export interface ScriptedTranscript {
  /** Emitted before the final, at the flush. */
  partials?: string[];
  final: string;
  confidence?: number;
}

export interface SttFault {
  /** Strike as soon as the stream opens (a refused connection), instead of at an event. */
  onOpen?: boolean;
  /** Transcript events the stream delivers before the fault strikes; 0 (default): at the first flush. */
  afterEvents?: number;
  /** The error the iteration rejects with; without one the stream stalls (emits nothing more). */
  error?: ProviderError;
  /** Called when the fault strikes, so a test can act at exactly that moment. */
  onStrike?: () => void;
}

export interface FakeSttOptions {
  name: string;
  /** One per flush, in order, across all streams; a plain string is a final without partials. */
  transcripts: Array<string | ScriptedTranscript>;
  /** The answer once `transcripts` is used up (default: a final ''). */
  transcribe: (utterance: readonly AudioFrame[]) => string | ScriptedTranscript;
  /** One per opened stream, in order; streams beyond the list work. */
  faults: SttFault[];
}

export const DEFAULT_FAKE_STT_OPTIONS: FakeSttOptions = { name: 'fake-stt', transcripts: [], transcribe: () => '', faults: [] };

type Answer = (utterance: readonly AudioFrame[]) => { transcript: ScriptedTranscript; consume: () => void };

export class FakeStt implements SttProvider {
  readonly name: string;
  /** The script; tests may push more while streams run. Consumed only by delivered finals. */
  readonly transcripts: Array<string | ScriptedTranscript>;
  readonly faults: SttFault[];
  /** Every stream opened, oldest first. */
  readonly streams: FakeSttStream[] = [];
  readonly #transcribe: FakeSttOptions['transcribe'];

  constructor(options: Partial<FakeSttOptions> = {}) {
    const { name, transcripts, transcribe, faults } = { ...DEFAULT_FAKE_STT_OPTIONS, ...options };
    this.name = name;
    this.transcripts = [...transcripts];
    this.faults = [...faults];
    this.#transcribe = transcribe;
  }

  stream(options: SttOptions): FakeSttStream {
    const stream = new FakeSttStream(options, this.faults.shift(), this.#answer);
    this.streams.push(stream);
    return stream;
  }

  readonly #answer: Answer = (utterance) => {
    const scripted = this.transcripts[0];
    const answer = scripted ?? this.#transcribe(utterance);
    const transcript = typeof answer === 'string' ? { final: answer } : answer;
    return { transcript, consume: () => void (scripted !== undefined && this.transcripts.shift()) };
  };
}

export class FakeSttStream implements SttStream {
  readonly options: SttOptions;
  /** Every frame pushed, in order. */
  readonly frames: AudioFrame[] = [];
  /** The frames of each flushed utterance. */
  readonly utterances: AudioFrame[][] = [];
  discards = 0;
  closed = false;
  readonly #out = new EventQueue<TranscriptEvent>();
  readonly #answer: Answer;
  #fault: SttFault | undefined;
  #current: AudioFrame[] = [];
  #delivered = 0;
  #stalled = false;

  constructor(options: SttOptions, fault: SttFault | undefined, answer: Answer) {
    this.options = options;
    this.#fault = fault;
    this.#answer = answer;
    const end = (): void => {
      this.closed = true;
      this.#out.end();
    };
    if (options.signal.aborted) end();
    else options.signal.addEventListener('abort', end, { once: true });
    if (fault?.onOpen) queueMicrotask(() => this.#strike());
  }

  pushAudio(frame: AudioFrame): void {
    if (this.closed) return;
    this.frames.push(frame);
    this.#current.push(frame);
  }

  flush(): void {
    if (this.closed) return;
    const utterance = this.#current;
    this.#current = [];
    this.utterances.push(utterance);
    const { transcript, consume } = this.#answer(utterance);
    for (const text of transcript.partials ?? []) {
      if (!this.#emit({ type: 'partial', text })) return;
    }
    const final: TranscriptEvent = { type: 'final', text: transcript.final };
    if (transcript.confidence !== undefined) final.confidence = transcript.confidence;
    if (this.#emit(final)) consume();
  }

  discard(): void {
    this.discards++;
    this.#current = [];
  }

  close(): void {
    this.closed = true;
    this.#out.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<TranscriptEvent> {
    return this.#out[Symbol.asyncIterator]();
  }

  /** False when the event was not delivered (the fault struck, or the stream is stalled or over). */
  #emit(event: TranscriptEvent): boolean {
    if (this.closed || this.#stalled) return false;
    if (this.#fault && this.#delivered === (this.#fault.afterEvents ?? 0)) {
      this.#strike();
      return false;
    }
    this.#out.push(event);
    this.#delivered++;
    return true;
  }

  #strike(): void {
    const fault = this.#fault;
    if (!fault || this.closed) return;
    this.#fault = undefined;
    this.#stalled = true;
    if (fault.error) this.#out.fail(fault.error);
    fault.onStrike?.();
  }
}
