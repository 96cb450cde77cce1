/**
 * Text to speech with OpenAI's speech endpoint. The agent's text is cut into sentences as it
 * streams; each sentence is one `POST {baseUrl}/audio/speech` with `response_format: "pcm"`
 * (raw 24 kHz 16-bit little-endian mono, no header), whose body is turned into AudioFrames as it
 * arrives. So the first sentence is heard while the agent is still writing the rest.
 */
import { sentences } from '../sentence-stream.ts';
import type { AudioFrame, TtsOptions, TtsProvider } from '../types.ts';
import { openHttpStream, type HttpStream } from './http.ts';
import { PcmDecoder } from '../pcm-decoder.ts';

export interface OpenAiTextToSpeechOptions {
  baseUrl: string;
  /** Empty: no Authorization header. */
  apiKey: string;
  model: string;
  /** Used when `TtsOptions.voice` is not given. */
  voice: string;
  /** How to speak (tone, pace); only the gpt-4o TTS models read it. Empty: not sent. */
  instructions: string;
  /** Rate of the PCM the server sends: 24000 for OpenAI; compatible servers may differ. */
  pcmSampleRate: number;
  /** Longest piece sent in one request when the text has no sentence end. */
  maxSentenceChars: number;
  /** Until the first audio byte of a sentence. */
  firstAudioTimeoutMs: number;
  /** Between two chunks of a sentence's audio. */
  idleTimeoutMs: number;
}

export const DEFAULT_OPENAI_TEXT_TO_SPEECH_OPTIONS: OpenAiTextToSpeechOptions = {
  baseUrl: 'https://api.openai.com/v1',
  apiKey: '',
  model: 'gpt-4o-mini-tts',
  voice: 'alloy',
  instructions: '',
  pcmSampleRate: 24_000,
  maxSentenceChars: 200,
  firstAudioTimeoutMs: 10_000,
  idleTimeoutMs: 10_000,
};

export class OpenAiTextToSpeech implements TtsProvider {
  readonly name = 'openai-tts';
  readonly #options: OpenAiTextToSpeechOptions;

  constructor(options: Partial<OpenAiTextToSpeechOptions> = {}) {
    this.#options = { ...DEFAULT_OPENAI_TEXT_TO_SPEECH_OPTIONS, ...options };
  }

  /** Ends quietly when `options.signal` aborts, also while it waits for more text. */
  async *synthesize(text: AsyncIterable<string>, options: TtsOptions): AsyncGenerator<AudioFrame> {
    const pieces = sentences(text, { maxChars: this.#options.maxSentenceChars })[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await untilAborted(pieces.next(), options.signal);
        if (!next || next.done) return;
        yield* this.#speak(next.value, options);
      }
    } catch (error) {
      if (options.signal.aborted) return;
      throw error;
    } finally {
      // Stops pulling agent text; a text stream stuck in an await settles this later.
      pieces.return?.().catch(() => undefined);
    }
  }

  async *#speak(sentence: string, options: TtsOptions): AsyncGenerator<AudioFrame> {
    const { baseUrl, apiKey, model, voice, instructions, pcmSampleRate, firstAudioTimeoutMs, idleTimeoutMs } = this.#options;
    const body: Record<string, string> = { model, voice: options.voice ?? voice, input: sentence, response_format: 'pcm' };
    if (instructions) body.instructions = instructions;
    let stream: HttpStream | undefined;
    try {
      stream = await openHttpStream({
        provider: this.name,
        url: `${baseUrl.replace(/\/+$/, '')}/audio/speech`,
        apiKey,
        body: JSON.stringify(body),
        accept: '*/*',
        signal: options.signal,
        firstByteTimeoutMs: firstAudioTimeoutMs,
        idleTimeoutMs,
      });
      const pcm = new PcmDecoder();
      for await (const chunk of stream.chunks()) {
        const samples = pcm.push(chunk);
        if (samples.length > 0) yield { samples, sampleRate: pcmSampleRate };
      }
    } finally {
      stream?.close();
    }
  }
}

/** The iterator's next result, or undefined as soon as the signal aborts. */
function untilAborted<T>(next: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    next.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
