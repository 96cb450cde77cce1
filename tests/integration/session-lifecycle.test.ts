// Admission, timeouts, cleanup and worker failure, with real peers and real sockets.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { startServer, waitForSessionClosed, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { speechPackets } from '../helpers/audio.ts';

async function withServer(env: Record<string, string>, body: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = await startServer(env);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe('session lifecycle', () => {
  it('refuses a join beyond capacity with a retryable SESSION_ERR_CAPACITY, and admits again after a leave', async () => {
    await withServer({ MAX_SESSIONS: '2' }, async (server) => {
      const a = await TestClient.open(server.wsUrl);
      const b = await TestClient.open(server.wsUrl);
      const c = await TestClient.open(server.wsUrl);
      try {
        await a.join();
        await b.join();
        const refusal = c.next((m) => m.type === 'error');
        c.send({ type: 'join' });
        const error = await refusal;
        assert.ok(error.type === 'error');
        assert.equal(error.code, 'SESSION_ERR_CAPACITY');
        assert.equal(error.retryable, true);
        assert.equal((await c.waitClose()).code, 1013);
        assert.equal(server.sessions.size, 2);

        const closed = waitForSessionClosed(server, a.sessionId);
        a.send({ type: 'leave' });
        assert.equal(await closed, 'client_left');
        const d = await TestClient.open(server.wsUrl);
        await d.join();
        await d.close();
      } finally {
        await Promise.all([a.close(), b.close(), c.close()]);
      }
    });
  });

  it('closes an idle session with SESSION_ERR_IDLE_TIMEOUT, but not one that keeps talking', async () => {
    await withServer({ SESSION_IDLE_TIMEOUT_MS: '1500' }, async (server) => {
      const idle = await TestClient.open(server.wsUrl);
      const busy = await TestClient.connect(server.wsUrl);
      try {
        await idle.join();
        const closed = waitForSessionClosed(server, idle.sessionId);
        // The busy client streams media for longer than the idle timeout.
        const streaming = busy.speak(speechPackets(1000).packets);
        assert.equal(await closed, 'idle_timeout');
        const error = await idle.waitFor((m) => m.type === 'error');
        assert.ok(error.type === 'error' && error.code === 'SESSION_ERR_IDLE_TIMEOUT');
        const state = await idle.waitFor((m) => m.type === 'state' && m.state === 'disconnected');
        assert.ok(state.type === 'state' && state.reason === 'idle_timeout');
        assert.equal((await idle.waitClose()).code, 1000);
        await streaming;
        assert.ok(server.sessions.get(busy.sessionId), 'the streaming session is not idle');
      } finally {
        await Promise.all([idle.close(), busy.close()]);
      }
    });
  });

  it('ends a session at its maximum duration', async () => {
    await withServer({ SESSION_MAX_DURATION_MS: '1000' }, async (server) => {
      const client = await TestClient.connect(server.wsUrl);
      try {
        const reason = await waitForSessionClosed(server, client.sessionId);
        assert.equal(reason, 'max_duration');
        const error = await client.waitFor((m) => m.type === 'error');
        assert.ok(error.type === 'error' && error.code === 'SESSION_ERR_MAX_DURATION');
      } finally {
        await client.close();
      }
    });
  });

  it('frees every resource: 40 sessions opened and closed leave no session, peer, socket or decoder behind', async () => {
    await withServer({}, async (server) => {
      const fdsBefore = openFds();
      // The workers warm their local providers up after start, without holding sessions back; what
      // that loads (flite's WASM memory) is not the sessions'. The baseline comes after it.
      const warmBy = Date.now() + 30_000;
      let before = await server.media.stats();
      while (before.some((w) => w.providersWarm === false)) {
        assert.ok(Date.now() < warmBy, "the providers' warm-up never settled");
        before = await server.media.stats();
      }
      assert.ok(before.every((w) => w.providersWarm === true), 'each worker reports its warm-up');
      for (let round = 0; round < 4; round++) {
        const clients = await Promise.all(Array.from({ length: 10 }, () => TestClient.connect(server.wsUrl)));
        assert.equal(server.sessions.size, 10);
        const during = await server.media.stats();
        assert.equal(during.reduce((s, w) => s + w.sessions, 0), 10, 'each session has media in a worker');
        const closed = clients.map((c) => waitForSessionClosed(server, c.sessionId));
        await Promise.all(clients.map((c) => c.close()));
        await Promise.all(closed);
      }
      await server.sessions.mediaReleased();
      const after = await server.media.stats();
      assert.equal(server.sessions.size, 0);
      assert.equal(after.reduce((s, w) => s + w.sessions, 0), 0, 'workers hold no media sessions');
      assert.deepEqual(server.media.placements(), [0, 0]);
      // Each session had a UDP socket on each side (client and server live in this process);
      // all of them are closed again. A small slack covers unrelated handles (timers, the test runner).
      // Sockets close asynchronously (UDP close callbacks, the server side of each WebSocket) and
      // nothing signals the last one: wait, bounded, for the count to come back; a leak stays.
      const deadline = Date.now() + 5000;
      while (openFds() > fdsBefore + 3 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      assert.ok(openFds() <= fdsBefore + 3, `open fds ${fdsBefore} -> ${openFds()}`);
      // What sessions hold outside the JS heap (buffers, typed arrays) is external memory: it returns near its start.
      for (let i = 0; i < after.length; i++) {
        const grewMb = (after[i]!.externalBytes - before[i]!.externalBytes) / 1e6;
        assert.ok(grewMb < 5, `worker ${i} external memory grew ${grewMb.toFixed(1)} MB`);
      }
    });
  });

  it('ends the sessions of a worker that dies with MEDIA_ERR_WORKER_DIED and keeps serving the others', async () => {
    await withServer({ MEDIA_WORKERS: '2' }, async (server) => {
      const clients = await Promise.all(Array.from({ length: 4 }, () => TestClient.connect(server.wsUrl)));
      try {
        const onWorker0 = clients.filter((c) => server.media.workerOf(c.sessionId) === 0);
        const onWorker1 = clients.filter((c) => server.media.workerOf(c.sessionId) === 1);
        assert.equal(onWorker0.length, 2);
        const closed = onWorker0.map((c) => waitForSessionClosed(server, c.sessionId));
        await server.media.terminateWorker(0);
        assert.deepEqual(await Promise.all(closed), ['media_worker_died', 'media_worker_died']);
        for (const c of onWorker0) {
          const error = await c.waitFor((m) => m.type === 'error');
          assert.ok(error.type === 'error' && error.code === 'MEDIA_ERR_WORKER_DIED' && error.retryable);
          const states = c.messages.filter((m) => m.type === 'state').map((m) => (m.type === 'state' ? m.state : ''));
          assert.deepEqual(states.slice(-2), ['error', 'disconnected']);
        }
        // The survivors still echo, and new sessions are admitted (the worker was replaced).
        await onWorker1[0]!.speak(speechPackets(800).packets);
        await onWorker1[0]!.waitFor((m) => m.type === 'turn', 15_000);
        const fresh = await TestClient.connect(server.wsUrl);
        await fresh.close();
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
    });
  });
});
