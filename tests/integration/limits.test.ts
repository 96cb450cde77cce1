// Every abuse limit has a clear error code and touches no one else: sessions per identity, SDP size
// and lines, one audio m-line, WebSocket message size, the per-socket message bucket, HTTP body size
// and the per-address HTTP rate limit.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, waitForSessionClosed, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { mintTestToken, TEST_AUTH_ENV } from '../helpers/auth.ts';
import { loadConfig } from '../../server/config.ts';
import { buildApp } from '../../server/app.ts';
import { MAX_SDP_CHARS } from '../../signaling/protocol.ts';
import { MAX_SDP_LINES } from '../../signaling/sdp-check.ts';
import type { ServerMessage } from '../../signaling/protocol.ts';

type ErrorMessage = Extract<ServerMessage, { type: 'error' }>;

const SDP = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx',
  'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
  'a=setup:actpass', 'a=mid:0', 'a=sendrecv', 'a=rtpmap:111 opus/48000/2', '',
].join('\r\n');

describe('limits on one server', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ SESSIONS_PER_IDENTITY_MAX: '2', HTTP_RATE_LIMIT_MAX: '3', SIGNAL_MAX_BAD_MESSAGES: '30' });
  });
  after(async () => {
    await server.close();
  });

  it('caps the sessions of one identity; other identities are not affected', async () => {
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => TestClient.open(server.wsUrl, { identity: 'carol' })));
    const other = await TestClient.open(server.wsUrl);
    try {
      await a!.join();
      await b!.join();
      const refusal = await c!.expectError({ type: 'join' });
      assert.equal(refusal.code, 'SESSION_ERR_IDENTITY_LIMIT');
      assert.equal(refusal.retryable, false);
      assert.equal(server.sessions.sessionsOf('carol'), 2);
      await other.join();
      // A leave frees a place.
      const closed = waitForSessionClosed(server, a!.sessionId);
      a!.send({ type: 'leave' });
      await closed;
      await c!.join();
      assert.equal(server.sessions.sessionsOf('carol'), 2);
    } finally {
      await Promise.all([a!.close(), b!.close(), c!.close(), other.close()]);
    }
  });

  it('refuses oversized SDP, too many SDP lines, a second m-line and oversized messages; the session and a neighbour go on', async () => {
    const client = await TestClient.open(server.wsUrl);
    const neighbour = await TestClient.connect(server.wsUrl);
    try {
      await client.join();
      const filler = (n: number) => Array.from({ length: n }, (_, i) => `a=x-filler:${i}`).join('\r\n') + '\r\n';
      const cases: [unknown, string][] = [
        [{ type: 'offer', sdp: SDP + `a=x-filler:${'x'.repeat(MAX_SDP_CHARS)}\r\n` }, 'SIG_ERR_SDP_TOO_LARGE'],
        [{ type: 'offer', sdp: SDP + filler(MAX_SDP_LINES) }, 'SIG_ERR_SDP_TOO_LARGE'],
        [{ type: 'offer', sdp: SDP + 'm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n' }, 'SIG_ERR_BAD_SDP'],
        [{ type: 'ping', id: 'x'.repeat(server.config.maxMessageBytes) }, 'SIG_ERR_TOO_LARGE'],
      ];
      for (const [message, code] of cases) {
        const error = await client.expectError(message);
        assert.equal(error.code, code, error.message);
      }
      // Still joined, still negotiable; the neighbour saw nothing.
      await client.negotiate();
      await client.waitFor((m) => m.type === 'state' && m.state === 'listening');
      assert.equal(neighbour.messages.filter((m) => m.type === 'error').length, 0);
      const pong = neighbour.next((m) => m.type === 'pong');
      neighbour.send({ type: 'ping', id: 1 });
      await pong;
    } finally {
      await client.close();
      await neighbour.close();
    }
  });

  it('rate-limits HTTP requests per address, not probes and not other addresses', async () => {
    const authorization = `Bearer ${await mintTestToken({ identity: 'henry' })}`;
    const history = (remoteAddress: string) => server.app.inject({ method: 'GET', url: '/v1/sessions/none/history', headers: { authorization }, remoteAddress });
    for (let i = 0; i < 3; i++) assert.equal((await history('192.0.2.10')).statusCode, 404);
    const limited = await history('192.0.2.10');
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json<ErrorMessage>().code, 'HTTP_ERR_RATE_LIMITED');
    assert.equal(limited.json<ErrorMessage>().retryable, true);
    assert.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After says when');
    assert.equal((await history('192.0.2.11')).statusCode, 404, 'another address is not limited');
    for (let i = 0; i < 5; i++) {
      assert.equal((await server.app.inject({ method: 'GET', url: '/healthz', remoteAddress: '192.0.2.10' })).statusCode, 200);
    }
  });
});

