// The HTTP side of the signaling edge's limits and errors: a per-address rate limit on every route
// (@fastify/rate-limit), and one error handler that answers our own errors (SignalingError, the
// rate limit, an oversized body) as `{ type: 'error', code, message, retryable }` with the code's
// status. Anything else goes on to Fastify's default handler.
import type { FastifyError, FastifyInstance } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { ERRORS, errorMessage, isErrorCode, SignalingError } from './errors.ts';
import type { LimitsConfig } from '../server/access-config.ts';

/**
 * Not rate limited: probes and scrapes (an orchestrator must always get an answer), and the
 * WebSocket upgrade, which has its own limits (join timeout, sessions per identity and in total,
 * the per-socket message bucket).
 */
const UNLIMITED_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/v1/signal']);

/** Register before any route: the rate limit applies to routes declared after it. */
export async function registerHttpLimits(app: FastifyInstance, limits: Readonly<LimitsConfig>): Promise<void> {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    // Our errors carry their code: SignalingError, and the media layer's MediaError (MEDIA_ERR_*, SIG_ERR_GLARE, ...).
    if (typeof error.code === 'string' && isErrorCode(error.code)) {
      const status = ERRORS[error.code].status;
      // RFC 6750: a 401 tells the client how to authenticate.
      if (status === 401) reply.header('www-authenticate', `Bearer realm="voice-session", error="${error.code === 'AUTH_ERR_MISSING' ? 'invalid_request' : 'invalid_token'}"`);
      return reply.code(status).send(errorMessage(error.code, error.message));
    }
    if (error.validation) {
      return reply.code(400).send(errorMessage('SIG_ERR_BAD_MESSAGE', `${error.validationContext ?? 'request'}${error.message.replace(/^(body|querystring|params)/, '')}`));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      return reply.code(400).send(errorMessage('SIG_ERR_BAD_JSON', 'the body is not valid JSON'));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send(errorMessage('HTTP_ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Type "${String(request.headers['content-type'] ?? '').slice(0, 60)}" is not accepted here`));
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send(errorMessage('HTTP_ERR_BODY_TOO_LARGE', `the request body exceeds ${limits.httpBodyBytes} bytes`));
    }
    if (error.statusCode === undefined || error.statusCode >= 500) {
      request.log.error({ err: error.message }, 'request failed');
      return reply.code(500).send(errorMessage('SERVER_ERR_INTERNAL', 'internal error'));
    }
    throw error; // Fastify's default handler (its own 4xx errors)
  });
  await app.register(rateLimit, {
    global: true,
    max: limits.httpRate.max,
    timeWindow: limits.httpRate.windowMs,
    allowList: (request) => UNLIMITED_ROUTES.has(request.routeOptions.url ?? ''),
    errorResponseBuilder: (_request, context) =>
      new SignalingError('HTTP_ERR_RATE_LIMITED', `more than ${context.max} requests from this address; retry in ${context.after}`),
  });
}
