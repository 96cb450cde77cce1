/**
 * HTTP plumbing shared by the OpenAI adapters: one POST whose response body is read as a stream
 * under two timeouts (until the first body byte, then between chunks), every failure mapped to a
 * ProviderError, and a parser for server-sent events.
 *
 * The transport is node:http / node:https with a keep-alive agent per scheme, not fetch: fetch's
 * web streams (and FormData's Blob) cost ~2.5x the CPU: an STT turn of 3.3 s (a 104 KB upload)
 * took 4.6 ms of CPU with fetch and 1.8 ms now, the loopback server included, and a cloud-STT
 * session uploads every turn. No redirects are followed and no compression is asked for.
 *
 * The caller's AbortSignal is not a failure: once it fires, reads reject with an AbortError
 * (see isAbort) and the adapters end their iteration quietly.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ProviderError, isAbort } from '../types.ts';
import type { MultipartBody } from './multipart.ts';

export interface HttpStreamRequest {
  provider: string;
  url: string;
  /** Sent as a Bearer token when non-empty (local OpenAI-compatible servers need none); redacted from errors. */
  apiKey?: string;
  /** A string is sent as JSON; a MultipartBody (multipart.ts) as multipart/form-data. */
  body: string | MultipartBody;
  accept: string;
  signal: AbortSignal;
  /** From sending the request until the first byte of the response body (connect, upload, first token). */
  firstByteTimeoutMs: number;
  /** Between two chunks of the body; the time the reader spends holding a chunk does not count. */
  idleTimeoutMs: number;
}

// Connections are kept for the next request of any adapter to the same host (as fetch's pool does).
const agents = { 'http:': new HttpAgent({ keepAlive: true }), 'https:': new HttpsAgent({ keepAlive: true }) };

/** An HTTP error status, with the wait the vendor asked for (Retry-After) when it gave one. */
export class ProviderHttpError extends ProviderError {
  readonly retryAfterMs: number | undefined;

  constructor(provider: string, status: number, detail: string, retryAfterMs?: number) {
    const template = ProviderError.fromHttpStatus(provider, status, detail);
    super(provider, template.code, template.message, template.retryable, status);
    this.retryAfterMs = retryAfterMs;
  }
}

const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_DETAIL_CHARS = 300;

/** Sends the request and waits for the status line; a non-2xx status rejects with a ProviderHttpError. */
export async function openHttpStream(request: HttpStreamRequest): Promise<HttpStream> {
  const stream = new HttpStream(request);
  try {
    await stream.start();
    return stream;
  } catch (error) {
    stream.close();
    throw error;
  }
}

export class HttpStream {
  readonly #request: HttpStreamRequest;
  // Aborted by the caller's signal, by a timeout, or by close(): all three tear the exchange down.
  readonly #controller = new AbortController();
  readonly #onCallerAbort = (): void => this.#controller.abort();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timeout: ProviderError | undefined;
  #clientRequest: ClientRequest | undefined;
  #response: IncomingMessage | undefined;
  #reader: AsyncIterator<Buffer> | undefined;
  #receivedBody = false;
  // The response was read to its end: its connection went back to the agent and must not be torn down.
  #complete = false;
  contentType = '';

  constructor(request: HttpStreamRequest) {
    this.#request = request;
    if (request.signal.aborted) this.#controller.abort();
    else request.signal.addEventListener('abort', this.#onCallerAbort, { once: true });
    this.#controller.signal.addEventListener('abort', () => {
      if (this.#complete) return;
      this.#clientRequest?.destroy(abortError(this.#controller.signal));
      this.#response?.destroy(abortError(this.#controller.signal));
    }, { once: true });
  }

