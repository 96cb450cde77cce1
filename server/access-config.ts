// Who may use the server and how much: access-token keys and the development mode, and the abuse
// limits (sessions per identity, HTTP body size and rate, WebSocket message rate). Read through
// config.ts's EnvReader, so config.ts stays the only reader of process.env. Key material is checked
// at start (a bad key fails the start, naming the variable) and never echoed.
import type { EnvReader } from './config.ts';
import { parseEd25519Key } from '../signaling/auth-keys.ts';

/**
 * `off`: tokens must be signed with a configured key. `on` (AUTH_DEV_MODE=true): GET /v1/dev-token
 * hands out tokens to anyone; signed with the configured key, or the fixed dev key when none is set.
 * `loopback`: the embedded default (no AUTH_* at all): like `on`, but only for loopback clients.
 */
export type AuthDevMode = 'off' | 'loopback' | 'on';

export interface AuthConfig {
  /** HS256 shared secret (AUTH_JWT_SECRET, at least 32 characters). A secret: never logged. */
  jwtSecret: string | null;
  /** Ed25519 public key (PEM or JWK) verifying EdDSA tokens. */
  jwtPublicKey: string | null;
  /** Ed25519 private key (PEM or JWK), only to mint EdDSA tokens (npm run token, dev mode). A secret. */
  jwtPrivateKey: string | null;
  /** Required `iss` / `aud` claims when set. */
  issuer: string | null;
  audience: string | null;
  /** Slack on `exp` and `nbf` for clocks that disagree. */
  clockToleranceMs: number;
  /** Lifetime of the tokens this server mints (CLI, dev endpoint). */
  tokenTtlMs: number;
  devMode: AuthDevMode;
}

export interface LimitsConfig {
  /** Live sessions (reconnecting ones included) one identity may hold. */
  sessionsPerIdentity: number;
  /** Largest HTTP request body (Fastify bodyLimit). */
  httpBodyBytes: number;
  /** HTTP requests per client address within the window (health, metrics and the WebSocket upgrade excepted). */
  httpRate: { max: number; windowMs: number };
  /** Per-socket token bucket for WebSocket messages: sustained rate and burst. */
  signalRate: { perSecond: number; burst: number };
}

const MIN_SECRET_CHARS = 32;

export function readAuthConfig(r: EnvReader): AuthConfig {
  const jwtSecret = r.secretKey('AUTH_JWT_SECRET', (v) => (v.length >= MIN_SECRET_CHARS && v.length <= 4096) || `must be ${MIN_SECRET_CHARS} to 4096 characters`);
  const jwtPublicKey = r.secretKey('AUTH_JWT_PUBLIC_KEY', (v) => keyVerdict(v, 'public'));
  const jwtPrivateKey = r.secretKey('AUTH_JWT_PRIVATE_KEY', (v) => keyVerdict(v, 'private'));
  const explicitDev = r.optional('AUTH_DEV_MODE', (v) => /^(true|false|1|0|yes|no|on|off)$/i.test(v) || 'must be true or false');
  const anyKey = r.isSet('AUTH_JWT_SECRET') || r.isSet('AUTH_JWT_PUBLIC_KEY') || r.isSet('AUTH_JWT_PRIVATE_KEY');
  const devMode: AuthDevMode = explicitDev === null ? (anyKey ? 'off' : 'loopback') : /^(true|1|yes|on)$/i.test(explicitDev) ? 'on' : 'off';
  if (devMode === 'off' && !anyKey) {
    r.fail('AUTH_DEV_MODE', 'is off but no key is configured: set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY');
  }
  if (devMode === 'on' && r.isSet('AUTH_JWT_PUBLIC_KEY') && !r.isSet('AUTH_JWT_SECRET') && !r.isSet('AUTH_JWT_PRIVATE_KEY')) {
    r.fail('AUTH_DEV_MODE', 'needs a key to sign with: AUTH_JWT_SECRET or AUTH_JWT_PRIVATE_KEY besides AUTH_JWT_PUBLIC_KEY');
  }
  return {
    jwtSecret,
    jwtPublicKey,
    jwtPrivateKey,
    issuer: r.optional('AUTH_JWT_ISSUER', (v) => v.length <= 256 || 'must be at most 256 characters'),
    audience: r.optional('AUTH_JWT_AUDIENCE', (v) => v.length <= 256 || 'must be at most 256 characters'),
    clockToleranceMs: r.int('AUTH_CLOCK_TOLERANCE_MS', 5000, 0, 300_000),
    tokenTtlMs: r.int('AUTH_TOKEN_TTL_MS', 600_000, 10_000, 86_400_000),
    devMode,
  };
}

export function readLimitsConfig(r: EnvReader): LimitsConfig {
  return {
    sessionsPerIdentity: r.int('SESSIONS_PER_IDENTITY_MAX', 5, 1, 100_000),
    httpBodyBytes: r.int('HTTP_BODY_LIMIT_BYTES', 64 * 1024, 1024, 16 * 1024 * 1024),
    httpRate: {
      max: r.int('HTTP_RATE_LIMIT_MAX', 120, 1, 1_000_000),
      windowMs: r.int('HTTP_RATE_LIMIT_WINDOW_MS', 60_000, 100, 3_600_000),
    },
    signalRate: {
      perSecond: r.int('SIGNAL_RATE_PER_S', 20, 1, 10_000),
      burst: r.int('SIGNAL_BURST', 60, 1, 100_000),
    },
  };
}

function keyVerdict(text: string, kind: 'public' | 'private'): true | string {
  try {
    parseEd25519Key(text, kind);
    return true;
  } catch (error) {
    // parseEd25519Key's messages name the problem, never the key.
    return `must be an Ed25519 ${kind} key as PEM or JWK: ${(error as Error).message}`;
  }
}
