// Access tokens on HTTP requests: `Authorization: Bearer <jwt>`, verified for the request's address
// (the embedded default's dev mode serves loopback clients only). Routes throw what this throws; the
// HTTP error handler (http-limits.ts) answers with the code's status.
import type { FastifyRequest } from 'fastify';
import type { AccessClaims, AccessTokens } from './auth.ts';

/** The token of an `Authorization: Bearer` header; null when there is none. */
export function bearerToken(header: string | undefined): string | null {
  return /^Bearer +(\S+) *$/i.exec(header ?? '')?.[1] ?? null;
}

export function authenticateRequest(tokens: AccessTokens, request: FastifyRequest): Promise<AccessClaims> {
  return tokens.verify(bearerToken(request.headers.authorization), { remoteAddress: request.ip });
}
