// A loopback stand-in for Deepgram's live transcription socket (`/v1/listen`), speaking its wire
// protocol: binary audio in, JSON controls (KeepAlive, Finalize, CloseStream) in, `Results` out.
// Tests script what it answers; it records what the client sent so tests can assert on the wire.
// Like Deepgram, it answers CloseStream with a Metadata message and a normal close, and it can
// refuse handshakes with a status, a `dg-error` header and a JSON body.
import type { WebSocket } from 'ws';
import { WebSocketStandIn, type Handshake } from './websocket-stand-in.ts';

export type { Handshake };

export interface HandshakeRefusal {
  status: number;
  dgError?: string;
  body?: string;
}

export type Received = { kind: 'audio'; bytes: Buffer } | { kind: 'control'; type: string };

export interface ResultsScript {
  transcript: string;
  isFinal?: boolean;
  speechFinal?: boolean;
  fromFinalize?: boolean;
  confidence?: number;
  /** Seconds on the audio clock; default: the end of the previous final result. */
  start?: number;
  /** Default: all audio received so far. */
  end?: number;
}

export class DeepgramTestServer {
  readonly #socket: WebSocketStandIn<DeepgramTestConnection>;

  static async start(): Promise<DeepgramTestServer> {
    return new DeepgramTestServer(await WebSocketStandIn.start((ws, handshake) => new DeepgramTestConnection(ws, handshake)));
  }

  private constructor(socket: WebSocketStandIn<DeepgramTestConnection>) {
    this.#socket = socket;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#socket.port}/v1/listen`;
  }

  get connectionCount(): number {
    return this.#socket.connectionCount;
  }

  /** Handshakes refused with refuseNextHandshake. */
  get refused(): Handshake[] {
    return this.#socket.refused;
  }

  refuseNextHandshake(refusal: HandshakeRefusal): void {
    this.#socket.refuseNextHandshake({ status: refusal.status, body: refusal.body, headers: refusal.dgError ? { 'dg-error': refusal.dgError } : {} });
  }

  /** The index-th accepted connection (0-based), once it exists. */
  connection(index: number): Promise<DeepgramTestConnection> {
    return this.#socket.connection(index);
  }

  close(): Promise<void> {
    return this.#socket.close();
  }
}

export class DeepgramTestConnection {
  readonly received: Received[] = [];
  /** Resolves with the close code and reason once the socket is closed, whoever closed it. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;
  readonly #sampleRate: number;
  readonly #checks = new Set<() => void>();
  #audioBytes = 0;
  #finalEnd = 0;
  #isClosed = false;

  constructor(
    ws: WebSocket,
    readonly handshake: Handshake,
  ) {
    this.#ws = ws;
    this.#sampleRate = Number(handshake.query.get('sample_rate') ?? 16000);
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) {
        this.received.push({ kind: 'audio', bytes: Buffer.from(data) });
        this.#audioBytes += data.length;
      } else {
        const message = JSON.parse(String(data)) as { type: string };
        this.received.push({ kind: 'control', type: message.type });
        if (message.type === 'CloseStream') this.#answerCloseStream();
      }
      this.#runChecks();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.#isClosed = true;
        resolve({ code, reason: String(reason) });
        this.#runChecks();
      });
    });
  }

  /** All audio bytes received, in order. */
  audio(): Buffer {
    return Buffer.concat(this.received.flatMap((item) => (item.kind === 'audio' ? [item.bytes] : [])));
  }

  controls(): string[] {
    return this.received.flatMap((item) => (item.kind === 'control' ? [item.type] : []));
  }

  get receivedSeconds(): number {
    return this.#audioBytes / 2 / this.#sampleRate;
  }

  /** Resolves when `condition` holds (checked on every message); rejects if the socket closes first. */
  waitFor(condition: () => boolean, what = 'condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (condition()) {
          this.#checks.delete(check);
          resolve();
        } else if (this.#isClosed) {
          this.#checks.delete(check);
          reject(new Error(`deepgram test connection closed before ${what}`));
        }
      };
      this.#checks.add(check);
      check();
    });
  }

  waitForControl(type: string, count = 1): Promise<void> {
    return this.waitFor(() => this.controls().filter((t) => t === type).length >= count, `${count} x ${type}`);
  }

  waitForAudioBytes(bytes: number): Promise<void> {
    return this.waitFor(() => this.#audioBytes >= bytes, `${bytes} audio bytes`);
  }

  /** A `Results` message shaped like Deepgram's, placed on the audio clock. */
  sendResults(script: ResultsScript): void {
    const start = script.start ?? this.#finalEnd;
    const end = script.end ?? this.receivedSeconds;
    const isFinal = script.isFinal ?? script.fromFinalize ?? false;
    if (isFinal) this.#finalEnd = end;
    const words = script.transcript.split(/\s+/).filter(Boolean);
    this.send({
      type: 'Results',
      channel_index: [0, 1],
      duration: round(end - start),
      start: round(start),
      is_final: isFinal,
      speech_final: script.speechFinal ?? false,
      channel: {
        alternatives: [
          {
            transcript: script.transcript,
            confidence: script.confidence ?? 0.9,
            words: words.map((word) => ({ word, start, end, confidence: 0.9, punctuated_word: word })),
          },
        ],
      },
      metadata: { request_id: 'test-request', model_info: { name: 'nova-3', version: 'test', arch: 'test' } },
      from_finalize: script.fromFinalize ?? false,
    });
  }

  send(message: unknown): void {
    this.#ws.send(JSON.stringify(message));
  }

  /** A close frame from the server, as Deepgram sends on errors (1011 NET-0001, 1008 DATA-0000). */
  close(code: number, reason: string): void {
    this.#ws.close(code, reason);
  }

  /** The TCP connection vanishes without a close frame. */
  drop(): void {
    this.#ws.terminate();
  }

  #answerCloseStream(): void {
    this.send({ type: 'Metadata', request_id: 'test-request', duration: this.receivedSeconds, channels: 1 });
    this.#ws.close(1000);
  }

  #runChecks(): void {
    for (const check of [...this.#checks]) check();
  }
}

// Deepgram reports times in seconds with millisecond precision.
const round = (seconds: number) => Math.round(seconds * 1000) / 1000;
