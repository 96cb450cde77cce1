/**
 * Speech to text with OpenAI's transcription endpoint. The endpoint takes a whole file, so the
 * stream buffers one utterance and, on `flush()`, uploads it as a WAV
 * (`POST {baseUrl}/audio/transcriptions`, multipart). With `stream=true` the gpt-4o transcribe
 * models answer with server-sent events (`transcript.text.delta` -> `partial` with the text so
 * far, `transcript.text.done` -> `final`); whisper-1 ignores `stream` and answers `{ "text" }`.
 *
 * Flushes are transcribed one after another, so finals come out in utterance order.
 */
import { endianness } from 'node:os';
import { EventQueue } from '../event-queue.ts';
import type { AudioFrame, SttOptions, SttProvider, SttStream, TranscriptEvent } from '../types.ts';
import { openHttpStream, parseVendorJson, sseEvents, truncatedError, vendorError, type HttpStream } from './http.ts';
import { multipartBody, type MultipartBody } from './multipart.ts';

export interface OpenAiSpeechToTextOptions {
  baseUrl: string;
  /** Empty: no Authorization header. */
  apiKey: string;
  model: string;
  /** Ask for partial transcripts as server-sent events (ignored by whisper-1, which then answers JSON). */
  stream: boolean;
  /**
   * Audio kept per utterance. What the user says beyond it is dropped (counted in
   * `droppedSamples`) and the final covers the first `maxUtteranceMs` only: memory and upload
   * size stay bounded when end-of-turn detection never fires (noise, an open mic).
   */
  maxUtteranceMs: number;
  /** Until the first byte of the answer: upload plus recognition. */
  responseTimeoutMs: number;
  /** Between two chunks of a streamed answer. */
  idleTimeoutMs: number;
}

export const DEFAULT_OPENAI_SPEECH_TO_TEXT_OPTIONS: OpenAiSpeechToTextOptions = {
  baseUrl: 'https://api.openai.com/v1',
  apiKey: '',
  model: 'gpt-4o-mini-transcribe',
  stream: true,
  maxUtteranceMs: 60_000,
  responseTimeoutMs: 15_000,
  idleTimeoutMs: 10_000,
};

export class OpenAiSpeechToText implements SttProvider {
  readonly name = 'openai-stt';
  readonly #options: OpenAiSpeechToTextOptions;

  constructor(options: Partial<OpenAiSpeechToTextOptions> = {}) {
    this.#options = { ...DEFAULT_OPENAI_SPEECH_TO_TEXT_OPTIONS, ...options };
  }

  stream(options: SttOptions): OpenAiSttStream {
    return new OpenAiSttStream(this.name, this.#options, options);
  }
}

export class OpenAiSttStream implements SttStream {
  readonly #events = new EventQueue<TranscriptEvent>();
  readonly #provider: string;
  readonly #options: OpenAiSpeechToTextOptions;
  readonly #stt: SttOptions;
  readonly #maxSamples: number;
  #utterance: Int16Array[] = [];
  #samples = 0;
  #work: Promise<void> = Promise.resolve();
  // discard() and close() bump the generation: queued and in-flight work of an older one is void.
  #generation = 0;
  #inFlight: AbortController | undefined;
  #closed = false;
  /** Samples dropped because an utterance exceeded `maxUtteranceMs`. */
  droppedSamples = 0;

  constructor(provider: string, options: OpenAiSpeechToTextOptions, stt: SttOptions) {
    this.#provider = provider;
    this.#options = options;
    this.#stt = stt;
    this.#maxSamples = Math.round((options.maxUtteranceMs * stt.sampleRate) / 1000);
    if (stt.signal.aborted) this.close();
    else stt.signal.addEventListener('abort', () => this.close(), { once: true });
  }

