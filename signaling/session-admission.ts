// Admitting a new session, the same for both signaling transports (WebSocket join, WHIP POST): the
// token must grant `join` (for the room asked for, if it is bound to one), the mode must be one this
// server offers, and the token's `publish`/`subscribe` grants fix what the session may do.
import { SESSION_MODES, type SessionMode } from './protocol.ts';
import { SignalingError } from './errors.ts';
import { authorize, hasGrant, type AccessClaims } from './auth.ts';
import type { SessionManager } from '../server/session-manager.ts';
import type { Session, SessionAccess } from '../server/session.ts';
import type { Config } from '../server/config.ts';

export interface AdmissionRequest {
  room: string | undefined;
  mode: string | undefined;
  transport: SessionAccess['transport'];
  /** Called when another connection takes the session over (WebSocket resume). */
  evict: () => void;
}

export function admitSession(
  deps: { config: Readonly<Config>; sessions: SessionManager },
  claims: AccessClaims,
  request: AdmissionRequest,
): { session: Session; resumeToken: string } {
  authorize(claims, 'join', request.room);
  // A room-bound token names the room when the request does not.
  const room = request.room ?? claims.room ?? undefined;
  const allowed = deps.config.voice.modes;
  // Likewise the token's `mode` claim when the request names no mode.
  const mode = (request.mode ?? claims.mode ?? deps.config.voice.defaultMode) as SessionMode;
  if (!SESSION_MODES.includes(mode) || !allowed.includes(mode)) {
    throw new SignalingError('SIG_ERR_UNSUPPORTED_MODE', `mode "${mode}" is not available; use one of ${allowed.join(', ')}`);
  }
  return deps.sessions.create(room, mode, request.evict, claims.identity, {
    transport: request.transport,
    publish: hasGrant(claims, 'publish'),
    // The server never offers to a WHIP client, so it cannot be given forwarded tracks.
    subscribe: request.transport === 'websocket' && hasGrant(claims, 'subscribe'),
  });
}
