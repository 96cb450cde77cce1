// A real werift client over loopback UDP: join, media both ways, the echo returns the spoken audio.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { decodePackets, decodeStream, envelope, envelopeSimilarity, speechPackets } from '../helpers/audio.ts';
import type { ConversationTurn } from '../../server/session-types.ts';

describe('echo session over real WebRTC', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ECHO_END_SILENCE_MS: '500' });
  });
  after(async () => {
    await server.close();
  });

  it('echoes an utterance back: the envelope of what returns matches what was sent', async () => {
    const client = await TestClient.connect(server.wsUrl, { room: 'echo-test' });
    try {
      const joined = client.messages.find((m) => m.type === 'joined');
      assert.ok(joined && joined.type === 'joined');
      assert.match(joined.sessionId, /^[A-Za-z0-9_-]{22}$/, 'session id is 128 random bits, base64url');
      assert.equal(joined.room, 'echo-test');
      assert.deepEqual(joined.iceServers, []);

      const { packets, pcm } = speechPackets(1200);
      await client.speak(packets);
      const message = await client.waitFor((m) => m.type === 'turn', 15_000);
      assert.ok(message.type === 'turn');
      const turn: ConversationTurn = message.turn;
      assert.equal(turn.index, 0);
      assert.equal(turn.mode, 'echo');
      assert.ok(turn.userAudioMs > 2000 && turn.userAudioMs < 4000, `utterance length ${turn.userAudioMs} ms`);
      assert.ok(turn.timings.firstPacketOutAt! >= turn.timings.endOfTurnAt);
      assert.ok(turn.timings.endOfTurnAt - turn.timings.speechEndAt >= 500, 'the turn ended after the endpointing silence');

      // Everything the server sent back arrived, in order, at 20 ms spacing of the RTP clock.
      const expectedPackets = Math.ceil(turn.agentAudioMs / 20);
      assert.ok(client.received.length >= expectedPackets - 1, `received ${client.received.length} of ${expectedPackets}`);
      assert.equal(client.received[0]!.marker, true, 'the talkspurt starts with the marker bit');
      for (let i = 1; i < client.received.length; i++) {
        assert.equal((client.received[i]!.timestamp - client.received[i - 1]!.timestamp) >>> 0, 960);
      }
      const echoed = decodePackets(client.received.map((p) => p.payload));
      const similarity = envelopeSimilarity(envelope(pcm), envelope(echoed));
      assert.ok(similarity.correlation > 0.9, `envelope correlation ${similarity.correlation.toFixed(3)}`);

      const states = client.messages.filter((m) => m.type === 'state').map((m) => (m.type === 'state' ? m.state : ''));
      assert.deepEqual(states, ['connecting', 'connected', 'listening', 'processing', 'responding', 'listening']);
      assert.equal(server.sessions.get(client.sessionId)?.history.length, 1);
    } finally {
      await client.close();
    }
  });

  it('paces the echo at 20 ms (no bursts)', async () => {
    const client = await TestClient.connect(server.wsUrl);
    try {
      const { packets } = speechPackets(1000);
      await client.speak(packets);
      await client.waitFor((m) => m.type === 'turn', 15_000);
      const gaps = client.received.slice(1).map((p, i) => p.at - client.received[i]!.at);
      const sorted = [...gaps].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)]!;
      assert.ok(median > 15 && median < 25, `median inter-packet gap ${median.toFixed(1)} ms`);
      // A burst sends many frames back to back (gaps well under a millisecond); timer jitter on a
      // loaded machine only shortens the odd gap.
      const bursts = gaps.filter((g) => g < 2).length;
      assert.ok(bursts <= gaps.length * 0.1, `${bursts} of ${gaps.length} packets arrived < 2 ms after the previous one`);
    } finally {
      await client.close();
    }
  });

  it('conceals lost packets: a stream with 10% of packets removed still echoes the utterance', async () => {
    const client = await TestClient.connect(server.wsUrl);
    try {
      const { packets, pcm } = speechPackets(1200);
      // Every 10th packet is lost on the way (sequence numbers still advance, so the server sees loss).
      await client.speak(packets, (i) => i % 10 === 5);
      const message = await client.waitFor((m) => m.type === 'turn', 15_000);
      assert.ok(message.type === 'turn');
      const echoed = decodeStream(client.received);
      const similarity = envelopeSimilarity(envelope(pcm), envelope(echoed));
      // Stated tolerance: a clean path gives > 0.9; with 10% of the input concealed, > 0.75.
      assert.ok(similarity.correlation > 0.75, `envelope correlation ${similarity.correlation.toFixed(3)}`);
      const [workerStats] = await Promise.all([server.media.stats()]);
      const lost = workerStats.reduce((s, w) => s + w.packets.lost, 0);
      assert.ok(lost >= Math.floor(packets.length / 10) - 1, `server counted ${lost} lost packets`);
    } finally {
      await client.close();
    }
  });
});
