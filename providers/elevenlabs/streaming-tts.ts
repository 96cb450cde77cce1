/**
 * ElevenLabs text to speech over its input-streaming WebSocket
 * (`/v1/text-to-speech/{voice_id}/stream-input`), raw PCM out.
 *
 * Text goes out one sentence at a time with `flush: true`. ElevenLabs holds text back until its
 * chunk_length_schedule is reached (120 characters for the first chunk by default), and
 * `try_trigger_generation` only fires above a minimum buffer too, so a short first sentence
 * ("Sure, one moment.") sent as deltas would wait for the agent's next hundred characters. A
 * flushed sentence is voiced at once, and whole sentences keep the prosody that token-sized
 * flushes would break. The socket opens when iteration starts, so its handshake overlaps the
 * agent writing its first sentence.
 */
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';
import { EventQueue } from '../event-queue.ts';
import { PcmDecoder } from '../pcm-decoder.ts';
import { handshakeRefusal } from '../handshake-refusal.ts';
import { sentences } from '../sentence-stream.ts';
import { isAbort, ProviderError, type AudioFrame, type TtsOptions, type TtsProvider } from '../types.ts';

const PROVIDER = 'elevenlabs';
// ElevenLabs' PCM is little-endian; copying it whole is ~10x cheaper than reading sample by sample.

/** ElevenLabs' own field names: sent as they are. */
export interface ElevenLabsVoiceSettings {
  stability: number;
  similarity_boost: number;
  style?: number;
  use_speaker_boost?: boolean;
  speed?: number;
}

export interface ElevenLabsStreamingTtsOptions {
  apiKey: string;
  baseUrl: string;
  /** Used when TtsOptions.voice is not given. */
  voiceId: string;
  modelId: string;
  /** Selects `output_format=pcm_<rate>`: 16-bit little-endian mono PCM. */
  sampleRate: 16000 | 22050 | 24000 | 44100;
  voiceSettings: ElevenLabsVoiceSettings | undefined;
  connectTimeoutMs: number;
  /** After the last text went out, how long ElevenLabs may stay silent before we give up. */
  idleTimeoutMs: number;
  /** A sentence longer than this is cut at a clause boundary (sentence-stream). */
  maxSentenceChars: number;
}

export const DEFAULT_ELEVENLABS_STREAMING_TTS_OPTIONS: ElevenLabsStreamingTtsOptions = {
  apiKey: '',
  baseUrl: 'wss://api.elevenlabs.io/v1',
  voiceId: '21m00Tcm4TlvDq8ikWAM', // "Rachel", a premade voice every account has
  modelId: 'eleven_flash_v2_5',
  sampleRate: 16000,
  voiceSettings: undefined,
  connectTimeoutMs: 5000,
  idleTimeoutMs: 10_000,
  maxSentenceChars: 200,
};

export class ElevenLabsStreamingTts implements TtsProvider {
  readonly name = PROVIDER;
  readonly #options: ElevenLabsStreamingTtsOptions;

  constructor(options: Partial<ElevenLabsStreamingTtsOptions> = {}) {
    this.#options = { ...DEFAULT_ELEVENLABS_STREAMING_TTS_OPTIONS, ...options };
  }

  async *synthesize(text: AsyncIterable<string>, options: TtsOptions): AsyncIterable<AudioFrame> {
    if (options.signal.aborted) return;
    const synthesis = new Synthesis(this.#options, options);
    synthesis.start(text);
    try {
      for await (const frame of synthesis.frames) {
        // Audio already queued is stale once the caller aborted (barge-in): none of it is played.
        if (options.signal.aborted) return;
        yield frame;
      }
    } finally {
      // Also when the consumer stops early: nobody listens, so the socket goes.
      synthesis.stop();
    }
  }
}

interface ServerMessage {
  audio?: string | null;
  isFinal?: boolean | null;
  error?: unknown;
  message?: unknown;
  code?: unknown;
}

/** One synthesize() call: one socket, one text stream in, one frame stream out. */
class Synthesis {
  readonly frames = new EventQueue<AudioFrame>();
  readonly #options: ElevenLabsStreamingTtsOptions;
  readonly #signal: AbortSignal;
  readonly #socket: WebSocket;
  /** true once open and the first message is out; false if the socket never opened or we stopped. */
  readonly #opened: Promise<boolean>;
  #settleOpened: (open: boolean) => void = () => {};
  #connectTimer: NodeJS.Timeout;
  #idleTimer: NodeJS.Timeout | undefined;
  /** A message may end mid-sample: its odd byte waits for the next one. */
  readonly #pcm = new PcmDecoder();
  #textEnded = false;
  #done = false;

