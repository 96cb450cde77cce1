// GET /v1/sessions/:id/history: a session's conversation history, also after the session closed
// (for the retention time). The caller proves it owns the session with its latest resume token.
import type { FastifyInstance } from 'fastify';
import { timingSafeEqual } from 'node:crypto';
import { hashToken } from '../server/session.ts';
import { errorMessage } from './errors.ts';
import type { SessionStore } from '../server/session-store.ts';

export function registerHistoryRoute(app: FastifyInstance, store: SessionStore): void {
  app.get<{ Params: { id: string }; Querystring: { afterIndex?: number } }>(
    '/v1/sessions/:id/history',
    {
      schema: {
        params: { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['id'] },
        querystring: { type: 'object', additionalProperties: false, properties: { afterIndex: { type: 'integer', minimum: -1 } } },
      },
    },
    async (request, reply) => {
      const token = /^Bearer (\S{1,128})$/.exec(request.headers.authorization ?? '')?.[1];
      const record = await store.getSession(request.params.id);
      // One answer for "no such session" and "wrong token", so ids cannot be probed.
      if (!token || !record || !sameHash(hashToken(token), record.resumeTokenHash)) {
        return reply.code(404).send(errorMessage('SESSION_ERR_NOT_FOUND', 'no such session, or the token does not match'));
      }
      const turns = await store.turns(record.sessionId, request.query.afterIndex ?? -1);
      return { sessionId: record.sessionId, room: record.room, mode: record.mode, state: record.state, closedAt: record.closedAt, closeReason: record.closeReason, turns };
    },
  );
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
