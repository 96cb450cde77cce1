// WHIP (RFC 9725): the HTTP signaling API for SIP bridges and other clients without a WebSocket.
//   POST   /v1/whip?room=&mode=   application/sdp offer -> 201, SDP answer, Location, ETag, Link
//   PATCH  /v1/whip/:id           application/trickle-ice-sdpfrag: trickle (If-Match: the ETag) -> 204,
//                                 or ICE restart (new ufrag/pwd, If-Match: *) -> 200 + the server's fragment
//   DELETE /v1/whip/:id           ends the session
// Every request carries an access token (Bearer) with the `sip` grant; creating one also needs
// `join`. A WHIP session is an ordinary session (history, events, `say` via /v1/sessions/:id), but
// the server never offers to it: it hears the agent, its audio reaches the room, and it restarts
// ICE itself when its network changes (the conversation and its history are kept).
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authorize, mayActFor, type AccessClaims, type AccessTokens } from './auth.ts';
import { authenticateRequest } from './request-auth.ts';
import { SignalingError } from './errors.ts';
import { checkAudioSdp } from './sdp-check.ts';
import { admitSession } from './session-admission.ts';
import { iceCredentials, iceFragmentOf, parseSdpFragment, withIceCredentials, type SdpFragment } from './sdp-fragment.ts';
import type { SessionManager } from '../server/session-manager.ts';
import type { MediaPool } from '../server/media-pool.ts';
import type { Session } from '../server/session.ts';
import type { Config } from '../server/config.ts';
import type { IceServerInfo } from './protocol.ts';

export const WHIP_PATH = '/v1/whip';
const SDP = 'application/sdp';
const FRAGMENT = 'application/trickle-ice-sdpfrag';

export interface WhipDeps {
  config: Readonly<Config>;
  sessions: SessionManager;
  media: MediaPool;
  tokens: AccessTokens;
}

/** What the main thread keeps of a WHIP session: the offer it stands on and its ICE generation. */
interface WhipResource {
  offer: string;
  /** The client's current ICE username fragment (a PATCH with another one restarts ICE). */
  ufrag: string;
  mid: string | null;
  etag: string;
}

const newEtag = (): string => `"${randomBytes(9).toString('base64url')}"`;

