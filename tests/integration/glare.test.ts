// Perfect negotiation across the wire: the server is the impolite peer, the client the polite one.
// When their offers cross, the server keeps its own and says SIG_ERR_GLARE; the client rolls back,
// answers the server's offer, and media comes back.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { speechPackets } from '../helpers/audio.ts';

describe('glare', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ECHO_END_SILENCE_MS: '400', ICE_RESTART_RETRY_MS: '10000' });
  });
  after(async () => {
    await server.close();
  });

  it('crossed ICE-restart offers: server keeps its offer, client rolls back and answers, media resumes', async () => {
    const client = await TestClient.connect(server.wsUrl, {}, { manualOffers: true });
    try {
      // The client's audio stops: the server declares the path dead and offers an ICE restart.
      const serverOffer = client.next((m) => m.type === 'offer', 5000);
      client.micPaused = true;
      const offer = await serverOffer;
      assert.ok(offer.type === 'offer');
      // Meanwhile the client had decided to restart ICE too: its offer crosses the server's.
      const glare = client.next((m) => m.type === 'error', 5000);
      await client.sendRestartOffer();
      const error = await glare;
      assert.ok(error.type === 'error');
      assert.equal(error.code, 'SIG_ERR_GLARE');
      assert.equal(error.retryable, true);
      assert.equal(client.pc!.signalingState, 'have-local-offer');
      // Polite: roll back, answer the server's offer.
      await client.answerServerOffer(offer.sdp);
      assert.equal(client.pc!.signalingState, 'stable');
      const back = client.next((m) => m.type === 'state' && m.state === 'listening' && m.reason === 'recovered', 10_000);
      client.micPaused = false;
      await back;
      const turn = client.next((m) => m.type === 'turn', 20_000);
      await client.speak(speechPackets(0).packets);
      await turn;
      assert.ok(server.sessions.get(client.sessionId), 'the session survived the glare');
    } finally {
      await client.close();
    }
  });
});
