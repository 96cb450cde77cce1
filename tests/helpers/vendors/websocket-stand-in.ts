// The socket half of a vendor stand-in (Deepgram, ElevenLabs): an HTTP server on a loopback port
// whose WebSocket upgrades become connections of the vendor's protocol, handshakes that can be
// refused with a scripted status, and the accepted connections in order, awaitable by index.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface Handshake {
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
}

/** A refused handshake: the status line, extra headers, and a JSON body. */
export interface Refusal {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export class WebSocketStandIn<C extends { drop(): void }> {
  readonly #http = http.createServer();
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #connections: C[] = [];
  readonly #waiters = new Map<number, Array<(connection: C) => void>>();
  readonly #refusals: Refusal[] = [];
  /** Handshakes refused with refuseNextHandshake. */
  readonly refused: Handshake[] = [];

  static async start<C extends { drop(): void }>(accept: (ws: WebSocket, handshake: Handshake) => C): Promise<WebSocketStandIn<C>> {
    const standIn = new WebSocketStandIn(accept);
    await new Promise<void>((resolve) => standIn.#http.listen(0, '127.0.0.1', resolve));
    return standIn;
  }

  private constructor(accept: (ws: WebSocket, handshake: Handshake) => C) {
    this.#http.on('upgrade', (request: http.IncomingMessage, socket: Socket, head: Buffer) => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      const handshake: Handshake = { path: url.pathname, query: url.searchParams, headers: request.headers };
      const refusal = this.#refusals.shift();
      if (refusal) {
        this.refused.push(handshake);
        const body = refusal.body ?? '';
        const lines = [
          `HTTP/1.1 ${refusal.status} ${http.STATUS_CODES[refusal.status] ?? 'Error'}`,
          ...Object.entries(refusal.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
          'Content-Type: application/json',
          `Content-Length: ${Buffer.byteLength(body)}`,
          'Connection: close',
        ];
        socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
        return;
      }
      this.#wss.handleUpgrade(request, socket, head, (ws) => {
        const connection = accept(ws, handshake);
        const index = this.#connections.push(connection) - 1;
        for (const resolve of this.#waiters.get(index) ?? []) resolve(connection);
        this.#waiters.delete(index);
      });
    });
  }

  get port(): number {
    return (this.#http.address() as AddressInfo).port;
  }

  get connectionCount(): number {
    return this.#connections.length;
  }

  refuseNextHandshake(refusal: Refusal): void {
    this.#refusals.push(refusal);
  }

  /** The index-th accepted connection (0-based), once it exists. */
  connection(index: number): Promise<C> {
    const existing = this.#connections[index];
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve) => this.#waiters.set(index, [...(this.#waiters.get(index) ?? []), resolve]));
  }

  async close(): Promise<void> {
    for (const connection of this.#connections) connection.drop();
    this.#wss.close();
    this.#http.closeAllConnections();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
  }
}
