// buildApp(config) wires the server together: Fastify with the signaling route and the demo page,
// the session directory and the media workers. main.ts only listens; tests build their own.
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import fastifyStatic from '@fastify/static';
import { MediaPool } from './media-pool.ts';
import { SessionManager } from './session-manager.ts';
import { MemorySessionStore, RedisSessionStore, type SessionStore } from './session-store.ts';
import { registerHistoryRoute } from '../signaling/history-route.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { SessionTelemetry } from '../telemetry/session-telemetry.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { registerSignalingRoute, HARD_MAX_FRAME_BYTES } from '../signaling/ws-route.ts';
import type { Config } from './config.ts';

const CLIENT_DIST = fileURLToPath(new URL('../client/dist/', import.meta.url));

export interface VoiceServer {
  app: FastifyInstance;
  sessions: SessionManager;
  media: MediaPool;
  /**
   * Graceful drain: stop admitting, tell clients, let sessions end on their own until the deadline,
   * then close the rest. History is flushed to the store before it resolves.
   */
  drain(deadlineMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface BuildOptions {
  /** Serves /metrics in Prometheus text format (from telemetry/otel.ts when enabled). */
  prometheusHandler?: ((req: IncomingMessage, res: ServerResponse) => void) | null;
}

export async function buildApp(config: Readonly<Config>, options: BuildOptions = {}): Promise<VoiceServer> {
  const app = Fastify({
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    bodyLimit: 64 * 1024,
  });
  const media = new MediaPool(config);
  await media.start();
  const store: SessionStore = config.redisUrl
    ? new RedisSessionStore(config.redisUrl, config.historyRetentionMs)
    : new MemorySessionStore(config.historyRetentionMs);
  const sessions = new SessionManager(config, media, store);
  new SessionTelemetry(sessions, media, { recordTranscripts: config.telemetry.recordTranscripts });
  sessions.on('storeerror', (error) => app.log.error({ err: error.message }, 'session store write failed'));

  sessions.on('sessioncreated', (s) => app.log.info({ sessionId: s.id, room: s.room, mode: s.mode, worker: s.workerIndex }, 'session created'));
  sessions.on('sessionclosed', (s, reason) => app.log.info({ sessionId: s.id, reason, turns: s.history.length }, 'session closed'));
  sessions.on('reconnect', (s, outcome) => app.log.info({ sessionId: s.id, ...outcome }, outcome.success ? 'session reconnected' : 'session gave up reconnecting'));
  sessions.on('medialost', (s, detectionMs) => app.log.info({ sessionId: s.id, detectionMs }, 'media path lost'));
  media.on('workerexit', (index, ids, reason) => app.log.error({ worker: index, sessions: ids.length, reason }, 'media worker died; restarted'));

  await app.register(websocket, { options: { maxPayload: HARD_MAX_FRAME_BYTES } });
  registerSignalingRoute(app, { config, sessions, media });
  registerHistoryRoute(app, store);

  const stopHealth = registerHealthRoutes(app, { config, sessions, media });
  const prometheus = options.prometheusHandler;
  if (prometheus) {
    app.get('/metrics', (request, reply) => {
      reply.hijack();
      prometheus(request.raw, reply.raw);
    });
  }

  if (existsSync(CLIENT_DIST)) {
    await app.register(fastifyStatic, { root: CLIENT_DIST, index: 'index.html' });
  } else {
    app.get('/', async (_request, reply) =>
      reply.code(503).type('text/plain').send('demo page not built: run `npm run build:client`'),
    );
  }

  let closed = false;
  const server: VoiceServer = {
    app,
    sessions,
    media,
    async drain(deadlineMs = config.drainTimeoutMs) {
      sessions.startDrain(deadlineMs);
      app.log.info({ sessions: sessions.size, deadlineMs }, 'draining');
      const deadline = Date.now() + deadlineMs;
      while (sessions.size > 0 && Date.now() < deadline) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
          function done() {
            clearTimeout(timer);
            sessions.off('sessionclosed', done);
            resolve();
          }
          sessions.once('sessionclosed', done);
        });
      }
      await server.close();
    },
    async close() {
      if (closed) return;
      closed = true;
      stopHealth();
      sessions.shutdown();
      sessions.stop();
      await sessions.flush();
      await app.close();
      await media.stop();
      await store.close();
    },
  };
  return server;
}
