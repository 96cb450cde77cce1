// A stand-in for a cloud speech-to-text service, on loopback, for the listening-pipeline steps. The
// server runs its OpenAI STT adapter against it: at the end of each turn the adapter uploads the
// turn's audio (POST {base}/audio/transcriptions, a WAV in a multipart form) and the stub answers
// at once with an empty transcript, so the turn ends without an answer ("nothing recognisable was
// said"). The server thus does all of the listening (VAD, turn detection, the turn's audio and its
// upload) and none of the recognition, agent or synthesis. It runs in the runner's process, so its
// CPU is not charged to the server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class SttStub {
  readonly #server: Server;
  /** Transcription requests answered, and the audio bytes uploaded with them. */
  requests = 0;
  uploadBytes = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<SttStub> {
    const server = createServer();
    const stub = new SttStub(server);
    server.on('request', (request, response) => {
      let bytes = 0;
      request.on('data', (chunk: Buffer) => (bytes += chunk.length));
      request.on('end', () => {
        if (request.method !== 'POST' || !request.url?.endsWith('/audio/transcriptions')) {
          response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
          return;
        }
        stub.requests++;
        stub.uploadBytes += bytes;
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"text":""}');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return stub;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1`;
  }

  /**
   * Server settings that send STT to the stub. The config requires a key for the "openai" chain:
   * a placeholder, sent only to the stub. VOICE_MODES is explicit so that the key does not offer s2s.
   */
  serverEnv(): NodeJS.ProcessEnv {
    return { STT_PROVIDERS: 'openai', OPENAI_BASE_URL: this.baseUrl, OPENAI_API_KEY: 'loopback-stt-stub', VOICE_MODES: 'echo,stt_tts' };
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
