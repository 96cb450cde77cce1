// Nobody gets in without a valid access token: joins refused with a distinct code per fault, resume
// and history only for the session's identity (or an admin), and the development mode that serves
// the demo page a token, for loopback clients only on the embedded default.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT, base64url } from 'jose';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { startServerProcess } from '../helpers/server-process.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { mintTestToken, TEST_AUTH_CONFIG, TEST_AUTH_SECRET } from '../helpers/auth.ts';
import { AccessTokens } from '../../signaling/auth.ts';
import type { ServerMessage } from '../../signaling/protocol.ts';

type ErrorMessage = Extract<ServerMessage, { type: 'error' }>;
const nowS = () => Math.floor(Date.now() / 1000);
const secret = (text: string) => new TextEncoder().encode(text);

describe('access tokens on the signaling socket', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ECHO_END_SILENCE_MS: '400', SESSION_RECONNECT_WINDOW_MS: '20000' });
  });
  after(async () => {
    await server.close();
  });

  it('refuses joins with a missing, malformed, alg-none, badly signed, expired, not-yet-valid, wrong-room or grantless token, each with its own code', async () => {
    const payload = base64url.encode(JSON.stringify({ sub: 'mallory', exp: nowS() + 600, grants: ['admin'] }));
    const cases: [string | undefined, Record<string, unknown>, string][] = [
      [undefined, {}, 'AUTH_ERR_MISSING'],
      ['not-a-jwt', {}, 'AUTH_ERR_MALFORMED'],
      [`${base64url.encode('{"alg":"none","typ":"JWT"}')}.${payload}.`, {}, 'AUTH_ERR_WRONG_ALG'],
      [await new SignJWT({ grants: ['join'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('eve').setExpirationTime('5m').sign(secret('a-guessed-secret-0123456789abcdefgh')), {}, 'AUTH_ERR_BAD_SIGNATURE'],
      [await new AccessTokens(TEST_AUTH_CONFIG, { now: () => Date.now() - 3_600_000 }).mint({ identity: 'late' }), {}, 'AUTH_ERR_EXPIRED'],
      [await new SignJWT({ grants: ['join'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('early').setNotBefore(nowS() + 300).setExpirationTime(nowS() + 600).sign(secret(TEST_AUTH_SECRET)), {}, 'AUTH_ERR_NOT_YET_VALID'],
      [await mintTestToken({ identity: 'alice', room: 'kitchen' }), { room: 'garage' }, 'AUTH_ERR_WRONG_ROOM'],
      [await mintTestToken({ identity: 'alice', grants: ['subscribe'] }), {}, 'AUTH_ERR_MISSING_GRANT'],
    ];
    const client = await TestClient.open(server.wsUrl, { token: null });
    try {
      const codes: string[] = [];
      for (const [token, join, code] of cases) {
        const error = await client.expectError({ type: 'join', ...join, ...(token ? { token } : {}) });
        assert.equal(error.code, code, `${code}: ${error.message}`);
        assert.equal(error.retryable, false);
        codes.push(error.code);
      }
      assert.equal(new Set(codes).size, cases.length, 'every fault has its own code');
      assert.equal(server.sessions.size, 0, 'no session was created');
      // The same socket joins once it presents a valid token.
      const joined = client.next((m) => m.type === 'joined');
      client.send({ type: 'join', token: await mintTestToken({ identity: 'alice' }) });
      const session = server.sessions.get(((await joined) as { sessionId: string }).sessionId);
      assert.equal(session?.identity, 'alice');
    } finally {
      await client.close();
    }
  });

  it('takes the token from the upgrade request too, and a room-bound token names the room', async () => {
    const expired = await TestClient.open(server.wsUrl, { token: await new AccessTokens(TEST_AUTH_CONFIG, { now: () => Date.now() - 3_600_000 }).mint({ identity: 'x' }) });
    const bound = await TestClient.open(server.wsUrl, { identity: 'bob', token: () => mintTestToken({ identity: 'bob', room: 'kitchen' }) });
    try {
      assert.equal((await expired.expectError({ type: 'join' })).code, 'AUTH_ERR_EXPIRED', 'the Authorization header is checked');
      const joined = await bound.join();
      assert.equal(joined.room, 'kitchen');
      assert.equal(server.sessions.get(joined.sessionId)?.identity, 'bob');
    } finally {
      await expired.close();
      await bound.close();
    }
  });

  it('resumes only with the resume token and an access token of the same identity, or an admin one', async () => {
    const alice = await TestClient.connect(server.wsUrl, {}, { identity: 'alice' });
    const mallory = await TestClient.open(server.wsUrl, { identity: 'mallory' });
    const anonymous = await TestClient.open(server.wsUrl, { token: null });
    const ops = await TestClient.open(server.wsUrl, { identity: 'ops', token: () => mintTestToken({ identity: 'ops', grants: ['admin'] }) });
    try {
      const { sessionId } = alice;
      const session = server.sessions.get(sessionId)!;
      alice.dropSocket();
      await new Promise<void>((resolve) => session.on('statechange', (state) => state === 'reconnecting' && resolve()));

      const stolen = await mallory.expectError({ type: 'resume', sessionId, resumeToken: alice.resumeToken });
      const unknown = await mallory.expectError({ type: 'resume', sessionId: 'A'.repeat(22), resumeToken: alice.resumeToken });
      assert.equal(stolen.code, 'SESSION_ERR_RESUME_REFUSED', 'the right resume token is not enough for another identity');
      assert.deepEqual(stolen, unknown, 'indistinguishable from an unknown session');
      assert.equal((await anonymous.expectError({ type: 'resume', sessionId, resumeToken: alice.resumeToken })).code, 'AUTH_ERR_MISSING');
      assert.equal((await ops.expectError({ type: 'resume', sessionId, resumeToken: 'x'.repeat(43) })).code, 'SESSION_ERR_RESUME_REFUSED', 'an admin needs the resume token too');
      assert.equal(session.state, 'reconnecting', 'refusals do not touch the session');

      const byAdmin = ops.next<Extract<ServerMessage, { type: 'resumed' }>>((m) => m.type === 'resumed');
      ops.send({ type: 'resume', sessionId, resumeToken: alice.resumeToken });
      const resumed = await byAdmin;
      assert.equal(resumed.sessionId, sessionId);
      // Alice takes her session back with the rotated token.
      const back = await alice.resume('keep', { token: resumed.resumeToken });
      assert.equal(back.sessionId, sessionId);
      assert.equal((await ops.waitClose()).code, 4001);
    } finally {
      await Promise.all([alice.close(), mallory.close(), anonymous.close(), ops.close()]);
    }
  });

  it('serves history to the same identity or an admin; 404 to others, 401 without a valid token', async () => {
    const client = await TestClient.connect(server.wsUrl, { room: 'den' }, { identity: 'dora' });
    const sessionId = client.sessionId;
    await client.close();
    await server.sessions.flush();
    const get = (token: string | null) =>
      fetch(`${server.url}/v1/sessions/${sessionId}/history`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    const own = await get(await mintTestToken({ identity: 'dora' }));
    assert.equal(own.status, 200);
    const body = (await own.json()) as { sessionId: string; identity: string; room: string };
    assert.deepEqual([body.sessionId, body.identity, body.room], [sessionId, 'dora', 'den']);
    assert.equal((await get(await mintTestToken({ identity: 'ops', grants: ['admin'] }))).status, 200, 'an admin reads any history');

    for (const token of [await mintTestToken({ identity: 'mallory' }), await mintTestToken({ identity: 'dora', room: 'elsewhere' })]) {
      const other = await get(token);
      assert.equal(other.status, 404);
      assert.equal(((await other.json()) as ErrorMessage).code, 'SESSION_ERR_NOT_FOUND');
    }
    const none = await get(null);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer /);
    assert.equal(((await none.json()) as ErrorMessage).code, 'AUTH_ERR_MISSING');
    const bad = await get(client.resumeToken); // the resume token is no access token
    assert.equal(bad.status, 401);
    assert.equal(((await bad.json()) as ErrorMessage).code, 'AUTH_ERR_MALFORMED');
  });

  it('has no dev-token endpoint once a key is configured', async () => {
    assert.equal((await fetch(`${server.url}/v1/dev-token`)).status, 404);
  });
});

describe('development mode', () => {
  it('is announced with a warning at start, and only when on', async () => {
    const devMessage = (entry: Record<string, unknown>) => String(entry.msg ?? '').startsWith('AUTH DEVELOPMENT MODE');
    for (const [env, expected] of [[{ AUTH_JWT_SECRET: '' }, 'loopback'], [{}, null]] as const) {
      const server = await startServerProcess({ ...env, MEDIA_WORKERS: '1' });
      try {
        // The announcement is logged while the app is built, before "ready": all logs are in by now.
        const announcement = server.logs.find(devMessage);
        if (expected === null) {
          assert.equal(announcement, undefined, 'no announcement with a key configured');
        } else {
          assert.equal(announcement?.level, 40, 'at warn level');
          assert.equal(announcement?.authDevMode, expected);
          assert.match(String(announcement?.msg), /loopback clients only/);
        }
      } finally {
        server.kill();
        await server.exited;
      }
    }
  });

  it('on the embedded default, hands out tokens to loopback clients only and accepts them from loopback only', async () => {
    const server = await startServer({ AUTH_JWT_SECRET: '', MEDIA_WORKERS: '1' }); // no AUTH_* at all
    try {
      const remote = await server.app.inject({ method: 'GET', url: '/v1/dev-token', remoteAddress: '192.0.2.7' });
      assert.equal(remote.statusCode, 403);
      assert.equal(remote.json<ErrorMessage>().code, 'AUTH_ERR_DEV_LOOPBACK_ONLY');

      const local = await fetch(`${server.url}/v1/dev-token?identity=demo-1&room=lobby`);
      assert.equal(local.status, 200);
      assert.equal(local.headers.get('cache-control'), 'no-store');
      const { token, identity, grants } = (await local.json()) as { token: string; identity: string; grants: string[] };
      assert.equal(identity, 'demo-1');
      assert.deepEqual(grants, ['join', 'publish', 'subscribe']);

      // The dev token works from loopback (a join), and not from elsewhere (an HTTP API).
      const client = await TestClient.open(server.wsUrl, { token: null });
      try {
        const joined = client.next((m) => m.type === 'joined');
        client.send({ type: 'join', token });
        assert.equal(((await joined) as { room: string }).room, 'lobby');
      } finally {
        await client.close();
      }
      const history = await server.app.inject({ method: 'GET', url: '/v1/sessions/x/history', headers: { authorization: `Bearer ${token}` }, remoteAddress: '192.0.2.7' });
      assert.equal(history.statusCode, 403);
      assert.equal(history.json<ErrorMessage>().code, 'AUTH_ERR_DEV_LOOPBACK_ONLY');
      const asked = (await (await fetch(`${server.url}/v1/dev-token?identity=x&grants=admin`)).json()) as { token: string };
      const claims = await server.tokens.verify(asked.token, { remoteAddress: '127.0.0.1' });
      assert.deepEqual(claims.grants, ['join', 'publish', 'subscribe'], 'grants cannot be asked for');
    } finally {
      await server.close();
    }
  });

  it('explicitly on, hands out tokens signed with the configured key to anyone', async () => {
    const server = await startServer({ AUTH_DEV_MODE: 'true', MEDIA_WORKERS: '1' });
    try {
      const remote = await server.app.inject({ method: 'GET', url: '/v1/dev-token', remoteAddress: '192.0.2.7' });
      assert.equal(remote.statusCode, 200);
      const { token, identity } = remote.json<{ token: string; identity: string }>();
      const claims = await new AccessTokens(TEST_AUTH_CONFIG).verify(token);
      assert.equal(claims.identity, identity);
    } finally {
      await server.close();
    }
  });
});
