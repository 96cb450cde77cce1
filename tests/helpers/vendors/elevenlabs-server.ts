// A loopback stand-in for ElevenLabs' input-streaming TTS socket
// (`/v1/text-to-speech/{voice_id}/stream-input`), speaking its wire protocol: JSON text messages
// in (a first `{"text":" "}`, then text, `flush`, and `{"text":""}` to end), JSON out
// (`{"audio": base64 PCM, "isFinal": false, "normalizedAlignment": ...}`, then `{"isFinal": true}`
// and a normal close). With `synthesize` on it voices text the way ElevenLabs buffers it: on a
// flush, once 120 characters are held (the first step of the default chunk_length_schedule), or at
// the end of input; its "speech" is speechFor(text), so tests know the exact samples to expect.
// Audio goes out in odd-sized pieces so samples straddle messages, as they can on the real service.
import type { WebSocket } from 'ws';
import { WebSocketStandIn, type Handshake } from './websocket-stand-in.ts';

export interface ElevenLabsTestServerOptions {
  /** Answer text with speechFor(text) by itself; off: the test scripts every answer. */
  synthesize: boolean;
  /** Size of the PCM pieces per audio message; odd on purpose. */
  chunkBytes: number;
}

export type ClientMessage = { text: string; flush?: boolean; [field: string]: unknown };

const FIRST_CHUNK_CHARS = 120;

/** Deterministic 16-bit "speech" for a text: 5 ms per character, negative samples included. */
export function speechFor(text: string, sampleRate = 16000): Int16Array {
  const perChar = Math.round(sampleRate / 200);
  return Int16Array.from({ length: text.length * perChar }, (_, i) => {
    const code = text.charCodeAt(Math.floor(i / perChar));
    return ((code * 2654435761 + i * 40503) % 65536) - 32768;
  });
}

/** PCM as ElevenLabs sends it: 16-bit little-endian. */
export function littleEndian(samples: Int16Array): Buffer {
  const bytes = Buffer.alloc(samples.length * 2);
  samples.forEach((sample, i) => bytes.writeInt16LE(sample, i * 2));
  return bytes;
}

export class ElevenLabsTestServer {
  readonly #socket: WebSocketStandIn<ElevenLabsTestConnection>;

  static async start(options: Partial<ElevenLabsTestServerOptions> = {}): Promise<ElevenLabsTestServer> {
    const resolved = { synthesize: true, chunkBytes: 1001, ...options };
    return new ElevenLabsTestServer(await WebSocketStandIn.start((ws, handshake) => new ElevenLabsTestConnection(ws, handshake, resolved)));
  }

  private constructor(socket: WebSocketStandIn<ElevenLabsTestConnection>) {
    this.#socket = socket;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#socket.port}/v1`;
  }

  get connectionCount(): number {
    return this.#socket.connectionCount;
  }

  refuseNextHandshake(status: number, body: string): void {
    this.#socket.refuseNextHandshake({ status, body });
  }

  connection(index: number): Promise<ElevenLabsTestConnection> {
    return this.#socket.connection(index);
  }

  close(): Promise<void> {
    return this.#socket.close();
  }
}

export class ElevenLabsTestConnection {
  readonly messages: ClientMessage[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;
  readonly #options: ElevenLabsTestServerOptions;
  readonly #sampleRate: number;
  readonly #checks = new Set<() => void>();
  #held = '';
  #isClosed = false;

  constructor(
    ws: WebSocket,
    readonly handshake: Handshake,
    options: ElevenLabsTestServerOptions,
  ) {
    this.#ws = ws;
    this.#options = options;
    this.#sampleRate = Number(handshake.query.get('output_format')?.replace('pcm_', '') ?? 16000);
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as ClientMessage;
      this.messages.push(message);
      if (this.#options.synthesize) this.#synthesize(message);
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

  get endOfInput(): boolean {
    return this.messages.length > 1 && this.messages.at(-1)?.text === '';
  }

  waitFor(condition: () => boolean, what = 'condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (condition()) {
          this.#checks.delete(check);
          resolve();
        } else if (this.#isClosed) {
          this.#checks.delete(check);
          reject(new Error(`elevenlabs test connection closed before ${what}`));
        }
      };
      this.#checks.add(check);
      check();
    });
  }

  waitForEndOfInput(): Promise<void> {
    return this.waitFor(() => this.endOfInput, 'the end of input');
  }

  /** Audio messages shaped like ElevenLabs', the PCM cut into pieces of `pieceBytes` (cycled). */
  sendAudio(pcm: Buffer, pieceBytes: number[] = [this.#options.chunkBytes]): void {
    for (let offset = 0, i = 0; offset < pcm.length; i++) {
      const piece = pcm.subarray(offset, offset + pieceBytes[i % pieceBytes.length]!);
      offset += piece.length;
      const ms = Math.round((piece.length / 2 / this.#sampleRate) * 1000);
      const alignment = { chars: ['x'], charStartTimesMs: [0], charDurationsMs: [ms] };
      this.send({ audio: piece.toString('base64'), isFinal: false, normalizedAlignment: alignment, alignment });
    }
  }

  sendFinal(): void {
    this.send({ isFinal: true });
  }

  send(message: unknown): void {
    this.#ws.send(JSON.stringify(message));
  }

  close(code: number, reason = ''): void {
    this.#ws.close(code, reason);
  }

  drop(): void {
    this.#ws.terminate();
  }

  #synthesize(message: ClientMessage): void {
    if (this.messages.length === 1) return; // the opening " "
    if (message.text === '') {
      this.#voice();
      this.sendFinal();
      this.#ws.close(1000);
      return;
    }
    this.#held += message.text;
    if (message.flush === true || this.#held.length >= FIRST_CHUNK_CHARS) this.#voice();
  }

  #voice(): void {
    const text = this.#held.trim();
    this.#held = '';
    if (!text) return;
    this.sendAudio(littleEndian(speechFor(text, this.#sampleRate)));
  }

  #runChecks(): void {
    for (const check of [...this.#checks]) check();
  }
}
