// Every error the signaling edge can report: a stable code, whether retrying can help, and the
// HTTP status where one applies. docs/protocol.md lists them for client developers.
export const ERRORS = {
  SIG_ERR_BAD_JSON: { retryable: false, status: 400 },
  SIG_ERR_BAD_MESSAGE: { retryable: false, status: 400 },
  SIG_ERR_UNKNOWN_TYPE: { retryable: false, status: 400 },
  SIG_ERR_TOO_LARGE: { retryable: false, status: 413 },
  SIG_ERR_OUT_OF_ORDER: { retryable: false, status: 409 },
  SIG_ERR_GLARE: { retryable: true, status: 409 },
  SIG_ERR_NOT_JOINED: { retryable: false, status: 409 },
  SIG_ERR_ALREADY_JOINED: { retryable: false, status: 409 },
  SIG_ERR_BAD_SDP: { retryable: false, status: 400 },
  SIG_ERR_NO_OPUS: { retryable: false, status: 400 },
  SIG_ERR_UNSUPPORTED_MODE: { retryable: false, status: 400 },
  SIG_ERR_ABUSE: { retryable: false, status: 429 },
  SIG_ERR_JOIN_TIMEOUT: { retryable: true, status: 408 },
  /** Messages on one socket above its token bucket (SIGNAL_RATE_PER_S, SIGNAL_BURST). */
  SIG_ERR_RATE_LIMITED: { retryable: true, status: 429 },
  /** An SDP above MAX_SDP_CHARS characters or MAX_SDP_LINES lines. */
  SIG_ERR_SDP_TOO_LARGE: { retryable: false, status: 413 },
  // Access tokens (signaling/auth.ts): 401 = who you are is not established, 403 = not allowed.
  AUTH_ERR_MISSING: { retryable: false, status: 401 },
  AUTH_ERR_MALFORMED: { retryable: false, status: 401 },
  AUTH_ERR_EXPIRED: { retryable: false, status: 401 },
  AUTH_ERR_NOT_YET_VALID: { retryable: false, status: 401 },
  AUTH_ERR_BAD_SIGNATURE: { retryable: false, status: 401 },
  AUTH_ERR_WRONG_ALG: { retryable: false, status: 401 },
  AUTH_ERR_INVALID_CLAIMS: { retryable: false, status: 401 },
  AUTH_ERR_WRONG_ROOM: { retryable: false, status: 403 },
  AUTH_ERR_MISSING_GRANT: { retryable: false, status: 403 },
  /** The embedded default's dev mode serves loopback clients only. */
  AUTH_ERR_DEV_LOOPBACK_ONLY: { retryable: false, status: 403 },
  HTTP_ERR_RATE_LIMITED: { retryable: true, status: 429 },
  HTTP_ERR_BODY_TOO_LARGE: { retryable: false, status: 413 },
  /** A body whose Content-Type the route does not take (WHIP: application/sdp, application/trickle-ice-sdpfrag). */
  HTTP_ERR_UNSUPPORTED_MEDIA_TYPE: { retryable: false, status: 415 },
  /** WHIP PATCH without If-Match (RFC 9725). */
  HTTP_ERR_PRECONDITION_REQUIRED: { retryable: false, status: 428 },
  /** WHIP PATCH whose If-Match is not the resource's current ETag: fetch state anew (an ICE restart needs If-Match: *). */
  HTTP_ERR_PRECONDITION_FAILED: { retryable: false, status: 412 },
  SESSION_ERR_CAPACITY: { retryable: true, status: 503 },
  /** The room has ROOM_MAX_PARTICIPANTS participants. */
  ROOM_ERR_FULL: { retryable: true, status: 503 },
  /** A subscription names a participant who is not (or no longer) in the room. */
  ROOM_ERR_UNKNOWN_PARTICIPANT: { retryable: false, status: 404 },
  SESSION_ERR_RESUME_REFUSED: { retryable: false, status: 401 },
  /** The token's identity already has SESSIONS_PER_IDENTITY_MAX live sessions. */
  SESSION_ERR_IDENTITY_LIMIT: { retryable: false, status: 429 },
  SESSION_ERR_NOT_FOUND: { retryable: false, status: 404 },
  /** `say` on a session without an agent (echo mode). */
  SESSION_ERR_NO_AGENT: { retryable: false, status: 409 },
  /** More than 4 event streams (GET /v1/sessions/:id/events) open on one session. */
  SESSION_ERR_TOO_MANY_STREAMS: { retryable: true, status: 429 },
  SESSION_ERR_IDLE_TIMEOUT: { retryable: true, status: 408 },
  SESSION_ERR_MEDIA_LOST: { retryable: true, status: 410 },
  SESSION_ERR_MAX_DURATION: { retryable: false, status: 408 },
  MEDIA_ERR_NEGOTIATION: { retryable: false, status: 400 },
  MEDIA_ERR_NO_PORTS: { retryable: true, status: 503 },
  MEDIA_ERR_WORKER_DIED: { retryable: true, status: 503 },
  MEDIA_ERR_TIMEOUT: { retryable: true, status: 504 },
  PROVIDER_ERR_STT: { retryable: true, status: 502 },
  PROVIDER_ERR_AGENT: { retryable: true, status: 502 },
  PROVIDER_ERR_TTS: { retryable: true, status: 502 },
  PROVIDER_ERR_S2S: { retryable: true, status: 502 },
  SERVER_ERR_DRAINING: { retryable: true, status: 503 },
  SERVER_ERR_SHUTDOWN: { retryable: true, status: 503 },
  SERVER_ERR_INTERNAL: { retryable: true, status: 500 },
} as const satisfies Record<string, { retryable: boolean; status: number }>;

export type ErrorCode = keyof typeof ERRORS;

export class SignalingError extends Error {
  override name = 'SignalingError';
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
  get retryable(): boolean {
    return ERRORS[this.code].retryable;
  }
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

export function errorMessage(code: ErrorCode, message: string) {
  return { type: 'error' as const, code, message, retryable: ERRORS[code].retryable };
}
