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
import { registerSessionApiRoutes } from '../signaling/session-api-route.ts';
import { registerWhipRoutes } from '../signaling/whip-route.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { SessionTelemetry } from '../telemetry/session-telemetry.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { registerSignalingRoute, HARD_MAX_FRAME_BYTES } from '../signaling/ws-route.ts';
import { AccessTokens, DEV_AUTH_SECRET } from '../signaling/auth.ts';
import { registerDevTokenRoute } from '../signaling/dev-token-route.ts';
import { registerHttpLimits } from '../signaling/http-limits.ts';
import type { Config } from './config.ts';

const CLIENT_DIST = fileURLToPath(new URL('../client/dist/', import.meta.url));

export interface VoiceServer {
  app: FastifyInstance;
  sessions: SessionManager;
  media: MediaPool;
  /** Verifies (and, with a signing key, mints) this server's access tokens. */
  tokens: AccessTokens;
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
    bodyLimit: config.limits.httpBodyBytes,
  });
  const tokens = new AccessTokens(config.auth);
  announceDevMode(app, config);
  await registerHttpLimits(app, config.limits);
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
  media.on('providerfallback', (info) => app.log.warn({ provider: info }, `${info.kind} provider ${info.from} failed (${info.reason}); using ${info.to}`));

  await app.register(websocket, { options: { maxPayload: HARD_MAX_FRAME_BYTES } });
  registerSignalingRoute(app, { config, sessions, media, tokens });
  registerHistoryRoute(app, store, tokens);
  registerSessionApiRoutes(app, { sessions, media, store, tokens });
  registerWhipRoutes(app, { config, sessions, media, tokens });
  registerDevTokenRoute(app, tokens);

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
    tokens,
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

/** Development mode is said loudly, at warn level, every start: it must never go unnoticed. */
function announceDevMode(app: FastifyInstance, config: Readonly<Config>): void {
  const { devMode, jwtSecret, jwtPublicKey, jwtPrivateKey } = config.auth;
  if (devMode === 'off') return;
  const key = jwtSecret || jwtPublicKey || jwtPrivateKey ? 'the configured key' : `the fixed, public dev key "${DEV_AUTH_SECRET}"`;
  const who = devMode === 'loopback' ? 'loopback clients only' : 'ANYONE who can reach this server';
  app.log.warn(
    { authDevMode: devMode },
    `AUTH DEVELOPMENT MODE: access tokens signed with ${key}; GET /v1/dev-token hands them out to ${who}. ` +
      (devMode === 'loopback' ? 'Set AUTH_JWT_SECRET (or AUTH_JWT_PUBLIC_KEY) to serve other clients.' : 'Never run this in production.'),
  );
}