  async start(): Promise<void> {
    const { url, apiKey, body, accept, firstByteTimeoutMs, provider } = this.#request;
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw new ProviderError(provider, 'PROVIDER_ERR_CONFIG', `${provider}: not a URL: ${redact(url, apiKey)}`, false);
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      throw new ProviderError(provider, 'PROVIDER_ERR_CONFIG', `${provider}: ${target.protocol} is not http: or https:`, false);
    }
    const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body.bytes;
    const headers: Record<string, string | number> = {
      accept,
      'content-type': typeof body === 'string' ? 'application/json' : body.contentType,
      'content-length': payload.length,
    };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    this.#arm(firstByteTimeoutMs, `no response within ${firstByteTimeoutMs} ms`);
    let response: IncomingMessage;
    try {
      if (this.#controller.signal.aborted) throw abortError(this.#controller.signal);
      response = await new Promise<IncomingMessage>((resolve, reject) => {
        const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
        const request = send(target, { method: 'POST', headers, agent: agents[target.protocol as 'http:' | 'https:'] }, resolve);
        this.#clientRequest = request;
        request.on('error', reject);
        request.end(payload);
      });
    } catch (error) {
      throw this.#failure(error, 'PROVIDER_ERR_NETWORK', 'request failed');
    }
    this.#response = response;
    // Errors reach the reader through its iterator; this keeps one that comes before the first
    // read (the connection dropped, close()) from being an uncaught 'error' event.
    response.on('error', () => undefined);
    response.on('end', () => (this.#complete = true));
    if (this.#controller.signal.aborted) response.destroy(abortError(this.#controller.signal));
    this.contentType = response.headers['content-type'] ?? '';
    this.#reader = response[Symbol.asyncIterator]();
    const status = response.statusCode ?? 0;
    if (status < 200 || status > 299) throw await this.#httpError(status, response.statusMessage ?? '', response.headers);
  }

  /** The response body as it arrives. */
  async *chunks(): AsyncGenerator<Uint8Array> {
    const reader = this.#reader;
    if (!reader) return;
    const { idleTimeoutMs } = this.#request;
    for (;;) {
      // Until the first body byte the timer armed in start() keeps running.
      if (this.#receivedBody) this.#arm(idleTimeoutMs, `no data for ${idleTimeoutMs} ms`);
      let result: IteratorResult<Buffer>;
      try {
        result = await reader.next();
      } catch (error) {
        throw this.#failure(error, 'PROVIDER_ERR_CONNECTION_LOST', 'connection lost mid-response');
      }
      this.#disarm();
      if (result.done) return;
      this.#receivedBody = true;
      yield result.value;
    }
  }

  /** The whole body as text (bounded: an error page or a JSON answer, never audio). */
  async text(limit = MAX_ERROR_BODY_BYTES): Promise<string> {
    const parts: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of this.chunks()) {
      parts.push(chunk);
      size += chunk.length;
      if (size >= limit) break;
    }
    return Buffer.concat(parts).subarray(0, limit).toString('utf8');
  }

  /** Ends the exchange; an unfinished response is aborted, which closes its connection. */
  close(): void {
    this.#disarm();
    this.#request.signal.removeEventListener('abort', this.#onCallerAbort);
    // A response read to its end has nothing to tear down (its connection went back to the agent),
    // and an abort costs a DOMException with its stack, once per turn of every session.
    if (!this.#complete) this.#controller.abort();
  }

  #arm(ms: number, what: string): void {
    this.#disarm();
    this.#timer = setTimeout(() => {
      const { provider } = this.#request;
      this.#timeout = new ProviderError(provider, 'PROVIDER_ERR_TIMEOUT', `${provider}: ${what}`, true);
      this.#controller.abort();
    }, ms);
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #failure(error: unknown, code: string, what: string): unknown {
    const { provider, signal, apiKey } = this.#request;
    if (signal.aborted) return abortError(signal);
    if (this.#timeout) return this.#timeout;
    if (error instanceof ProviderError) return error;
    return new ProviderError(provider, code, redact(`${provider}: ${what}: ${describe(error)}`, apiKey), true);
  }

  async #httpError(status: number, statusText: string, headers: IncomingHttpHeaders): Promise<unknown> {
    const { provider, apiKey } = this.#request;
    let detail = statusText;
    try {
      detail = vendorMessage(await this.text()) || detail;
    } catch (error) {
      if (this.#request.signal.aborted || this.#timeout) throw this.#failure(error, '', '');
      // The status says enough when the error body itself cannot be read.
    }
    return new ProviderHttpError(provider, status, redact(detail, apiKey), retryAfterMs(headers));
  }
}

/**
 * An `error` object inside a 200 response (OpenAI sends one mid-stream when generation fails).
 * Server errors and rate limits are worth retrying; a refused request is not.
 */
export function vendorError(provider: string, error: unknown, apiKey?: string): ProviderError {
  const { message, type, code } = (typeof error === 'object' && error !== null ? error : { message: error }) as Record<string, unknown>;
  const retryable = type === 'server_error' || code === 'rate_limit_exceeded' || code === 'server_error';
  const text = truncate(typeof message === 'string' && message ? message : String(code ?? type ?? 'unknown error'));
  return new ProviderError(provider, 'PROVIDER_ERR_VENDOR', redact(`${provider}: ${text}`, apiKey), retryable);
}

/** JSON from the vendor; garbage means a broken peer or proxy, which a retry will not fix. */
export function parseVendorJson(provider: string, text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  return throwBadResponse(provider, `not a JSON object: ${truncate(text, 80)}`);
}

export function throwBadResponse(provider: string, detail: string): never {
  throw new ProviderError(provider, 'PROVIDER_ERR_BAD_RESPONSE', `${provider}: ${detail}`, false);
}

/** The stream stopped before its end marker: the server or a proxy gave up; another try may work. */
export function truncatedError(provider: string): ProviderError {
  return new ProviderError(provider, 'PROVIDER_ERR_TRUNCATED', `${provider}: response ended before its end marker`, true);
}

export function abortError(signal: AbortSignal): Error {
  return isAbort(signal.reason) ? (signal.reason as Error) : new DOMException('The operation was aborted', 'AbortError');
}

/** `retry-after-ms` (OpenAI) wins over `retry-after`, which is seconds or an HTTP date. */
export function retryAfterMs(headers: IncomingHttpHeaders, now = Date.now()): number | undefined {
  const header = (name: string): string | undefined => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const ms = Number(header('retry-after-ms') ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = header('retry-after');
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

// API keys in vendor messages ("Incorrect API key provided: sk-...") never reach logs.
export function redact(text: string, apiKey?: string): string {
  const withoutKey = apiKey ? text.split(apiKey).join('[redacted]') : text;
  return withoutKey.replace(/\bsk-[A-Za-z0-9_*-]{4,}/g, 'sk-[redacted]');
}

function vendorMessage(body: string): string {
  try {
    const { error, message } = JSON.parse(body) as { error?: unknown; message?: unknown };
    const text = typeof error === 'object' && error !== null ? (error as { message?: unknown }).message : (error ?? message);
    if (typeof text === 'string' && text) return truncate(text);
  } catch {
    // not JSON: an HTML or text error page from a proxy
  }
  return truncate(body.trim());
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
}

function truncate(text: string, max = MAX_DETAIL_CHARS): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

// ---------------------------------------------------------------------------------------------
// Server-sent events (https://html.spec.whatwg.org/multipage/server-sent-events.html)

export interface SseEvent {
  event: string;
  data: string;
}

/** Bytes in, complete events out; lines and UTF-8 characters may be split anywhere across chunks. */
export class SseParser {
  readonly #decoder = new TextDecoder();
  #line = '';
  #data: string[] = [];
  #event = '';
  // A CR ended the last chunk: an LF opening the next one belongs to the same line break.
  #skipLf = false;

  push(bytes: Uint8Array): SseEvent[] {
    return this.#feed(this.#decoder.decode(bytes, { stream: true }));
  }

  /** The stream ended: a last event without its blank line is still delivered. */
  end(): SseEvent[] {
    const events = this.#feed(`${this.#decoder.decode()}\n\n`);
    this.#line = '';
    return events;
  }

  #feed(text: string): SseEvent[] {
    const events: SseEvent[] = [];
    let start = 0;
    if (this.#skipLf && text.length > 0) {
      if (text.charCodeAt(0) === 10) start = 1;
      this.#skipLf = false;
    }
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#takeLine(this.#line + text.slice(start, i), events);
      this.#line = '';
      if (c === 13) {
        if (i + 1 === text.length) this.#skipLf = true;
        else if (text.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.#line += text.slice(start);
    return events;
  }

  #takeLine(line: string, events: SseEvent[]): void {
    if (line === '') {
      if (this.#data.length > 0) events.push({ event: this.#event || 'message', data: this.#data.join('\n') });
      this.#data = [];
      this.#event = '';
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ':' starts a comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
  }
}

export async function* sseEvents(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  for await (const chunk of chunks) yield* parser.push(chunk);
  yield* parser.end();
}
