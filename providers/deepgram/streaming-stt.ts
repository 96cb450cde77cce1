/**
 * Deepgram live transcription (`/v1/listen`) over one WebSocket per SttStream.
 *
 * The socket opens lazily on the first pushed frame: the handshake then overlaps the user's
 * speech (audio is buffered meanwhile and sent in a burst Deepgram transcribes faster than real
 * time), a session that never speaks holds no socket, and reconnecting after an idle drop is the
 * same code path. Between utterances the socket stays open with KeepAlive messages.
 *
 * Deepgram's timeline (`start` + `duration` of each Results message, in seconds of audio it
 * received) tells which utterance a late result belongs to: results for discarded audio, or for
 * an utterance whose final already went out on the finalize timeout, are dropped instead of
 * leaking into the next utterance.
 */
import type { IncomingMessage } from 'node:http';
import { endianness } from 'node:os';
import WebSocket from 'ws';
import { EventQueue } from '../event-queue.ts';
import { handshakeRefusal } from '../handshake-refusal.ts';
import { ProviderError, type AudioFrame, type SttOptions, type SttProvider, type SttStream, type TranscriptEvent } from '../types.ts';
import { Utterance, type DeepgramResults } from './utterance.ts';

const PROVIDER = 'deepgram';
const SWAP_BYTES = endianness() === 'BE'; // linear16 is little-endian
const FINALIZE = JSON.stringify({ type: 'Finalize' });
const KEEP_ALIVE = JSON.stringify({ type: 'KeepAlive' });
const CLOSE_STREAM = JSON.stringify({ type: 'CloseStream' });

export interface DeepgramStreamingSttOptions {
  apiKey: string;
  baseUrl: string;
  model: string;
  /** Overrides SttOptions.language (e.g. 'multi' for nova-3 code switching). */
  language: string | undefined;
  /** Deepgram closes a socket that got neither audio nor KeepAlive for ~10 s (NET-0001). */
  keepAliveIntervalMs: number;
  /** Deepgram may not answer Finalize when little audio was left; the final then goes out after this. */
  finalizeTimeoutMs: number;
  connectTimeoutMs: number;
  /** Audio kept while the socket connects; beyond it the oldest frames are dropped and counted. */
  maxPendingAudioMs: number;
}

export const DEFAULT_DEEPGRAM_STREAMING_STT_OPTIONS: DeepgramStreamingSttOptions = {
  apiKey: '',
  baseUrl: 'wss://api.deepgram.com/v1/listen',
  model: 'nova-3',
  language: undefined,
  keepAliveIntervalMs: 4000,
  finalizeTimeoutMs: 1000,
  connectTimeoutMs: 5000,
  maxPendingAudioMs: 5000,
};

export class DeepgramStreamingStt implements SttProvider {
  readonly name = PROVIDER;
  readonly #options: DeepgramStreamingSttOptions;

  constructor(options: Partial<DeepgramStreamingSttOptions> = {}) {
    this.#options = { ...DEFAULT_DEEPGRAM_STREAMING_STT_OPTIONS, ...options };
  }

  stream(options: SttOptions): DeepgramSttStream {
    return new DeepgramSttStream(this.#options, options);
  }
}

/** A control message that does its bookkeeping when it actually goes out, after the audio queued before it. */
type Outgoing = Buffer | { json: string; beforeSend?: () => void };

export class DeepgramSttStream implements SttStream {
  readonly #options: DeepgramStreamingSttOptions;
  readonly #stt: SttOptions;
  readonly #events = new EventQueue<TranscriptEvent>();
  readonly #outbox: Outgoing[] = [];
  #socket: WebSocket | undefined;
  #open = false;
  #pendingSamples = 0;
  /** Samples sent on the current socket: Deepgram's clock. */
  #sentSamples = 0;
  #current = new Utterance();
  readonly #finalizing: Utterance[] = [];
  #lastPartial = '';
  #keepAlive: NodeJS.Timeout | undefined;
  #audioSinceKeepAlive = false;
  #closed = false;
  /** Frames dropped because the connection took longer than maxPendingAudioMs. */
  droppedFrames = 0;

