/**
 * A local stand-in for the OpenAI HTTP API (chat completions, transcriptions, speech) on
 * 127.0.0.1. Tests script replies one request at a time: a streamed success, an error status
 * (with Retry-After), a stall before the first byte, a connection dropped mid-stream or left
 * hanging. Every request is recorded (headers, raw body, JSON or multipart form) together with
 * whether the client closed it before the reply was complete.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type OpenAiRoute = 'chat' | 'transcription' | 'speech';

const ROUTES: Record<string, OpenAiRoute> = {
  '/v1/chat/completions': 'chat',
  '/v1/audio/transcriptions': 'transcription',
  '/v1/audio/speech': 'speech',
};

/** After the scripted parts: finish the response, destroy the socket, or keep it open until the client goes. */
export type StreamEnd = 'end' | 'drop' | 'hang';

export type ScriptedReply =
  /** OpenAI's error shape `{ error: { message, type, param, code } }`, or `body` verbatim. */
  | { kind: 'error'; status: number; message?: string; body?: string; headers?: Record<string, string> }
  | { kind: 'json'; body: unknown }
  /** Each event is one `data:` line (objects as JSON), written separately. */
  | { kind: 'sse'; events: (string | object)[]; then?: StreamEnd }
  /** `audio/pcm` body written chunk by chunk. */
  | { kind: 'audio'; chunks: Uint8Array[]; then?: StreamEnd }
  /** Never answers (or only sends the headers): for timeouts. */
  | { kind: 'stall'; headers?: boolean };

export interface RecordedRequest {
  route: OpenAiRoute | undefined;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The client's port: requests that share it came on one (keep-alive) connection. */
  remotePort: number;
  /** Resolves when the client closed the connection before the reply was complete. */
  closedByClient: Promise<void>;
  json(): Record<string, unknown>;
  form(): Promise<FormData>;
}

type ReplySource = ScriptedReply | ((request: RecordedRequest) => ScriptedReply);

export class OpenAiTestServer {
  readonly requests: RecordedRequest[] = [];
  readonly #server: Server;
  readonly #queued = new Map<OpenAiRoute, ScriptedReply[]>();
  readonly #fallback = new Map<OpenAiRoute, ReplySource>();
  #waiters: { count: number; resolve: () => void }[] = [];

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<OpenAiTestServer> {
    const server = createServer();
    const vendor = new OpenAiTestServer(server);
    server.on('request', (req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (part: Buffer) => parts.push(part));
      req.on('end', () => void vendor.#handle(req.method ?? '', req.url ?? '', req.headers, Buffer.concat(parts), req.socket.remotePort ?? 0, res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return vendor;
  }

  /** What the adapters take as `baseUrl`. */
  get baseUrl(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1`;
  }

  /** Replies for the next requests on `route`, in order. */
  reply(route: OpenAiRoute, ...replies: ScriptedReply[]): void {
    this.#queued.set(route, [...(this.#queued.get(route) ?? []), ...replies]);
  }

  /** The reply once the queue of `route` is empty. */
  replyAlways(route: OpenAiRoute, reply: ReplySource): void {
    this.#fallback.set(route, reply);
  }

  /** Resolves once `count` requests have arrived in all. */
  async receivedRequests(count: number): Promise<RecordedRequest[]> {
    if (this.requests.length < count) await new Promise<void>((resolve) => this.#waiters.push({ count, resolve }));
    return this.requests.slice(0, count);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(method: string, path: string, headers: IncomingHttpHeaders, body: Buffer, remotePort: number, res: ServerResponse): Promise<void> {
    let closedByClient!: () => void;
    const route = ROUTES[path];
    const request: RecordedRequest = {
      route,
      method,
      path,
      headers,
      body,
      remotePort,
      closedByClient: new Promise<void>((resolve) => (closedByClient = resolve)),
      json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown>,
      form: () => new Response(new Uint8Array(body), { headers: { 'content-type': headers['content-type'] ?? '' } }).formData(),
    };
    res.on('close', () => {
      if (!res.writableFinished) closedByClient();
    });
    this.requests.push(request);
    for (const waiter of this.#waiters.filter(({ count }) => this.requests.length >= count)) waiter.resolve();
    this.#waiters = this.#waiters.filter(({ count }) => this.requests.length < count);
    if (!route || method !== 'POST') return void send(res, 404, { error: { message: `no route ${method} ${path}` } });
    await this.#play(this.#nextReply(route, request), res);
  }

  #nextReply(route: OpenAiRoute, request: RecordedRequest): ScriptedReply {
    const queued = this.#queued.get(route)?.shift();
    if (queued) return queued;
    const fallback = this.#fallback.get(route) ?? DEFAULT_REPLIES[route];
    return typeof fallback === 'function' ? fallback(request) : fallback;
  }

  async #play(reply: ScriptedReply, res: ServerResponse): Promise<void> {
    switch (reply.kind) {
      case 'error': {
        const body = reply.body ?? JSON.stringify({ error: { message: reply.message ?? `status ${reply.status}`, type: 'invalid_request_error', param: null, code: null } });
        res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
        return void res.end(body);
      }
      case 'json':
        return send(res, 200, reply.body);
      case 'stall':
        if (reply.headers) res.writeHead(200, { 'content-type': 'text/event-stream' }).flushHeaders();
        return;
      case 'sse':
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
        for (const event of reply.events) await write(res, `data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`);
        return finish(res, reply.then ?? 'end');
      case 'audio':
        res.writeHead(200, { 'content-type': 'audio/pcm' });
        for (const chunk of reply.chunks) await write(res, chunk);
        return finish(res, reply.then ?? 'end');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Bodies in OpenAI's wire format

/** A streamed chat completion: role chunk, one chunk per delta, the finish chunk, `[DONE]`. */
export function chatCompletionEvents(deltas: string[], model = 'gpt-4o-mini'): (string | object)[] {
  const chunk = (delta: object, finish: string | null): object => ({
    id: 'chatcmpl-test',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  return [chunk({ role: 'assistant', content: '' }, null), ...deltas.map((content) => chunk({ content }, null)), chunk({}, 'stop'), '[DONE]'];
}

/** A streamed transcription: one `transcript.text.delta` per delta, then `transcript.text.done`. */
export function transcriptionEvents(deltas: string[], text = deltas.join('')): object[] {
  return [...deltas.map((delta) => ({ type: 'transcript.text.delta', delta })), { type: 'transcript.text.done', text }];
}

/** Little-endian 16-bit PCM bytes. */
export function pcmBytes(samples: ArrayLike<number>): Uint8Array {
  const bytes = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) bytes.writeInt16LE(samples[i], i * 2);
  return bytes;
}

const DEFAULT_REPLIES: Record<OpenAiRoute, ScriptedReply> = {
  chat: { kind: 'sse', events: chatCompletionEvents(['Hello', '!']) },
  transcription: { kind: 'sse', events: transcriptionEvents(['hello']) },
  speech: { kind: 'audio', chunks: [pcmBytes(new Int16Array(480))] },
};

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

// Resolves once the bytes are handed to the socket, so a following drop cannot swallow them.
function write(res: ServerResponse, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) return resolve();
    res.once('close', resolve);
    res.write(data, () => {
      res.off('close', resolve);
      resolve();
    });
  });
}

function finish(res: ServerResponse, end: StreamEnd): void {
  if (end === 'end') res.end();
  else if (end === 'drop') res.socket?.destroy();
}
