/**
 * Speech to speech over the OpenAI Realtime WebSocket API (GA protocol, see
 * realtime-events.ts). One socket per session: the user's audio goes up resampled to 24 kHz in
 * batches, the server's VAD decides turns, and the answer comes back as 24 kHz audio with its
 * transcript. On barge-in the answer is cancelled and the server's copy of it is cut to what
 * the user can have heard, so the next answer does not build on words never played.
 */
import WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import { EventQueue } from '../event-queue.ts';
import { isAbort, ProviderError } from '../types.ts';
import type { AudioFrame, S2sEvent, S2sOptions, S2sProvider, S2sSession } from '../types.ts';
import * as wire from './realtime-events.ts';
import { REALTIME_SAMPLE_RATE, type ClientEvent, type RealtimeError, type ServerEvent } from './realtime-events.ts';
import { PcmResampler } from '../../media/pcm-resampler.ts';

export interface OpenAiRealtimeS2sOptions {
  apiKey: string;
  /** The endpoint without query; tests point it at a local server. */
  baseUrl: string;
  model: string;
  /** Used when S2sOptions.voice is not given. */
  voice: string;
  transcriptionModel: string;
  vadThreshold: number;
  vadPrefixPaddingMs: number;
  vadSilenceDurationMs: number;
  /** From opening the socket to the session being configured (`session.updated`). */
  connectTimeoutMs: number;
  /** Input audio goes up in messages of at least this much audio (fewer, larger messages). */
  appendBatchMs: number;
  /** Beyond this many bytes waiting in the socket, input audio is dropped: a stalled link must not replay seconds-old speech later. */
  maxBufferedBytes: number;
  /** Vendor error codes that leave the session usable and are not reported. */
  ignoredErrorCodes: readonly string[];
  /** Clock (ms) for estimating how much of an answer has been played. */
  now: () => number;
}

export const DEFAULT_OPENAI_REALTIME_S2S_OPTIONS: OpenAiRealtimeS2sOptions = {
  apiKey: '',
  baseUrl: 'wss://api.openai.com/v1/realtime',
  model: 'gpt-realtime',
  voice: 'marin',
  transcriptionModel: 'gpt-4o-mini-transcribe',
  vadThreshold: 0.5,
  vadPrefixPaddingMs: 300,
  vadSilenceDurationMs: 500,
  connectTimeoutMs: 10_000,
  appendBatchMs: 60,
  maxBufferedBytes: 1 << 20,
  ignoredErrorCodes: ['response_cancel_not_active'],
  now: () => performance.now(),
};

const PROVIDER = 'openai-realtime';
const SAMPLES_PER_MS = REALTIME_SAMPLE_RATE / 1000;
// Vendor errors that a new session can get past.
const RETRYABLE_ERROR_CODES = new Set(['rate_limit_exceeded', 'session_expired']);
// How many control events are remembered to match error events back to them.
const SENT_MEMORY = 32;

export class OpenAiRealtimeS2s implements S2sProvider {
  readonly name = PROVIDER;
  readonly #options: OpenAiRealtimeS2sOptions;

  constructor(options: Partial<OpenAiRealtimeS2sOptions> = {}) {
    this.#options = { ...DEFAULT_OPENAI_REALTIME_S2S_OPTIONS, ...options };
  }