  pushAudio(frame: AudioFrame): void {
    if (this.#closed) return;
    if (frame.sampleRate !== this.#stt.sampleRate) {
      throw new RangeError(`${this.#provider}: frame at ${frame.sampleRate} Hz, stream opened at ${this.#stt.sampleRate} Hz`);
    }
    const room = this.#maxSamples - this.#samples;
    const kept = Math.min(room, frame.samples.length);
    this.droppedSamples += frame.samples.length - kept;
    if (kept <= 0) return;
    // A copy: callers reuse their frame buffers.
    this.#utterance.push(frame.samples.slice(0, kept));
    this.#samples += kept;
  }

  flush(): void {
    if (this.#closed) return;
    const audio = this.#takeUtterance();
    const generation = this.#generation;
    this.#work = this.#work.then(() => this.#transcribe(audio, generation));
  }

  discard(): void {
    this.#takeUtterance();
    this.#generation++;
    this.#inFlight?.abort();
  }

  /** Ends the iteration now; an utterance still being transcribed gets no final. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.discard();
    this.#events.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<TranscriptEvent> {
    return this.#events[Symbol.asyncIterator]();
  }

  #takeUtterance(): Int16Array {
    const audio = new Int16Array(this.#samples);
    let offset = 0;
    for (const part of this.#utterance) {
      audio.set(part, offset);
      offset += part.length;
    }
    this.#utterance = [];
    this.#samples = 0;
    return audio;
  }

  async #transcribe(audio: Int16Array, generation: number): Promise<void> {
    const current = (): boolean => !this.#closed && generation === this.#generation;
    if (!current()) return;
    if (audio.length === 0) {
      this.#events.push({ type: 'final', text: '' });
      return;
    }
    const controller = new AbortController();
    this.#inFlight = controller;
    let stream: HttpStream | undefined;
    try {
      stream = await openHttpStream({
        provider: this.#provider,
        url: `${this.#options.baseUrl.replace(/\/+$/, '')}/audio/transcriptions`,
        apiKey: this.#options.apiKey,
        body: this.#form(audio),
        accept: 'text/event-stream, application/json',
        signal: controller.signal,
        firstByteTimeoutMs: this.#options.responseTimeoutMs,
        idleTimeoutMs: this.#options.idleTimeoutMs,
      });
      const text = stream.contentType.includes('text/event-stream') ? await this.#readEvents(stream, current) : this.#readJson(await stream.text());
      if (current()) this.#events.push({ type: 'final', text });
    } catch (error) {
      if (controller.signal.aborted) return; // discarded or closed: not a failure
      this.#closed = true;
      this.#events.fail(error);
    } finally {
      stream?.close();
      if (this.#inFlight === controller) this.#inFlight = undefined;
    }
  }

  #form(audio: Int16Array): MultipartBody {
    const fields: Record<string, string> = { model: this.#options.model };
    // The API takes ISO-639-1 ("en"), the pipeline speaks BCP 47 ("en-US").
    const language = this.#stt.language.split(/[-_]/)[0]?.toLowerCase();
    if (language) fields.language = language;
    if (this.#options.stream) fields.stream = 'true';
    return multipartBody({ name: 'file', filename: 'utterance.wav', contentType: 'audio/wav', data: encodeWav(audio, this.#stt.sampleRate) }, fields);
  }

  async #readEvents(stream: HttpStream, current: () => boolean): Promise<string> {
    let soFar = '';
    for await (const event of sseEvents(stream.chunks())) {
      if (event.data === '[DONE]') continue;
      const data = parseVendorJson(this.#provider, event.data);
      if (data.error !== undefined) throw vendorError(this.#provider, data.error, this.#options.apiKey);
      if (data.type === 'transcript.text.delta' && typeof data.delta === 'string') {
        soFar += data.delta;
        if (current()) this.#events.push({ type: 'partial', text: soFar });
      } else if (data.type === 'transcript.text.done') {
        return typeof data.text === 'string' ? data.text : soFar;
      }
    }
    throw truncatedError(this.#provider);
  }

  #readJson(body: string): string {
    const data = parseVendorJson(this.#provider, body);
    if (data.error !== undefined) throw vendorError(this.#provider, data.error, this.#options.apiKey);
    return typeof data.text === 'string' ? data.text : '';
  }
}

const SWAP_BYTES = endianness() === 'BE'; // WAV samples are little-endian

/** A canonical 44-byte-header WAV: PCM, mono, 16-bit little-endian. */
export function encodeWav(samples: Int16Array, sampleRate: number): Uint8Array<ArrayBuffer> {
  const dataBytes = samples.length * 2;
  const wav = new Uint8Array(44 + dataBytes);
  const view = new DataView(wav.buffer);
  const ascii = (offset: number, text: string): void => {
    for (let i = 0; i < text.length; i++) wav[offset + i] = text.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // byte rate
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  ascii(36, 'data');
  view.setUint32(40, dataBytes, true);
  // The samples' bytes as they are (providers/pcm-decoder.ts does the same the other way).
  const data = Buffer.from(wav.buffer, 44, dataBytes);
  data.set(new Uint8Array(samples.buffer, samples.byteOffset, dataBytes));
  if (SWAP_BYTES) data.swap16();
  return wav;
}
