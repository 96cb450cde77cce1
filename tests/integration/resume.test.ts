// Sessions outlive their socket and their peer connection: resume over a new WebSocket (fast path
// keeps the peer, slow path replaces it), single-use rotating tokens, the reconnect window, and
// history that stays retrievable after the session ends.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, waitForSessionClosed, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { speechPackets } from '../helpers/audio.ts';
import { mintTestToken } from '../helpers/auth.ts';

describe('resume', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ECHO_END_SILENCE_MS: '400', SESSION_RECONNECT_WINDOW_MS: '20000' });
  });
  after(async () => {
    await server.close();
  });

  it('resumes over a new WebSocket with the same session, the missed turn, and a rotated token', async () => {
    const client = await TestClient.connect(server.wsUrl);
    try {
      const sessionId = client.sessionId;
      await client.speak(speechPackets(0).packets);
      await client.waitFor((m) => m.type === 'turn');
      // Speak again and lose the socket before that turn is announced.
      await client.speak(speechPackets(0).packets);
      const firstToken = client.resumeToken;
      client.dropSocket();
      const session = server.sessions.get(sessionId)!;
      await new Promise<void>((resolve) => session.on('turn', () => resolve()));
      assert.equal(session.state, 'reconnecting', 'a session without its socket is reconnecting');

      const resumed = await client.resume('keep');
      assert.equal(resumed.sessionId, sessionId);
      assert.equal(resumed.media, 'kept');
      assert.notEqual(resumed.resumeToken, firstToken, 'the token rotates');
      assert.deepEqual(resumed.missedTurns.map((t) => t.index), [1], 'exactly the turn it missed');
      await client.waitFor((m) => m.type === 'state' && m.state === 'listening' && m.reason === 'recovered');
      assert.equal(server.sessions.size, 1);

      // The conversation goes on over the same peer connection; no turn is duplicated.
      await client.speak(speechPackets(0).packets);
      await client.next((m) => m.type === 'turn', 15_000);
      assert.deepEqual(client.turns().map((t) => t.index), [0, 1, 2]);
      assert.deepEqual(session.history.map((t) => t.index), [0, 1, 2]);

      // The used token is dead: presenting it again is refused like any wrong token.
      const other = await TestClient.open(server.wsUrl, { identity: client.identity });
      const refusal = await other.expectError({ type: 'resume', sessionId, resumeToken: firstToken });
      assert.equal(refusal.code, 'SESSION_ERR_RESUME_REFUSED');
      await other.close();
      assert.ok(server.sessions.get(sessionId), 'a refused resume does not touch the session');
    } finally {
      await client.close();
    }
  });

  it('refuses wrong tokens and unknown sessions with one indistinguishable error', async () => {
    const client = await TestClient.connect(server.wsUrl);
    const probe = await TestClient.open(server.wsUrl, { identity: client.identity });
    try {
      const wrong = await probe.expectError({ type: 'resume', sessionId: client.sessionId, resumeToken: 'x'.repeat(43) });
      const unknown = await probe.expectError({ type: 'resume', sessionId: 'A'.repeat(22), resumeToken: client.resumeToken });
      assert.equal(wrong.code, 'SESSION_ERR_RESUME_REFUSED');
      assert.deepEqual(unknown, wrong, 'the same code and text whatever was wrong');
      assert.equal(server.sessions.get(client.sessionId)?.state, 'listening');
    } finally {
      await probe.close();
      await client.close();
    }
  });

  it('lets a new socket take over a session whose old socket has not noticed it is dead', async () => {
    const client = await TestClient.connect(server.wsUrl);
    try {
      const oldSocket = client.ws;
      const closed = new Promise<number>((resolve) => oldSocket.once('close', (code) => resolve(code)));
      await client.resume('keep', { keepOldSocket: true });
      assert.equal(await closed, 4001);
      assert.equal(server.sessions.size, 1);
    } finally {
      await client.close();
    }
  });

  it('full rejoin: a restarted client attaches a new peer connection to the same session and history', async () => {
    const client = await TestClient.connect(server.wsUrl);
    try {
      const sessionId = client.sessionId;
      await client.speak(speechPackets(0).packets);
      await client.waitFor((m) => m.type === 'turn');
      const oldPc = client.pc;
      client.stopMic();
      client.dropSocket();
      const resumed = await client.resume('new');
      assert.equal(resumed.media, 'new');
      assert.notEqual(client.pc, oldPc, 'a new peer connection');
      await client.waitFor((m) => m.type === 'state' && m.state === 'listening' && m.reason === 'recovered', 10_000);
      client.startMic();
      await client.speak(speechPackets(0).packets);
      await client.next((m) => m.type === 'turn', 15_000);
      const session = server.sessions.get(sessionId)!;
      assert.deepEqual(session.history.map((t) => t.index), [0, 1]);
      assert.deepEqual(client.turns().map((t) => t.index), [0, 1]);
    } finally {
      await client.close();
    }
  });
});

describe('reconnect window', () => {
  it('closes a session that is not resumed in time; its history stays retrievable with an access token of its identity', async () => {
    const server = await startServer({ ECHO_END_SILENCE_MS: '400', SESSION_RECONNECT_WINDOW_MS: '1000' });
    const client = await TestClient.connect(server.wsUrl);
    try {
      const sessionId = client.sessionId;
      await client.speak(speechPackets(0).packets);
      await client.waitFor((m) => m.type === 'turn');
      const token = client.resumeToken;
      const closed = waitForSessionClosed(server, sessionId);
      client.stopMic();
      client.dropSocket();
      assert.equal(await closed, 'reconnect_timeout');

      const late = await TestClient.open(server.wsUrl, { identity: client.identity });
      const refusal = await late.expectError({ type: 'resume', sessionId, resumeToken: token });
      assert.equal(refusal.code, 'SESSION_ERR_RESUME_REFUSED', 'an expired token is refused');
      await late.close();

      await server.sessions.flush();
      const history = await fetch(`${server.url}/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${await client.accessToken()}` } });
      assert.equal(history.status, 200);
      const body = (await history.json()) as { turns: { index: number }[]; closeReason: string; state: string };
      assert.deepEqual(body.turns.map((t) => t.index), [0]);
      assert.equal(body.closeReason, 'reconnect_timeout');
      assert.equal(body.state, 'disconnected');
      const wrong = await fetch(`${server.url}/v1/sessions/${sessionId}/history`, { headers: { authorization: `Bearer ${await mintTestToken({ identity: 'someone-else' })}` } });
      assert.equal(wrong.status, 404, 'another identity is told there is no such session');
      const none = await fetch(`${server.url}/v1/sessions/${sessionId}/history`);
      assert.equal(none.status, 401);
    } finally {
      await client.close();
      await server.close();
    }
  });
});