  constructor(options: DeepgramStreamingSttOptions, stt: SttOptions) {
    this.#options = options;
    this.#stt = stt;
    if (stt.signal.aborted) this.#shutdown();
    else stt.signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  pushAudio(frame: AudioFrame): void {
    // Pushes can race a close from the media side; they are dropped, not thrown.
    if (this.#closed) return;
    if (frame.sampleRate !== this.#stt.sampleRate) {
      throw new RangeError(`deepgram stream opened at ${this.#stt.sampleRate} Hz, got a ${frame.sampleRate} Hz frame`);
    }
    // Deepgram closed the idle socket and ws is still saying goodbye: start afresh.
    if (this.#socket?.readyState === WebSocket.CLOSING && !this.#inFlight()) this.#disconnect();
    if (!this.#socket) this.#connect();
    this.#current.hasAudio = true;
    const { buffer, byteOffset, byteLength } = frame.samples;
    // A copy: the caller may reuse its buffer while ours waits in the outbox or the socket.
    const bytes = Buffer.from(buffer.slice(byteOffset, byteOffset + byteLength));
    this.#send(SWAP_BYTES ? bytes.swap16() : bytes);
  }

  flush(): void {
    if (this.#closed) return;
    const utterance = this.#current;
    if (!utterance.hasAudio) {
      // Nothing to finalize; its '' final still waits behind any utterance that is finalizing.
      this.#finalizing.push(new Utterance(true));
      this.#completeSilentHead();
      return;
    }
    const next = (this.#current = new Utterance());
    this.#lastPartial = '';
    this.#finalizing.push(utterance);
    this.#send({
      json: FINALIZE,
      beforeSend: () => {
        utterance.endSec = next.startSec = this.#sentSeconds();
        // Already final up to here (Deepgram's endpointing): it may never answer this Finalize.
        if (utterance.coversUntilEnd()) this.#completeThrough(utterance);
        else utterance.timer = setTimeout(() => this.#completeThrough(utterance), this.#options.finalizeTimeoutMs);
      },
    });
  }

  discard(): void {
    if (this.#closed || !this.#current.hasAudio) return;
    const next = (this.#current = new Utterance());
    this.#lastPartial = '';
    // Finalize cuts Deepgram's segment here, so the discarded tail cannot merge with the next words.
    this.#send({ json: FINALIZE, beforeSend: () => (next.startSec = this.#sentSeconds()) });
  }

  close(): void {
    if (this.#closed) return;
    // One final follows every flush: what Deepgram has not answered yet goes out as it stands.
    if (this.#finalizing.length > 0) this.#completeThrough(this.#finalizing[this.#finalizing.length - 1]!);
    if (this.#open) this.#socket!.send(CLOSE_STREAM);
    this.#shutdown();
  }

  [Symbol.asyncIterator](): AsyncIterator<TranscriptEvent> {
    const events = this.#events[Symbol.asyncIterator]();
    // After an abort, transcripts still queued are of no use to anyone.
    const next = () => (this.#stt.signal.aborted ? events.return!() : events.next());
    return { next, return: () => (this.close(), events.return!()) };
  }

  #connect(): void {
    const { baseUrl, apiKey, model, language, connectTimeoutMs } = this.#options;
    const url = new URL(baseUrl);
    const [sample_rate, lang] = [String(this.#stt.sampleRate), language ?? this.#stt.language];
    const query = { encoding: 'linear16', sample_rate, channels: '1', model, language: lang, interim_results: 'true', punctuate: 'true' };
    url.search = new URLSearchParams(query).toString();
    const socket = new WebSocket(url, { headers: { Authorization: `Token ${apiKey}` }, perMessageDeflate: false });
    this.#socket = socket;
    this.#sentSamples = 0;
    this.#current.startSec = 0;
    const timeout = setTimeout(() => {
      this.#fail(new ProviderError(PROVIDER, 'PROVIDER_ERR_TIMEOUT', `deepgram: no connection after ${connectTimeoutMs} ms`, true));
    }, connectTimeoutMs);
    let handshakeFailed = false;
    socket.on('unexpected-response', (_request, response) => {
      handshakeFailed = true;
      void handshakeError(response).then((error) => this.#fail(error));
    });
    socket.on('open', () => (clearTimeout(timeout), this.#onOpen(socket)));
    socket.on('message', (data, isBinary) => {
      if (socket === this.#socket && !isBinary) this.#onMessage(String(data));
    });
    // Every failure also ends in 'close', which decides what it means; this only keeps ws from throwing.
    socket.on('error', () => {});
    socket.on('close', (code, reason) => {
      clearTimeout(timeout);
      if (socket !== this.#socket || this.#closed || handshakeFailed) return;
      this.#onClose(code, String(reason));
    });
  }

  #onOpen(socket: WebSocket): void {
    if (socket !== this.#socket || this.#closed) return;
    this.#open = true;
    for (const item of this.#outbox.splice(0)) this.#write(item);
    this.#pendingSamples = 0;
    this.#keepAlive = setInterval(() => {
      if (!this.#audioSinceKeepAlive && this.#open) this.#socket!.send(KEEP_ALIVE);
      this.#audioSinceKeepAlive = false;
    }, this.#options.keepAliveIntervalMs);
    this.#keepAlive.unref();
  }

  #onClose(code: number, reason: string): void {
    const wasOpen = this.#open;
    this.#disconnect();
    if (!wasOpen) this.#fail(new ProviderError(PROVIDER, 'PROVIDER_ERR_CONNECT', `deepgram: connection failed (${code})`, true));
    // Dropped while idle (e.g. NET-0001): the next pushed frame reconnects.
    else if (this.#inFlight()) this.#fail(socketClosedError(code, reason));
  }

  #inFlight(): boolean {
    return this.#current.hasAudio || this.#finalizing.length > 0;
  }

  #onMessage(text: string): void {
    let message: DeepgramResults;
    try {
      message = JSON.parse(text) as DeepgramResults;
    } catch {
      return;
    }
    // Metadata, SpeechStarted and UtteranceEnd carry nothing the pipeline needs.
    if (message?.type !== 'Results') return;
    const utterance = this.#route(Number(message.start) + Number(message.duration));
    if (!utterance) return;
    utterance.add(message);
    if (utterance === this.#current) {
      const partial = utterance.text(true);
      if (partial && partial !== this.#lastPartial) this.#events.push({ type: 'partial', text: partial });
      this.#lastPartial = partial;
    } else if (message.from_finalize || utterance.coversUntilEnd()) {
      this.#completeThrough(utterance);
    }
  }

  /** The utterance whose audio a result covers, by where it ends on Deepgram's clock. */
  #route(end: number): Utterance | undefined {
    if (!Number.isFinite(end)) return this.#finalizing.find((u) => !u.silent) ?? this.#current;
    for (const utterance of [...this.#finalizing, this.#current]) {
      if (utterance.silent) continue;
      if (utterance.startSec === undefined || end <= utterance.startSec + Utterance.EPSILON_S) return undefined;
      if (utterance.endSec === undefined || end <= utterance.endSec + Utterance.EPSILON_S) return utterance;
    }
    return undefined;
  }

  #completeThrough(utterance: Utterance): void {
    const index = this.#finalizing.indexOf(utterance);
    if (index < 0) return;
    for (const done of this.#finalizing.splice(0, index + 1)) {
      clearTimeout(done.timer);
      const confidence = done.confidence();
      // Once Deepgram answered, the interim is empty; on timeout or close it is the best text there is.
      const text = done.text(true);
      this.#events.push(confidence === undefined ? { type: 'final', text } : { type: 'final', text, confidence });
    }
    this.#completeSilentHead();
  }

  #completeSilentHead(): void {
    while (this.#finalizing[0]?.silent) {
      this.#finalizing.shift();
      this.#events.push({ type: 'final', text: '' });
    }
  }

  #send(item: Outgoing): void {
    if (this.#open) {
      this.#write(item);
      return;
    }
    this.#outbox.push(item);
    if (!Buffer.isBuffer(item)) return;
    this.#pendingSamples += item.length / 2;
    const limit = (this.#options.maxPendingAudioMs * this.#stt.sampleRate) / 1000;
    while (this.#pendingSamples > limit) {
      const oldest = this.#outbox.findIndex((queued) => Buffer.isBuffer(queued));
      const [dropped] = this.#outbox.splice(oldest, 1) as [Buffer];
      this.#pendingSamples -= dropped.length / 2;
      this.droppedFrames++;
    }
  }

  #write(item: Outgoing): void {
    const socket = this.#socket!;
    if (Buffer.isBuffer(item)) {
      socket.send(item);
      this.#sentSamples += item.length / 2;
      this.#audioSinceKeepAlive = true;
    } else {
      item.beforeSend?.();
      socket.send(item.json);
    }
  }

  #sentSeconds(): number {
    return this.#sentSamples / this.#stt.sampleRate;
  }

  // An abort is the caller's decision, not a provider failure: end quietly.
  readonly #onAbort = (): void => this.#shutdown();

  #fail(error: ProviderError): void {
    if (this.#closed) return;
    this.#events.fail(error);
    this.#shutdown();
  }

  #shutdown(): void {
    this.#closed = true;
    this.#stt.signal.removeEventListener('abort', this.#onAbort);
    for (const utterance of this.#finalizing) clearTimeout(utterance.timer);
    const socket = this.#socket;
    this.#disconnect();
    if (socket?.readyState === WebSocket.OPEN) socket.close(1000);
    else socket?.terminate();
    this.#events.end();
  }

  #disconnect(): void {
    clearInterval(this.#keepAlive);
    this.#socket = undefined;
    this.#open = false;
    this.#outbox.length = 0;
    this.#pendingSamples = 0;
  }
}

/** A refused handshake: Deepgram explains it in the `dg-error` header and a JSON body (`err_code`, `err_msg`). */
function handshakeError(response: IncomingMessage): Promise<ProviderError> {
  const header = String(response.headers['dg-error'] ?? '');
  return handshakeRefusal(PROVIDER, response, (body) => {
    if (header) return header;
    const parsed = JSON.parse(body) as { err_code?: unknown; err_msg?: unknown };
    return [parsed.err_code, parsed.err_msg].filter((part) => typeof part === 'string').join(': ') || body;
  });
}

/**
 * A socket that closed under an utterance. 1008 is Deepgram refusing what we sent (DATA-0000:
 * audio it cannot decode), which a retry repeats; anything else (1011 NET-0000/NET-0001, a
 * dropped TCP connection: 1006) is worth retrying.
 */
function socketClosedError(code: number, reason: string): ProviderError {
  const detail = `${PROVIDER}: connection closed (${code}${reason ? ` ${reason.slice(0, 120)}` : ''})`;
  if (code === 1008 || code === 1003 || code === 1007) return new ProviderError(PROVIDER, `PROVIDER_ERR_WS_${code}`, detail, false);
  return new ProviderError(PROVIDER, 'PROVIDER_ERR_CONNECTION_CLOSED', detail, true);
}
