// /healthz (the process is alive and serving HTTP) and /readyz (it should get new sessions:
// workers alive, not draining, below capacity, main event loop responsive). /readyz says why not.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import type { SessionManager } from './session-manager.ts';
import type { MediaPool } from './media-pool.ts';
import type { Config } from './config.ts';

export function registerHealthRoutes(app: FastifyInstance, deps: { config: Readonly<Config>; sessions: SessionManager; media: MediaPool }): () => void {
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  // A rolling view: the histogram restarts every few seconds so a past spike does not stick.
  const roll = setInterval(() => lag.reset(), 5000);
  roll.unref();

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const { config, sessions, media } = deps;
    const lagP99Ms = lag.count > 0 ? lag.percentile(99) / 1e6 : 0;
    const reasons: string[] = [];
    if (!media.healthy) reasons.push('media_workers_down');
    if (sessions.draining) reasons.push('draining');
    if (sessions.size >= config.maxSessions) reasons.push('at_capacity');
    if (lagP99Ms > config.readyMaxLagMs) reasons.push('event_loop_lagging');
    const body = {
      ready: reasons.length === 0,
      reasons,
      sessions: sessions.size,
      maxSessions: config.maxSessions,
      workers: media.workerCount,
      eventLoopLagP99Ms: Math.round(lagP99Ms * 10) / 10,
    };
    return reply.code(body.ready ? 200 : 503).send(body);
  });

  return () => {
    clearInterval(roll);
    lag.disable();
  };
}
