// Access tokens: JWTs saying who a client is (`sub`), which room it may be in (`room`, optional), the
// session mode it gets when it asks for none (`mode`, optional) and
// what it may do (`grants`), valid from `nbf` to `exp` (required). HS256 with a shared secret by
// default, EdDSA (Ed25519) with a public key. Each key verifies its own algorithm only, chosen from
// the token header before anything else is trusted, so `alg: none` and algorithm confusion (a public
// key used as an HMAC secret) are refused. Every refusal has its own stable code (errors.ts).
import { SignJWT, jwtVerify, type JWTPayload } from 'jose';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { SignalingError, type ErrorCode } from './errors.ts';
import { parseEd25519Key } from './auth-keys.ts';
import { SESSION_MODES, type SessionMode } from './protocol.ts';
import type { AuthConfig, AuthDevMode } from '../server/access-config.ts';

export const GRANTS = ['join', 'publish', 'subscribe', 'agent', 'sip', 'admin'] as const;
export type Grant = (typeof GRANTS)[number];
/** A participant's grants: what minted tokens carry unless told otherwise. */
export const DEFAULT_GRANTS: readonly Grant[] = ['join', 'publish', 'subscribe'];

/**
 * The fixed development key (HS256), used in dev mode when no key is configured. Public on purpose
 * (it is in the README): a server using it must only ever serve development.
 */
export const DEV_AUTH_SECRET = 'voice-session-server-development-key-not-a-secret';

const IDENTITY = /^[^\s\p{Cc}]{1,128}$/u;
const ROOM = /^[A-Za-z0-9_.-]{1,64}$/;

export interface AccessClaims {
  /** The `sub` claim. */
  identity: string;
  /** The room the token is bound to; null = any room. */
  room: string | null;
  /** The session mode used when the join or WHIP request names none (`mode` claim); null = the server's default. */
  mode: SessionMode | null;
  grants: Grant[];
  /** From `exp`, ms since the epoch. */
  expiresAt: number;
}

export interface MintRequest {
  identity: string;
  room?: string | null;
  /** The session mode the token's sessions get unless the request names one. */
  mode?: SessionMode | null;
  grants?: readonly Grant[];
  /** Defaults to the configured lifetime (AUTH_TOKEN_TTL_MS, 10 minutes). */
  ttlMs?: number;
}

export interface AccessTokensOptions {
  /** The clock `exp` and `nbf` are checked against (ms since the epoch). */
  now: () => number;
}
export const DEFAULT_ACCESS_TOKENS_OPTIONS: AccessTokensOptions = { now: () => Date.now() };

type Algorithm = 'HS256' | 'EdDSA';
interface PinnedKey {
  alg: Algorithm;
  key: KeyObject;
}

export class AccessTokens {
  readonly devMode: AuthDevMode;
  readonly #config: Readonly<AuthConfig>;
  readonly #options: AccessTokensOptions;
  /** Verification keys by the header `alg` they accept (EdDSA also under its RFC 9864 name). */
  readonly #verifiers = new Map<string, PinnedKey>();
  readonly #signer: PinnedKey | null;

  constructor(config: Readonly<AuthConfig>, options: Partial<AccessTokensOptions> = {}) {
    this.#config = config;
    this.#options = { ...DEFAULT_ACCESS_TOKENS_OPTIONS, ...options };
    this.devMode = config.devMode;
    const anyKey = config.jwtSecret || config.jwtPublicKey || config.jwtPrivateKey;
    const secret = config.jwtSecret ?? (anyKey || config.devMode === 'off' ? null : DEV_AUTH_SECRET);
    const hmac = secret ? { alg: 'HS256' as const, key: createSecretKey(Buffer.from(secret, 'utf8')) } : null;
    const privateKey = config.jwtPrivateKey ? parseEd25519Key(config.jwtPrivateKey, 'private') : null;
    const publicKey = config.jwtPublicKey ? parseEd25519Key(config.jwtPublicKey, 'public') : privateKey ? createPublicKey(privateKey) : null;
    if (hmac) this.#verifiers.set('HS256', hmac);
    if (publicKey) {
      this.#verifiers.set('EdDSA', { alg: 'EdDSA', key: publicKey });
      this.#verifiers.set('Ed25519', { alg: 'EdDSA', key: publicKey });
    }
    this.#signer = hmac ?? (privateKey ? { alg: 'EdDSA', key: privateKey } : null);
  }

