// Starts a real server (Fastify + media workers) on an ephemeral loopback port for one test file.
import { loadConfig, type Config } from '../../server/config.ts';
import { buildApp, type VoiceServer } from '../../server/app.ts';
import { TEST_AUTH_ENV } from './auth.ts';

export interface RunningServer extends VoiceServer {
  url: string;
  wsUrl: string;
  config: Readonly<Config>;
}

export async function startServer(env: Record<string, string> = {}): Promise<RunningServer> {
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    MEDIA_WORKERS: '2',
    RTC_HOST_ADDRESSES: '127.0.0.1',
    // The media tests are about transport; they talk to the echo. Agent tests ask for stt_tts.
    VOICE_DEFAULT_MODE: 'echo',
    // Test clients mint their tokens with this secret; `AUTH_JWT_SECRET: ''` gives the embedded default.
    ...TEST_AUTH_ENV,
    ...env,
  });
  const server = await buildApp(config);
  await server.app.listen({ host: config.host, port: config.port });
  const address = server.app.server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return {
    ...server,
    config,
    url: `http://127.0.0.1:${address.port}`,
    wsUrl: `ws://127.0.0.1:${address.port}/v1/signal`,
  };
}

/** Resolves with the close reason when the session leaves the directory. */
export function waitForSessionClosed(server: VoiceServer, sessionId: string, timeoutMs = 10_000): Promise<string> {
  if (!server.sessions.get(sessionId)) return Promise.reject(new Error(`session ${sessionId} is not open`));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      server.sessions.off('sessionclosed', listener);
      reject(new Error(`session ${sessionId} did not close in ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (session: { id: string }, reason: string) => {
      if (session.id !== sessionId) return;
      clearTimeout(timer);
      server.sessions.off('sessionclosed', listener);
      resolve(reason);
    };
    server.sessions.on('sessionclosed', listener);
  });
}
