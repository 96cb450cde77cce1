// Nothing a client sends may crash the server or hurt its session: every bad input gets a stable
// error code, the session carries on, and a client that keeps sending garbage is disconnected.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { speechPackets } from '../helpers/audio.ts';

const MINIMAL_SDP = [
  'v=0',
  'o=- 1 1 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111',
  'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:abcd',
  'a=ice-pwd:abcdefghijklmnopqrstuvwx',
  'a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF',
  'a=setup:actpass',
  'a=mid:0',
  'a=sendrecv',
  'a=rtpmap:111 opus/48000/2',
  '',
].join('\r\n');

describe('bad input on the signaling socket', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ SIGNAL_MAX_BAD_MESSAGES: '30', ECHO_END_SILENCE_MS: '400' });
  });
  after(async () => {
    await server.close();
  });

  it('answers each bad message with its error code and keeps the session (and a neighbour) working', async () => {
    const client = await TestClient.connect(server.wsUrl);
    const neighbour = await TestClient.connect(server.wsUrl);
    try {
      const cases: [unknown, string][] = [
        ['{not json', 'SIG_ERR_BAD_JSON'],
        ['[1,2,3]', 'SIG_ERR_BAD_MESSAGE'],
        ['"just a string"', 'SIG_ERR_BAD_MESSAGE'],
        [{ kind: 'offer' }, 'SIG_ERR_BAD_MESSAGE'],
        [{ type: 'dance' }, 'SIG_ERR_UNKNOWN_TYPE'],
        [{ type: 'offer' }, 'SIG_ERR_BAD_MESSAGE'],
        [{ type: 'offer', sdp: MINIMAL_SDP, extra: true }, 'SIG_ERR_BAD_MESSAGE'],
        [{ type: 'offer', sdp: 42 }, 'SIG_ERR_BAD_MESSAGE'],
        [{ type: 'candidate', candidate: { candidate: 'x', sdpMLineIndex: -1 } }, 'SIG_ERR_BAD_MESSAGE'],
        [{ type: 'ping', id: 'x'.repeat(65 * 1024) }, 'SIG_ERR_TOO_LARGE'],
        [{ type: 'offer', sdp: 'hello' }, 'SIG_ERR_BAD_SDP'],
        [{ type: 'offer', sdp: MINIMAL_SDP.replace('m=audio', 'm=video') }, 'SIG_ERR_BAD_SDP'],
        [{ type: 'offer', sdp: MINIMAL_SDP + 'm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n' }, 'SIG_ERR_BAD_SDP'],
        [{ type: 'offer', sdp: MINIMAL_SDP.replace('opus/48000/2', 'PCMU/8000') }, 'SIG_ERR_NO_OPUS'],
        [{ type: 'answer', sdp: MINIMAL_SDP }, 'SIG_ERR_OUT_OF_ORDER'],
        [{ type: 'join' }, 'SIG_ERR_ALREADY_JOINED'],
      ];
      for (const [message, code] of cases) {
        const error = await client.expectError(message);
        assert.equal(error.code, code, `for ${JSON.stringify(message).slice(0, 80)}: ${error.message}`);
        assert.equal(typeof error.message, 'string');
        assert.equal(error.retryable, false);
      }
      const binary = client.next((m) => m.type === 'error');
      client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
      assert.equal(((await binary) as { code: string }).code, 'SIG_ERR_BAD_MESSAGE');

      // The session is intact: it still answers pings and still echoes speech.
      const pong = client.next((m) => m.type === 'pong');
      client.send({ type: 'ping', id: 7 });
      assert.deepEqual(await pong, { type: 'pong', id: 7 });
      await client.speak(speechPackets(800).packets);
      await client.waitFor((m) => m.type === 'turn', 15_000);
      assert.equal(client.closeInfo, null);

      // The neighbour never saw an error and still works.
      assert.equal(neighbour.messages.filter((m) => m.type === 'error').length, 0);
      await neighbour.speak(speechPackets(800).packets);
      await neighbour.waitFor((m) => m.type === 'turn', 15_000);
    } finally {
      await client.close();
      await neighbour.close();
    }
  });

  it('refuses messages out of order before negotiation', async () => {
    const client = await TestClient.open(server.wsUrl);
    try {
      assert.equal((await client.expectError({ type: 'offer', sdp: MINIMAL_SDP })).code, 'SIG_ERR_NOT_JOINED');
      assert.equal((await client.expectError({ type: 'join', mode: 'karaoke' })).code, 'SIG_ERR_UNSUPPORTED_MODE');
      assert.equal((await client.expectError({ type: 'join', room: '../etc' })).code, 'SIG_ERR_BAD_MESSAGE');
      await client.join({ room: 'order' });
      const candidate = { candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
      assert.equal((await client.expectError({ type: 'candidate', candidate })).code, 'SIG_ERR_OUT_OF_ORDER');
      assert.equal((await client.expectError({ type: 'answer', sdp: MINIMAL_SDP })).code, 'SIG_ERR_OUT_OF_ORDER');
      // After all that, negotiation still works on the same session.
      await client.negotiate();
      await client.waitFor((m) => m.type === 'state' && m.state === 'listening');
    } finally {
      await client.close();
    }
  });

  it('disconnects a client that keeps sending garbage, without touching other sessions', async () => {
    const abuser = await TestClient.open(server.wsUrl);
    const bystander = await TestClient.connect(server.wsUrl);
    try {
      await abuser.join();
      const abuserSession = abuser.sessionId;
      for (let i = 0; i <= 30; i++) abuser.send('garbage');
      const abuse = await abuser.waitFor((m) => m.type === 'error' && m.code === 'SIG_ERR_ABUSE');
      assert.ok(abuse);
      const closed = await abuser.waitClose();
      assert.equal(closed.code, 1008);
      await waitUntil(() => server.sessions.get(abuserSession) === undefined);
      assert.ok(server.sessions.get(bystander.sessionId), 'the bystander keeps its session');
      const pong = bystander.next((m) => m.type === 'pong');
      bystander.send({ type: 'ping' });
      await pong;
    } finally {
      await abuser.close();
      await bystander.close();
    }
  });
});

/** Waits for a condition that an event (already in flight) will make true; bounded. */
async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setImmediate(r));
  }
}
