// GET /v1/sessions/:id/history: a session's conversation history, also after the session closed
// (for the retention time). The caller presents an access token (Bearer) of the session's identity,
// or one with the `admin` grant.
import type { FastifyInstance } from 'fastify';
import { mayActFor, type AccessTokens } from './auth.ts';
import { authenticateRequest } from './request-auth.ts';
import { errorMessage } from './errors.ts';
import type { SessionStore } from '../server/session-store.ts';

export function registerHistoryRoute(app: FastifyInstance, store: SessionStore, tokens: AccessTokens): void {
  app.get<{ Params: { id: string }; Querystring: { afterIndex?: number } }>(
    '/v1/sessions/:id/history',
    {
      schema: {
        params: { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['id'] },
        querystring: { type: 'object', additionalProperties: false, properties: { afterIndex: { type: 'integer', minimum: -1 } } },
      },
    },
    async (request, reply) => {
      const claims = await authenticateRequest(tokens, request);
      const record = await store.getSession(request.params.id);
      // One answer for "no such session" and "not yours", so other identities' ids cannot be probed.
      if (!record || !mayActFor(claims, record)) {
        return reply.code(404).send(errorMessage('SESSION_ERR_NOT_FOUND', 'no such session, or it is not yours'));
      }
      const turns = await store.turns(record.sessionId, request.query.afterIndex ?? -1);
      return {
        sessionId: record.sessionId,
        identity: record.identity ?? null,
        room: record.room,
        mode: record.mode,
        state: record.state,
        closedAt: record.closedAt,
        closeReason: record.closeReason,
        turns,
      };
    },
  );
}