describe('WebSocket message bucket', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ SIGNAL_RATE_PER_S: '2', SIGNAL_BURST: '5', SIGNAL_MAX_BAD_MESSAGES: '40', MEDIA_WORKERS: '1' });
  });
  after(async () => {
    await server.close();
  });

  it('drops messages beyond the burst with SIG_ERR_RATE_LIMITED, refills, and leaves other sockets alone', async () => {
    const client = await TestClient.open(server.wsUrl);
    const neighbour = await TestClient.open(server.wsUrl);
    try {
      await client.join();
      const replies: ServerMessage[] = [];
      const ten = new Promise<void>((resolve) =>
        client.ws.on('message', (data) => {
          replies.push(JSON.parse(String(data)) as ServerMessage);
          if (replies.length === 10) resolve();
        }),
      );
      for (let i = 0; i < 10; i++) client.send({ type: 'ping', id: i });
      await ten;
      const pongs = replies.filter((m) => m.type === 'pong').length;
      const refused = replies.filter((m): m is ErrorMessage => m.type === 'error');
      // The join took one token; a refill of one more may have happened since.
      assert.ok(pongs >= 4 && pongs <= 5, `${pongs} pongs`);
      assert.equal(refused.length, 10 - pongs);
      assert.ok(refused.every((e) => e.code === 'SIG_ERR_RATE_LIMITED' && e.retryable));

      const pong = neighbour.next((m) => m.type === 'pong');
      neighbour.send({ type: 'ping', id: 'n' });
      await pong;
      // Tokens come back at 2 per second: a ping gets through again.
      await retryUntilPong(client, 5_000);
      assert.ok(server.sessions.get(client.sessionId), 'the session is intact');
    } finally {
      await client.close();
      await neighbour.close();
    }
  });

  it('disconnects a socket that keeps flooding, without touching other sessions', async () => {
    const flooder = await TestClient.open(server.wsUrl);
    const bystander = await TestClient.open(server.wsUrl);
    try {
      await bystander.join();
      for (let i = 0; i < 60; i++) flooder.send({ type: 'ping', id: i });
      await flooder.waitFor((m) => m.type === 'error' && m.code === 'SIG_ERR_ABUSE');
      assert.equal((await flooder.waitClose()).code, 1008);
      const pong = bystander.next((m) => m.type === 'pong');
      bystander.send({ type: 'ping' });
      await pong;
    } finally {
      await flooder.close();
      await bystander.close();
    }
  });
});

describe('HTTP body size', () => {
  it('refuses a body above HTTP_BODY_LIMIT_BYTES with HTTP_ERR_BODY_TOO_LARGE', async () => {
    const config = loadConfig({ ...TEST_AUTH_ENV, LOG_LEVEL: 'silent', MEDIA_WORKERS: '1', RTC_HOST_ADDRESSES: '127.0.0.1', HTTP_BODY_LIMIT_BYTES: '2048' });
    const server = await buildApp(config);
    try {
      // Any route with a body: the limit is Fastify's, for every route (the WHIP API's SDP bodies too).
      server.app.post('/test/echo-length', async (request) => ({ bytes: String(request.body).length }));
      const post = (bytes: number) =>
        server.app.inject({ method: 'POST', url: '/test/echo-length', headers: { 'content-type': 'text/plain' }, payload: 'x'.repeat(bytes) });
      assert.deepEqual((await post(2000)).json(), { bytes: 2000 });
      const refused = await post(4000);
      assert.equal(refused.statusCode, 413);
      assert.equal(refused.json<ErrorMessage>().code, 'HTTP_ERR_BODY_TOO_LARGE');
    } finally {
      await server.close();
    }
  });
});

/** Pings until one is answered: the bucket refills with time, which no event announces. */
async function retryUntilPong(client: TestClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let id = 100; Date.now() < deadline; id++) {
    const reply = client.next((m) => (m.type === 'pong' && m.id === id) || m.type === 'error', timeoutMs);
    client.send({ type: 'ping', id });
    if ((await reply).type === 'pong') return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error('no pong after the bucket should have refilled');
}