export function registerWhipRoutes(app: FastifyInstance, deps: WhipDeps): void {
  const resources = new Map<string, WhipResource>();
  const { config, sessions, media, tokens } = deps;
  // Bodies are capped by the server's HTTP body limit, then by the SDP checks (size, lines, shape).
  app.addContentTypeParser([SDP, FRAGMENT], { parseAs: 'string' }, (_request, body, done) => done(null, body));

  const authenticate = async (request: FastifyRequest): Promise<AccessClaims> => {
    const claims = await authenticateRequest(tokens, request);
    authorize(claims, 'sip');
    return claims;
  };

  /** The caller's live WHIP session; one answer for "none" and "not yours", so ids cannot be probed. */
  const ownSession = (claims: AccessClaims, id: string): { session: Session; resource: WhipResource } => {
    const session = sessions.get(id);
    const resource = resources.get(id);
    if (!session || session.closed || !resource || !mayActFor(claims, session)) {
      throw new SignalingError('SESSION_ERR_NOT_FOUND', 'no such WHIP session, or it is not yours');
    }
    return { session, resource };
  };

  app.post<{ Querystring: { room?: string; mode?: string }; Body: string }>(
    WHIP_PATH,
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { room: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' }, mode: { type: 'string', maxLength: 16 } },
        },
      },
    },
    async (request, reply) => {
      const claims = await authenticate(request);
      authorize(claims, 'join', request.query.room);
      requireContentType(request, SDP);
      const offer = request.body;
      checkAudioSdp(offer, 1);
      const credentials = iceCredentials(offer);
      if (!credentials) throw new SignalingError('SIG_ERR_BAD_SDP', 'the offer has no ICE credentials');
      const { session } = admitSession(deps, claims, { room: request.query.room, mode: request.query.mode, transport: 'whip', evict: () => undefined });
      let answer: string;
      try {
        answer = await media.acceptOffer(session.id, offer);
      } catch (error) {
        sessions.close(session, 'negotiation_failed', 'error');
        throw error;
      }
      const resource: WhipResource = { offer, ufrag: credentials.ufrag, mid: /^a=mid:(\S+)\r?$/m.exec(offer)?.[1] ?? null, etag: newEtag() };
      resources.set(session.id, resource);
      // A session whose media never connects is ended (a WebSocket one ends when its socket closes).
      const connectTimer = setTimeout(() => {
        if (!session.closed && session.state === 'connecting') sessions.close(session, 'media_never_connected', 'error');
      }, config.reconnectWindowMs);
      connectTimer.unref();
      session.once('@close', () => {
        clearTimeout(connectTimer);
        resources.delete(session.id);
      });
      const links = iceServerLinks(config.iceServers);
      if (links.length > 0) void reply.header('link', links);
      return reply
        .code(201)
        .header('location', `${WHIP_PATH}/${session.id}`)
        .header('etag', resource.etag)
        .type(SDP)
        .send(answer);
    },
  );

  app.patch<{ Params: { id: string }; Body: string }>(`${WHIP_PATH}/:id`, { schema: { params: ID_PARAMS } }, async (request, reply) => {
    const claims = await authenticate(request);
    const { session, resource } = ownSession(claims, request.params.id);
    requireContentType(request, FRAGMENT);
    const ifMatch = request.headers['if-match']?.trim();
    if (ifMatch === undefined) throw new SignalingError('HTTP_ERR_PRECONDITION_REQUIRED', 'a PATCH needs If-Match: the ETag of the session, or * for an ICE restart');
    // RFC 9110's wildcard is a bare *; "*" (as RFC 9725's prose quotes it) is taken to mean the same.
    const wildcard = ifMatch === '*' || ifMatch === '"*"';
    if (!wildcard && ifMatch !== resource.etag) {
      throw new SignalingError('HTTP_ERR_PRECONDITION_FAILED', 'If-Match is not the current ETag of this session (after an ICE restart it changes)');
    }
    const fragment = parseSdpFragment(request.body);
    session.touch();
    if (fragment.ufrag !== null && fragment.ufrag !== resource.ufrag) {
      if (!wildcard) throw new SignalingError('HTTP_ERR_PRECONDITION_FAILED', 'new ICE credentials restart ICE: send them with If-Match: *');
      return restartIce(session, resource, fragment, reply);
    }
    for (const { candidate, mid } of fragment.candidates) {
      await media.addCandidate(session.id, { candidate, sdpMid: mid ?? resource.mid, sdpMLineIndex: 0, usernameFragment: resource.ufrag });
    }
    return reply.code(204).send();
  });

  async function restartIce(session: Session, resource: WhipResource, fragment: SdpFragment, reply: FastifyReply): Promise<FastifyReply> {
    const offer = withIceCredentials(resource.offer, fragment);
    const answer = await media.acceptOffer(session.id, offer);
    resource.offer = offer;
    resource.ufrag = fragment.ufrag!;
    resource.etag = newEtag();
    return reply.code(200).header('etag', resource.etag).type(FRAGMENT).send(iceFragmentOf(answer));
  }

  app.delete<{ Params: { id: string } }>(`${WHIP_PATH}/:id`, { schema: { params: ID_PARAMS } }, async (request, reply) => {
    const claims = await authenticate(request);
    const { session } = ownSession(claims, request.params.id);
    sessions.close(session, 'client_left');
    return reply.code(200).send();
  });
}

const ID_PARAMS = { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 128 } }, required: ['id'] } as const;

function requireContentType(request: FastifyRequest, expected: string): void {
  const type = String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== expected) throw new SignalingError('HTTP_ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Type must be ${expected}`);
}

/** RFC 9725 §4.6: one `Link: <url>; rel="ice-server"` per URL, TURN ones with their credentials. */
export function iceServerLinks(servers: readonly IceServerInfo[]): string[] {
  const links: string[] = [];
  for (const server of servers) {
    for (const url of server.urls) {
      const credentials = server.username && server.credential ? `; username="${server.username}"; credential="${server.credential}"; credential-type="password"` : '';
      links.push(`<${url}>; rel="ice-server"${credentials}`);
    }
  }
  return links;
}