  /** Whether this server holds a key to sign with (a secret or a private key). */
  get canMint(): boolean {
    return this.#signer !== null;
  }

  get defaultTtlMs(): number {
    return this.#config.tokenTtlMs;
  }

  /**
   * Verifies a token presented by a client at `remoteAddress`; resolves with its claims or rejects
   * with a SignalingError whose code says what is wrong.
   */
  async verify(token: string | null | undefined, from: { remoteAddress?: string } = {}): Promise<AccessClaims> {
    if (this.devMode === 'loopback' && !isLoopbackAddress(from.remoteAddress)) {
      throw refusal('AUTH_ERR_DEV_LOOPBACK_ONLY', 'this server runs the embedded development default and serves loopback clients only; configure AUTH_JWT_SECRET');
    }
    if (!token) throw refusal('AUTH_ERR_MISSING', 'an access token is required (Authorization: Bearer, or "token" in join/resume)');
    const alg = headerAlgorithm(token);
    const pinned = this.#verifiers.get(alg);
    if (!pinned) throw refusal('AUTH_ERR_WRONG_ALG', `the token's algorithm is not accepted (accepted: ${[...this.#verifiers.keys()].join(', ')})`);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, pinned.key, {
        algorithms: [alg], // one algorithm per key: the one this key was configured for
        requiredClaims: ['exp', 'sub'],
        clockTolerance: this.#config.clockToleranceMs / 1000,
        currentDate: new Date(this.#options.now()),
        ...(this.#config.issuer ? { issuer: this.#config.issuer } : {}),
        ...(this.#config.audience ? { audience: this.#config.audience } : {}),
      }));
    } catch (error) {
      throw joseRefusal(error);
    }
    return claimsOf(payload);
  }