  async connect(options: S2sOptions): Promise<S2sSession> {
    if (options.signal.aborted) throw abortError(options.signal);
    if (!this.#options.apiKey) throw new ProviderError(PROVIDER, 'PROVIDER_ERR_NO_API_KEY', `${PROVIDER}: no API key configured`, false);
    const session = new RealtimeS2sSession(this.#options, options);
    await session.ready;
    return session;
  }
}

/** Where the latest answer's audio stands: what was emitted, and since when it is playing. */
interface Playback {
  itemId: string;
  emittedSamples: number;
  startedAt: number;
  cut: boolean;
}

type SentControl = { kind: 'cancel' | 'truncate' } | { kind: 'say'; text: string };

class RealtimeS2sSession implements S2sSession {
  readonly ready: Promise<void>;
  readonly #events = new EventQueue<S2sEvent>();
  readonly #options: OpenAiRealtimeS2sOptions;
  readonly #session: S2sOptions;
  readonly #ws: WebSocket;
  readonly #connectTimer: NodeJS.Timeout;
  #state: 'connecting' | 'open' | 'closed' = 'connecting';
  #settleReady!: { resolve: () => void; reject: (error: unknown) => void };
  #resampler: PcmResampler | undefined;
  #pendingInput: Int16Array[] = [];
  #pendingSamples = 0;
  #eventSeq = 0;
  readonly #sent = new Map<string, SentControl>();
  /** Set from response.create (id unknown yet) or response.created until response.done. */
  #activeResponse: { id: string } | undefined;
  readonly #cancelledResponses = new Set<string>();
  #playback: Playback | undefined;
  readonly #userText = new Map<string, string>();
  readonly #agentText = new Map<string, string>();
  readonly #pendingSays: string[] = [];
  /** Input audio dropped because the socket could not keep up, in ms. */
  droppedInputMs = 0;

  constructor(options: OpenAiRealtimeS2sOptions, session: S2sOptions) {
    this.#options = options;
    this.#session = session;
    this.ready = new Promise((resolve, reject) => (this.#settleReady = { resolve, reject }));
    const url = new URL(options.baseUrl);
    url.searchParams.set('model', options.model);
    // Base64 PCM barely compresses: deflate would cost CPU for nothing.
    this.#ws = new WebSocket(url, { headers: { Authorization: `Bearer ${options.apiKey}` }, perMessageDeflate: false });
    this.#ws.on('unexpected-response', (_request, response) => this.#onHandshakeRefused(response));
    this.#ws.on('message', (data) => this.#onMessage(String(data)));
    this.#ws.on('error', (error) => this.#finish(new ProviderError(PROVIDER, 'PROVIDER_ERR_CONNECTION', `${PROVIDER}: ${this.#redact(error.message)}`, true)));
    this.#ws.on('close', (code) => this.#finish(new ProviderError(PROVIDER, 'PROVIDER_ERR_DISCONNECTED', `${PROVIDER}: connection closed (${code})`, true)));
    this.#connectTimer = setTimeout(() => this.#finish(new ProviderError(PROVIDER, 'PROVIDER_ERR_TIMEOUT', `${PROVIDER}: session not ready after ${options.connectTimeoutMs} ms`, true)), options.connectTimeoutMs);
    session.signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<S2sEvent> {
    return this.#events[Symbol.asyncIterator]();
  }

  pushAudio(frame: AudioFrame): void {
    if (this.#state !== 'open') return;
    let samples = frame.samples;
    if (frame.sampleRate !== REALTIME_SAMPLE_RATE) {
      if (this.#resampler?.fromRate !== frame.sampleRate) this.#resampler = new PcmResampler(frame.sampleRate, REALTIME_SAMPLE_RATE);
      samples = this.#resampler.push(samples);
    }
    this.#pendingInput.push(samples);
    this.#pendingSamples += samples.length;
    if (this.#pendingSamples < this.#options.appendBatchMs * SAMPLES_PER_MS) return;
    const batch = new Int16Array(this.#pendingSamples);
    let offset = 0;
    for (const part of this.#pendingInput) {
      batch.set(part, offset);
      offset += part.length;
    }
    this.#pendingInput = [];
    this.#pendingSamples = 0;
    if (this.#ws.bufferedAmount > this.#options.maxBufferedBytes) {
      this.droppedInputMs += batch.length / SAMPLES_PER_MS;
      return;
    }
    this.#send(wire.audioAppend(batch));
  }

  cancelResponse(_heardText?: string): void {
    if (this.#state !== 'open') return;
    const active = this.#activeResponse;
    if (active) {
      this.#sendControl(wire.responseCancel(active.id || undefined), { kind: 'cancel' });
      if (active.id) this.#cancelledResponses.add(active.id);
    }
    const playback = this.#playback;
    if (!playback || playback.cut) return;
    playback.cut = true;
    // The pipeline plays in real time from the first frame; the server sends faster than that.
    const emittedMs = playback.emittedSamples / SAMPLES_PER_MS;
    const playedMs = Math.min(emittedMs, Math.max(0, this.#options.now() - playback.startedAt));
    if (playedMs < emittedMs) this.#sendControl(wire.itemTruncate(playback.itemId, Math.floor(playedMs)), { kind: 'truncate' });
  }

  say(text: string): void {
    if (this.#state !== 'open') return;
    // One response at a time: the server refuses a second one while the first runs.
    this.#pendingSays.push(text);
    this.#startNextSay();
  }

  close(): void {
    this.#finish();
  }

  #startNextSay(): void {
    if (this.#activeResponse) return;
    const text = this.#pendingSays.shift();
    if (text === undefined) return;
    this.#activeResponse = { id: '' };
    const instructions = `Say exactly the following text, word for word, and nothing else:\n\n${text}`;
    this.#sendControl(wire.responseCreate(instructions), { kind: 'say', text });
  }

  #onMessage(text: string): void {
    if (this.#state === 'closed') return;
    let event: ServerEvent | undefined;
    try {
      event = wire.parseServerEvent(text);
    } catch {
      this.#finish(new ProviderError(PROVIDER, 'PROVIDER_ERR_PROTOCOL', `${PROVIDER}: a server message is not JSON`, true));
      return;
    }
    if (event) this.#onServerEvent(event);
  }

  #onServerEvent(event: ServerEvent): void {
    switch (event.kind) {
      case 'session_created':
        if (this.#state !== 'connecting') return;
        this.#send(wire.sessionUpdate({ ...this.#options, instructions: this.#session.instructions, voice: this.#session.voice ?? this.#options.voice }));
        for (const message of this.#session.history) this.#send(wire.historyItem(message));
        return;
      case 'session_updated':
        if (this.#state !== 'connecting') return;
        this.#state = 'open';
        clearTimeout(this.#connectTimer);
        this.#settleReady.resolve();
        return;
      case 'error':
        return this.#onVendorError(event.error);
      case 'speech_started':
      case 'speech_stopped':
        return this.#events.push({ type: event.kind });
      case 'user_transcript_delta': {
        const text = (this.#userText.get(event.itemId) ?? '') + event.delta;
        this.#userText.set(event.itemId, text);
        return this.#events.push({ type: 'transcript', role: 'user', text, final: false });
      }
      case 'user_transcript_done':
        this.#userText.delete(event.itemId);
        return this.#events.push({ type: 'transcript', role: 'user', text: event.transcript, final: true });
      case 'response_created':
        this.#activeResponse = { id: event.responseId };
        return;
      case 'audio_delta':
        return this.#onAudio(event.responseId, event.itemId, event.samples);
      case 'agent_transcript_delta': {
        if (this.#isCancelled(event.responseId, event.itemId)) return;
        const text = (this.#agentText.get(event.itemId) ?? '') + event.delta;
        this.#agentText.set(event.itemId, text);
        return this.#events.push({ type: 'transcript', role: 'agent', text, final: false });
      }
      case 'agent_transcript_done':
        this.#agentText.delete(event.itemId);
        if (this.#isCancelled(event.responseId, event.itemId)) return;
        return this.#events.push({ type: 'transcript', role: 'agent', text: event.transcript, final: true });
      case 'response_done':
        this.#activeResponse = undefined;
        this.#cancelledResponses.delete(event.responseId);
        this.#agentText.clear();
        this.#events.push({ type: 'response_done' });
        return this.#startNextSay();
    }
  }

  #onAudio(responseId: string, itemId: string, samples: Int16Array): void {
    // Deltas already in flight when the answer was cancelled must not reach the speaker.
    if (this.#isCancelled(responseId, itemId) || samples.length === 0) return;
    if (this.#playback?.itemId !== itemId) this.#playback = { itemId, emittedSamples: 0, startedAt: this.#options.now(), cut: false };
    this.#playback.emittedSamples += samples.length;
    this.#events.push({ type: 'audio', frame: { samples, sampleRate: REALTIME_SAMPLE_RATE } });
  }

  #isCancelled(responseId: string, itemId: string): boolean {
    return this.#cancelledResponses.has(responseId) || (this.#playback?.itemId === itemId && this.#playback.cut);
  }

  #onVendorError(error: RealtimeError): void {
    const sent = this.#sent.get(error.eventId);
    if (this.#state === 'open') {
      // Cancel and truncate are best effort: the answer may have ended or been cut by the server's VAD.
      if (sent?.kind === 'cancel' || sent?.kind === 'truncate' || this.#options.ignoredErrorCodes.includes(error.code)) return;
      if (sent?.kind === 'say' && error.code === 'conversation_already_has_active_response') {
        this.#pendingSays.unshift(sent.text);
        this.#activeResponse ??= { id: '' };
        return;
      }
    }
    const retryable = error.type === 'server_error' || RETRYABLE_ERROR_CODES.has(error.code);
    const detail = `${error.type || 'error'}${error.code ? `/${error.code}` : ''}: ${this.#redact(error.message)}`;
    this.#finish(new ProviderError(PROVIDER, 'PROVIDER_ERR_VENDOR', `${PROVIDER}: ${detail}`, retryable));
  }

  #onHandshakeRefused(response: IncomingMessage): void {
    const status = response.statusCode ?? 0;
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      if (body.length < 4096) body += chunk;
    });
    response.on('error', () => undefined);
    response.on('end', () => {
      let detail = body.slice(0, 300);
      try {
        detail = String((JSON.parse(body) as { error?: { message?: unknown } }).error?.message ?? detail);
      } catch {
        // Not JSON (a proxy's page): keep the start of the text.
      }
      this.#finish(ProviderError.fromHttpStatus(PROVIDER, status, this.#redact(detail) || (response.statusMessage ?? '')));
    });
  }

  readonly #onAbort = (): void => {
    this.#finish(this.#state === 'connecting' ? abortError(this.#session.signal) : undefined);
  };

  /** Ends the session once: without an error the iteration simply ends. */
  #finish(error?: unknown): void {
    if (this.#state === 'closed') return;
    const wasConnecting = this.#state === 'connecting';
    this.#state = 'closed';
    clearTimeout(this.#connectTimer);
    this.#session.signal.removeEventListener('abort', this.#onAbort);
    if (wasConnecting) this.#settleReady.reject(error ?? abortError(this.#session.signal));
    else if (error === undefined || isAbort(error)) this.#events.end();
    else this.#events.fail(error);
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000);
    else if (this.#ws.readyState === WebSocket.CONNECTING) this.#ws.terminate();
  }

  #send(event: ClientEvent): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(event));
  }

  #sendControl(event: ClientEvent, control: SentControl): void {
    const eventId = `evt_${++this.#eventSeq}`;
    this.#sent.set(eventId, control);
    if (this.#sent.size > SENT_MEMORY) this.#sent.delete(this.#sent.keys().next().value as string);
    this.#send({ ...event, event_id: eventId });
  }

  /** Vendor messages may quote the key ("Incorrect API key provided: sk-..."). */
  #redact(text: string): string {
    const { apiKey } = this.#options;
    return (apiKey ? text.split(apiKey).join('[redacted]') : text).replace(/sk-[A-Za-z0-9_*-]{4,}/g, 'sk-[redacted]');
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error && isAbort(signal.reason) ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}
