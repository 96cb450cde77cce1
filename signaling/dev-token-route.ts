// GET /v1/dev-token: development mode only. Hands out a short-lived participant token so the demo
// page works with no setup. On the embedded default it answers loopback clients only; with
// AUTH_DEV_MODE=true anyone who can reach the server gets one (which is why that is announced loudly).
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_GRANTS, isLoopbackAddress, type AccessTokens } from './auth.ts';
import { SignalingError } from './errors.ts';
import { MAX_ROOM_CHARS } from './protocol.ts';

export function registerDevTokenRoute(app: FastifyInstance, tokens: AccessTokens): void {
  if (tokens.devMode === 'off') return;
  app.get<{ Querystring: { identity?: string; room?: string } }>(
    '/v1/dev-token',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            identity: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.@:-]+$' },
            room: { type: 'string', minLength: 1, maxLength: MAX_ROOM_CHARS, pattern: '^[A-Za-z0-9_.-]+$' },
          },
        },
      },
    },
    async (request, reply) => {
      if (tokens.devMode === 'loopback' && !isLoopbackAddress(request.ip)) {
        throw new SignalingError('AUTH_ERR_DEV_LOOPBACK_ONLY', 'dev tokens are handed out to loopback clients only on the embedded default');
      }
      const identity = request.query.identity ?? `dev-${randomBytes(4).toString('hex')}`;
      const room = request.query.room ?? null;
      const ttlMs = tokens.defaultTtlMs;
      const token = await tokens.mint({ identity, room, grants: DEFAULT_GRANTS, ttlMs });
      reply.header('cache-control', 'no-store');
      return { token, identity, room, grants: DEFAULT_GRANTS, expiresAt: Date.now() + ttlMs, devMode: tokens.devMode };
    },
  );
}