  /** Signs a token with this server's key (HS256 secret, else the Ed25519 private key). */
  async mint(request: MintRequest): Promise<string> {
    const signer = this.#signer;
    if (!signer) throw new Error('no signing key: set AUTH_JWT_SECRET or AUTH_JWT_PRIVATE_KEY');
    if (!IDENTITY.test(request.identity)) throw new Error('identity must be 1-128 characters without spaces or control characters');
    if (request.room != null && !ROOM.test(request.room)) throw new Error('room must be 1-64 characters of A-Z a-z 0-9 _ . -');
    const nowS = Math.floor(this.#options.now() / 1000);
    const ttlS = Math.max(1, Math.round((request.ttlMs ?? this.#config.tokenTtlMs) / 1000));
    if (request.mode != null && !SESSION_MODES.includes(request.mode)) throw new Error(`mode must be one of ${SESSION_MODES.join(', ')}`);
    const claims = { ...(request.room != null ? { room: request.room } : {}), ...(request.mode != null ? { mode: request.mode } : {}) };
    const jwt = new SignJWT({ ...claims, grants: [...(request.grants ?? DEFAULT_GRANTS)] })
      .setProtectedHeader({ alg: signer.alg, typ: 'JWT' })
      .setSubject(request.identity)
      .setIssuedAt(nowS)
      .setExpirationTime(nowS + ttlS);
    if (this.#config.issuer) jwt.setIssuer(this.#config.issuer);
    if (this.#config.audience) jwt.setAudience(this.#config.audience);
    return jwt.sign(signer.key);
  }
}

/** Throws unless the token grants `grant` (`admin` grants everything) for `room` (a bound token: only its room). */
export function authorize(claims: AccessClaims, grant: Grant, room?: string | null): void {
  if (!hasGrant(claims, grant)) throw refusal('AUTH_ERR_MISSING_GRANT', `the token lacks the "${grant}" grant`);
  if (claims.room !== null && room != null && room !== claims.room) {
    throw refusal('AUTH_ERR_WRONG_ROOM', `the token is for room "${claims.room}", not "${room.slice(0, 64)}"`);
  }
}

export function hasGrant(claims: AccessClaims, grant: Grant): boolean {
  return claims.grants.includes(grant) || claims.grants.includes('admin');
}

/**
 * The token's holder may act on (resume, read) a session: an admin always; otherwise the session's
 * own identity, with a room-bound token only in that room.
 */
export function mayActFor(claims: AccessClaims, session: { identity?: string | null; room: string }): boolean {
  if (claims.grants.includes('admin')) return true;
  return session.identity != null && claims.identity === session.identity && (claims.room === null || claims.room === session.room);
}

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}

function refusal(code: ErrorCode, message: string): SignalingError {
  return new SignalingError(code, message);
}

/** The header's `alg`, read before anything else is trusted, to pick the one key that may verify it. */
function headerAlgorithm(token: string): string {
  const parts = token.split('.');
  if (parts.length !== 3) throw refusal('AUTH_ERR_MALFORMED', 'the token is not a JWT (three dot-separated parts)');
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
  } catch {
    throw refusal('AUTH_ERR_MALFORMED', 'the token header is not base64url JSON');
  }
  const alg = (header as { alg?: unknown } | null)?.alg;
  if (typeof alg !== 'string') throw refusal('AUTH_ERR_MALFORMED', 'the token header has no "alg"');
  return alg;
}

function joseRefusal(error: unknown): SignalingError {
  const { code, claim } = error as { code?: string; claim?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return refusal('AUTH_ERR_EXPIRED', 'the token has expired');
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return refusal('AUTH_ERR_BAD_SIGNATURE', 'the token signature does not verify');
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return refusal('AUTH_ERR_WRONG_ALG', "the token's algorithm is not accepted");
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (claim === 'nbf') return refusal('AUTH_ERR_NOT_YET_VALID', 'the token is not valid yet (nbf)');
      return refusal('AUTH_ERR_INVALID_CLAIMS', `the token's "${claim ?? '?'}" claim is missing or wrong`);
    default:
      return refusal('AUTH_ERR_MALFORMED', 'the token is not a well-formed JWT');
  }
}

function claimsOf(payload: JWTPayload): AccessClaims {
  const { sub, room, mode, grants, exp } = payload as JWTPayload & { room?: unknown; mode?: unknown; grants?: unknown };
  if (typeof sub !== 'string' || !IDENTITY.test(sub)) throw refusal('AUTH_ERR_INVALID_CLAIMS', '"sub" must be 1-128 characters without spaces or control characters');
  if (room !== undefined && (typeof room !== 'string' || !ROOM.test(room))) throw refusal('AUTH_ERR_INVALID_CLAIMS', '"room" must be a room name');
  if (mode !== undefined && !(SESSION_MODES as readonly unknown[]).includes(mode)) throw refusal('AUTH_ERR_INVALID_CLAIMS', `"mode" must be one of ${SESSION_MODES.join(', ')}`);
  if (grants !== undefined && (!Array.isArray(grants) || grants.some((g) => typeof g !== 'string'))) {
    throw refusal('AUTH_ERR_INVALID_CLAIMS', '"grants" must be an array of strings');
  }
  // Grants this server does not know are ignored: newer issuers may add some.
  const known = ((grants ?? []) as string[]).filter((g): g is Grant => (GRANTS as readonly string[]).includes(g));
  return { identity: sub, room: room ?? null, mode: (mode as SessionMode | undefined) ?? null, grants: [...new Set(known)], expiresAt: (exp ?? 0) * 1000 };
}