  constructor(options: ElevenLabsStreamingTtsOptions, tts: TtsOptions) {
    this.#options = options;
    this.#signal = tts.signal;
    this.#signal.addEventListener('abort', this.stop, { once: true });
    const voice = encodeURIComponent(tts.voice ?? options.voiceId);
    const url = new URL(`${options.baseUrl}/text-to-speech/${voice}/stream-input`);
    url.search = new URLSearchParams({ model_id: options.modelId, output_format: `pcm_${options.sampleRate}` }).toString();
    this.#opened = new Promise((resolve) => (this.#settleOpened = resolve));
    this.#connectTimer = setTimeout(() => {
      this.#fail(new ProviderError(PROVIDER, 'PROVIDER_ERR_TIMEOUT', `elevenlabs: no connection after ${options.connectTimeoutMs} ms`, true));
    }, options.connectTimeoutMs);

    const socket = (this.#socket = new WebSocket(url, { headers: { 'xi-api-key': options.apiKey }, perMessageDeflate: false }));
    let handshakeFailed = false;
    let wasOpen = false;
    socket.on('unexpected-response', (_request, response) => {
      handshakeFailed = true;
      void handshakeError(response).then((error) => this.#fail(error));
    });
    socket.on('open', () => {
      wasOpen = true;
      clearTimeout(this.#connectTimer);
      const { voiceSettings } = options;
      // The protocol opens with a single space; voice settings ride on it.
      this.#send(voiceSettings ? { text: ' ', voice_settings: voiceSettings } : { text: ' ' });
      this.#settleOpened(true);
    });
    socket.on('message', (data, isBinary) => {
      if (!isBinary) this.#onMessage(String(data));
    });
    // Every failure also ends in 'close', which decides what it means; this only keeps ws from throwing.
    socket.on('error', () => {});
    socket.on('close', (code, reason) => {
      if (this.#done || handshakeFailed) return;
      if (!wasOpen) this.#fail(new ProviderError(PROVIDER, 'PROVIDER_ERR_CONNECT', `elevenlabs: connection failed (${code})`, true));
      // Closed normally after the end of input: all audio is in, isFinal or not.
      else if (this.#textEnded && code === 1000) this.stop();
      else this.#fail(socketClosedError(code, String(reason)));
    });
  }

  start(text: AsyncIterable<string>): void {
    void this.#pump(text);
  }

  /** Ends the frames quietly (normal end, abort, consumer gone) and closes the socket. */
  readonly stop = (): void => {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#idleTimer);
    this.#signal.removeEventListener('abort', this.stop);
    this.#settleOpened(false);
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.close(1000);
    else if (this.#socket.readyState === WebSocket.CONNECTING) this.#socket.terminate();
    this.frames.end();
  };

  async #pump(text: AsyncIterable<string>): Promise<void> {
    try {
      for await (const sentence of sentences(text, { maxChars: this.#options.maxSentenceChars })) {
        if (!(await this.#opened) || this.#done) return;
        this.#send({ text: `${sentence} `, flush: true });
      }
      if (!(await this.#opened) || this.#done) return;
      // End of input: ElevenLabs voices whatever it still holds, sends isFinal and closes.
      this.#send({ text: '' });
      this.#textEnded = true;
      this.#armIdleTimer();
    } catch (error) {
      // The text source failed (the agent, usually): its error is the one to report.
      if (isAbort(error)) this.stop();
      else this.#fail(error);
    }
  }

  #onMessage(text: string): void {
    if (this.#done) return;
    let message: ServerMessage;
    try {
      message = JSON.parse(text) as ServerMessage;
    } catch {
      return;
    }
    if (message.error !== undefined && message.error !== null) {
      this.#fail(vendorError(message));
      return;
    }
    if (typeof message.audio === 'string' && message.audio.length > 0) this.#decode(message.audio);
    // isFinal answers our end of input; before that it cannot mean this synthesis is over.
    if (message.isFinal === true && this.#textEnded) this.stop();
    else if (this.#textEnded) this.#armIdleTimer();
  }

  #decode(base64: string): void {
    const samples = this.#pcm.push(Buffer.from(base64, 'base64'));
    if (samples.length > 0) this.frames.push({ samples, sampleRate: this.#options.sampleRate });
  }

  #armIdleTimer(): void {
    clearTimeout(this.#idleTimer);
    const { idleTimeoutMs } = this.#options;
    this.#idleTimer = setTimeout(() => {
      this.#fail(new ProviderError(PROVIDER, 'PROVIDER_ERR_TIMEOUT', `elevenlabs: nothing for ${idleTimeoutMs} ms after the last text`, true));
    }, idleTimeoutMs);
  }

  #send(message: object): void {
    if (this.#socket.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
  }

  #fail(error: unknown): void {
    if (this.#done) return;
    this.frames.fail(error);
    this.stop();
  }
}

// Error names that describe the moment rather than the request: another try can succeed.
const TRANSIENT_ERROR = /rate_limit|too_many|concurren|busy|overload|unavailable|internal|timeout/i;

/** `{"error": "quota_exceeded", "message": "...", "code": 1008}` and the like. */
function vendorError(message: ServerMessage): ProviderError {
  const name = typeof message.error === 'string' ? message.error : 'error';
  const detail = typeof message.message === 'string' ? `: ${message.message}` : '';
  const code = typeof message.code === 'number' ? message.code : undefined;
  const text = `${PROVIDER}: ${name}${detail}`.slice(0, 300);
  if (code !== undefined && code >= 400 && code < 600) return ProviderError.fromHttpStatus(PROVIDER, code, `${name}${detail}`.slice(0, 300));
  const retryable = code === 1008 || (code !== undefined && code >= 4000 && code < 5000) ? false : TRANSIENT_ERROR.test(name);
  return new ProviderError(PROVIDER, 'PROVIDER_ERR_VENDOR', text, retryable);
}

/**
 * 1008 (policy: bad key, quota, unusable voice or model) and the 4xxx application codes are
 * ElevenLabs refusing the request, which a retry repeats; an abnormal close (1006, 1011, ...) is
 * the connection failing, which a retry may not.
 */
function socketClosedError(code: number, reason: string): ProviderError {
  const detail = `${PROVIDER}: connection closed (${code}${reason ? ` ${reason.slice(0, 120)}` : ''})`;
  if (code === 1008 || (code >= 4000 && code < 5000)) return new ProviderError(PROVIDER, `PROVIDER_ERR_WS_${code}`, detail, false);
  return new ProviderError(PROVIDER, 'PROVIDER_ERR_CONNECTION_CLOSED', detail, true);
}

/** A refused handshake: ElevenLabs answers with JSON `{"detail": {"status", "message"}}` or `{"detail": "..."}`. */
function handshakeError(response: IncomingMessage): Promise<ProviderError> {
  return handshakeRefusal(PROVIDER, response, (body) => {
    const parsed = (JSON.parse(body) as { detail?: unknown }).detail;
    if (typeof parsed === 'string') return parsed;
    if (!parsed || typeof parsed !== 'object') return body;
    const { status, message } = parsed as { status?: unknown; message?: unknown };
    return [status, message].filter((part) => typeof part === 'string').join(': ') || body;
  });
}
