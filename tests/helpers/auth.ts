// Access tokens for tests and the benchmark: every server the helpers start verifies HS256 tokens
// signed with TEST_AUTH_SECRET, and the test clients mint their own with it.
import { randomBytes } from 'node:crypto';
import { AccessTokens, type MintRequest } from '../../signaling/auth.ts';
import type { AuthConfig } from '../../server/access-config.ts';

export const TEST_AUTH_SECRET = 'test-only-secret-of-the-voice-session-server-suite';

/** What startServer/startServerProcess put in the environment (a test may override it). */
export const TEST_AUTH_ENV = { AUTH_JWT_SECRET: TEST_AUTH_SECRET } as const;

export const TEST_AUTH_CONFIG: Readonly<AuthConfig> = {
  jwtSecret: TEST_AUTH_SECRET,
  jwtPublicKey: null,
  jwtPrivateKey: null,
  issuer: null,
  audience: null,
  clockToleranceMs: 5000,
  tokenTtlMs: 600_000,
  devMode: 'off',
};

const minter = new AccessTokens(TEST_AUTH_CONFIG);

/** A participant token (join, publish, subscribe unless `grants` says otherwise) signed with the test secret. */
export function mintTestToken(request: MintRequest): Promise<string> {
  return minter.mint(request);
}

/** A fresh identity, so that clients never share the per-identity session limit by accident. */
export function testIdentity(prefix = 'test'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** The embedded default, what `npm start` runs: no key, dev mode for loopback clients (the demo page's dev tokens). */
export const EMBEDDED_AUTH_ENV = { AUTH_JWT_SECRET: '' } as const;
