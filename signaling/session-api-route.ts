// The session API, for integrators (SIP bridges, back ends) beside whichever signaling a session uses:
//   GET  /v1/sessions/:id          state, room participants and conversation history
//   GET  /v1/sessions/:id/events   server-sent events: state, transcripts, turns, speech, room, errors
//   POST /v1/sessions/:id/say      the agent speaks a text now (announcements; in a shared room, the
//                                  room's agent, to everyone); `agent` grant
// The caller presents an access token (Bearer) of the session's identity, or one with `admin`.
// Unknown and not-yours get the same 404, so other identities' session ids cannot be probed.
import type { FastifyInstance } from 'fastify';
import { authorize, mayActFor, type AccessClaims, type AccessTokens } from './auth.ts';
import { authenticateRequest } from './request-auth.ts';
import { SignalingError } from './errors.ts';
import type { ServerMessage } from './protocol.ts';
import type { SessionManager } from '../server/session-manager.ts';
import type { MediaPool } from '../server/media-pool.ts';
import type { SessionStore } from '../server/session-store.ts';
import type { Session } from '../server/session.ts';

/** What an event stream carries: the conversation and the room, not the client's own signaling. */
const STREAMED: ReadonlySet<ServerMessage['type']> = new Set(['state', 'transcript', 'turn', 'speech', 'participant', 'error', 'draining']);
/** Open event streams per session. */
export const MAX_EVENT_STREAMS = 4;
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
/** A consumer this far behind is cut off rather than buffered without end. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
export const MAX_SAY_CHARS = 2000;

export interface SessionApiDeps {
  sessions: SessionManager;
  media: MediaPool;
  store: SessionStore;
  tokens: AccessTokens;
}

const ID_PARAMS = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['id'] } as const;
const notFound = (): SignalingError => new SignalingError('SESSION_ERR_NOT_FOUND', 'no such session, or it is not yours');

export function registerSessionApiRoutes(app: FastifyInstance, deps: SessionApiDeps): void {
  const { sessions, media, store, tokens } = deps;

  /** The caller's session if it is live, else null. */
  const ownLive = (claims: AccessClaims, id: string): Session | null => {
    const session = sessions.get(id);
    return session && !session.closed && mayActFor(claims, session) ? session : null;
  };
  const liveSession = async (request: Parameters<typeof authenticateRequest>[1], id: string) => {
    const claims = await authenticateRequest(tokens, request);
    const session = ownLive(claims, id);
    if (!session) throw notFound();
    return { claims, session };
  };

  app.get<{ Params: { id: string } }>('/v1/sessions/:id', { schema: { params: ID_PARAMS } }, async (request) => {
    const claims = await authenticateRequest(tokens, request);
    const session = ownLive(claims, request.params.id);
    if (session) {
      const room = sessions.rooms.snapshot(session.id);
      return {
        sessionId: session.id,
        identity: session.identity,
        room: session.room,
        mode: session.mode,
        transport: session.access.transport,
        state: session.state,
        createdAt: session.createdAt,
        closedAt: null,
        closeReason: null,
        participantId: room?.participantId ?? null,
        participants: room?.participants ?? [],
        agentListensTo: room?.agentListensTo ?? null,
        turns: session.history,
      };
    }
    // Closed: what the store kept (for SESSION_HISTORY_RETENTION_MS).
    const record = await store.getSession(request.params.id);
    if (!record || !mayActFor(claims, record)) throw notFound();
    return {
      sessionId: record.sessionId,
      identity: record.identity ?? null,
      room: record.room,
      mode: record.mode,
      transport: null,
      state: record.state,
      createdAt: record.createdAt,
      closedAt: record.closedAt,
      closeReason: record.closeReason,
      participantId: null,
      participants: [],
      agentListensTo: null,
      turns: await store.turns(record.sessionId, -1),
    };
  });

  app.get<{ Params: { id: string } }>('/v1/sessions/:id/events', { schema: { params: ID_PARAMS } }, async (request, reply) => {
    const { session } = await liveSession(request, request.params.id);
    if (session.observers >= MAX_EVENT_STREAMS) {
      throw new SignalingError('SESSION_ERR_TOO_MANY_STREAMS', `at most ${MAX_EVENT_STREAMS} event streams per session`);
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    let id = 0;
    const write = (event: string, data: unknown): void => {
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        finish(); // a consumer that stopped reading
        return;
      }
      res.write(`id: ${++id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const stopObserving = session.observe((message) => {
      if (STREAMED.has(message.type)) write(message.type, message);
    });
    const onClose = (reason: string): void => {
      write('closed', { type: 'closed', reason });
      finish();
    };
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    let finished = false;
    function finish(): void {
      if (finished) return;
      finished = true;
      clearInterval(keepalive);
      stopObserving();
      session.off('@close', onClose);
      res.end();
    }
    session.once('@close', onClose);
    request.raw.on('close', finish);
    // Where the session stands now, then everything from here on.
    write('session', { type: 'session', sessionId: session.id, state: session.state, room: session.room, mode: session.mode, turns: session.history.length });
  });

  app.post<{ Params: { id: string }; Body: { text: string } }>(
    '/v1/sessions/:id/say',
    {
      schema: {
        params: ID_PARAMS,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['text'],
          properties: { text: { type: 'string', minLength: 1, maxLength: MAX_SAY_CHARS, pattern: '\\S' } },
        },
      },
    },
    async (request, reply) => {
      const { claims, session } = await liveSession(request, request.params.id);
      authorize(claims, 'agent', session.room);
      // In a shared room the agent is hosted by the designated participant's session: it speaks to everyone.
      const host = sessions.get(sessions.rooms.agentSessionOf(session.id) ?? session.id) ?? session;
      if (host.mode === 'echo') throw new SignalingError('SESSION_ERR_NO_AGENT', 'this session is in echo mode: there is no agent to speak');
      await media.say(host.id, request.body.text);
      session.touch();
      return reply.code(202).send({ sessionId: session.id, accepted: true });
    },
  );
}
