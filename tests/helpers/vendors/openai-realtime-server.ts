// A local stand-in for the OpenAI Realtime WebSocket API (GA protocol) on 127.0.0.1: it records
// what the client sends and answers the way the real service does for the session handshake,
// response.cancel and conversation.item.truncate. Tests script everything else with send().
import { createServer, STATUS_CODES, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface RealtimeTestServerOptions {
  /** Refuse the upgrade with this HTTP status and JSON body (401, 429, ...). */
  refuseWith?: { status: number; body: unknown };
  /** Send session.created on connect and answer session.update; false leaves the client waiting. */
  configureSession: boolean;
  /** Answer session.update with this error instead of session.updated. */
  sessionUpdateError?: { type: string; code: string; message: string };
  /** Answer response.cancel (response.done, or an error when none is active); false lets the test do it. */
  answerCancel: boolean;
}

export type WireEvent = { type: string; [field: string]: unknown };

export class OpenAiRealtimeTestServer {
  readonly #http: Server;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #options: RealtimeTestServerOptions;
  readonly #connections: RealtimeTestConnection[] = [];
  #claimed = 0;
  #waiter: (() => void) | undefined;
  /** Headers of upgrade requests that were refused. */
  readonly refusedRequests: IncomingHttpHeaders[] = [];

  private constructor(options: RealtimeTestServerOptions) {
    this.#options = options;
    this.#http = createServer((_req, res) => res.writeHead(426).end());
    this.#http.on('upgrade', (req, socket, head) => {
      const refusal = this.#options.refuseWith;
      if (refusal) {
        this.refusedRequests.push(req.headers);
        const body = JSON.stringify(refusal.body);
        socket.end(
          `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        this.#connections.push(new RealtimeTestConnection(ws, url, req.headers, this.#options));
        this.#waiter?.();
      });
    });
  }

  static async start(options: Partial<RealtimeTestServerOptions> = {}): Promise<OpenAiRealtimeTestServer> {
    const server = new OpenAiRealtimeTestServer({ configureSession: true, answerCancel: true, ...options });
    await new Promise<void>((resolve) => server.#http.listen(0, '127.0.0.1', resolve));
    return server;
  }

  get baseUrl(): string {
    return `ws://127.0.0.1:${(this.#http.address() as AddressInfo).port}/v1/realtime`;
  }

  /** The next client connection, in the order they arrived. */
  async nextConnection(): Promise<RealtimeTestConnection> {
    while (this.#connections.length <= this.#claimed) await new Promise<void>((resolve) => (this.#waiter = resolve));
    return this.#connections[this.#claimed++];
  }

  async close(): Promise<void> {
    for (const connection of this.#connections) connection.drop();
    this.#wss.close();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
  }
}

export class RealtimeTestConnection {
  readonly received: WireEvent[] = [];
  /** Resolves with the close code once the socket is closed, by either side. */
  readonly closed: Promise<number>;
  #waiters: Array<{ check: () => boolean; reject: (error: Error) => void }> = [];
  #activeResponseId: string | undefined;
  #seq = 0;

  constructor(
    readonly socket: WebSocket,
    readonly url: URL,
    readonly headers: IncomingHttpHeaders,
    readonly options: RealtimeTestServerOptions,
  ) {
    this.closed = new Promise((resolve) =>
      socket.on('close', (code) => {
        for (const waiter of this.#waiters) waiter.reject(new Error('connection closed while waiting'));
        this.#waiters = [];
        resolve(code);
      }),
    );
    socket.on('message', (data) => this.#onClientEvent(JSON.parse(String(data)) as WireEvent));
    if (options.configureSession) this.send({ type: 'session.created', session: this.#session({}) });
  }

  /** Resolves with the first non-undefined result of `find` over what the client sent so far. */
  until<T>(find: (received: WireEvent[]) => T | undefined): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = find(this.received);
        if (found !== undefined) resolve(found);
        return found !== undefined;
      };
      if (!check()) this.#waiters.push({ check, reject });
    });
  }

  /** The first event of this type the client sent (waits for it). */
  first(type: string): Promise<WireEvent> {
    return this.until((events) => events.find((event) => event.type === type));
  }

  ofType(type: string): WireEvent[] {
    return this.received.filter((event) => event.type === type);
  }

  /** The pcm16 samples of each input_audio_buffer.append received so far. */
  appendedAudio(): Int16Array[] {
    return this.ofType('input_audio_buffer.append').map((event) => {
      const bytes = Buffer.from(event.audio as string, 'base64');
      return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    });
  }

  send(...events: WireEvent[]): void {
    for (const event of events) {
      if (event.type === 'response.created') this.#activeResponseId = (event.response as { id: string }).id;
      if (event.type === 'response.done') this.#activeResponseId = undefined;
      this.socket.send(JSON.stringify({ event_id: `event_${++this.#seq}`, ...event }));
    }
  }

  /** Cuts the TCP connection without a close frame. */
  drop(): void {
    this.socket.terminate();
  }

  #onClientEvent(event: WireEvent): void {
    this.received.push(event);
    this.#waiters = this.#waiters.filter((waiter) => !waiter.check());
    const eventId = event.event_id ?? null;
    switch (event.type) {
      case 'session.update': {
        const error = this.options.sessionUpdateError;
        if (error) this.send({ type: 'error', error: { ...error, param: null, event_id: eventId } });
        else if (this.options.configureSession) this.send({ type: 'session.updated', session: this.#session(event.session as object) });
        return;
      }
      case 'response.cancel':
        if (!this.options.answerCancel) return;
        if (this.#activeResponseId) {
          this.send({ type: 'response.done', response: { id: this.#activeResponseId, status: 'cancelled', output: [] } });
        } else {
          const message = 'Cancellation failed: no active response found';
          this.send({ type: 'error', error: { type: 'invalid_request_error', code: 'response_cancel_not_active', message, param: null, event_id: eventId } });
        }
        return;
      case 'conversation.item.truncate':
        this.send({ type: 'conversation.item.truncated', item_id: event.item_id, content_index: 0, audio_end_ms: event.audio_end_ms });
        return;
    }
  }

  #session(update: object): object {
    return { type: 'realtime', object: 'realtime.session', id: 'sess_test', model: this.url.searchParams.get('model'), instructions: '', ...update };
  }
}

export interface ScriptedResponse {
  responseId: string;
  itemId: string;
  /** 24 kHz pcm16, sent in deltas of `deltaSamples`. */
  audio: Int16Array;
  deltaSamples: number;
  /** Transcript pieces, one sent after each of the first audio deltas. */
  transcript: string[];
}

/** The server events of one spoken answer, split where a test may want to interrupt it. */
export function scriptedResponse(spec: ScriptedResponse): { start: WireEvent[]; deltas: WireEvent[]; end: WireEvent[] } {
  const { responseId: response_id, itemId: item_id } = spec;
  const at = { response_id, item_id, output_index: 0, content_index: 0 };
  const item = { id: item_id, object: 'realtime.item', type: 'message', role: 'assistant', status: 'in_progress', content: [] };
  const start: WireEvent[] = [
    { type: 'response.created', response: { id: response_id, object: 'realtime.response', status: 'in_progress', output: [] } },
    { type: 'response.output_item.added', response_id, output_index: 0, item },
    { type: 'conversation.item.added', previous_item_id: null, item },
    { type: 'response.content_part.added', ...at, part: { type: 'audio', transcript: '' } },
  ];
  const deltas: WireEvent[] = [];
  for (let offset = 0, piece = 0; offset < spec.audio.length; offset += spec.deltaSamples, piece++) {
    const chunk = spec.audio.subarray(offset, offset + spec.deltaSamples);
    deltas.push({ type: 'response.output_audio.delta', ...at, delta: Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('base64') });
    if (piece < spec.transcript.length) deltas.push({ type: 'response.output_audio_transcript.delta', ...at, delta: spec.transcript[piece] });
  }
  const transcript = spec.transcript.join('');
  const end: WireEvent[] = [
    { type: 'response.output_audio.done', ...at },
    { type: 'response.output_audio_transcript.done', ...at, transcript },
    { type: 'response.content_part.done', ...at, part: { type: 'audio', transcript } },
    { type: 'response.output_item.done', response_id, output_index: 0, item: { ...item, status: 'completed' } },
    { type: 'response.done', response: { id: response_id, object: 'realtime.response', status: 'completed', output: [] } },
  ];
  return { start, deltas, end };
}
