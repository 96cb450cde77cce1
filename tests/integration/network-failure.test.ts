// Bad networks, for real: werift clients whose media runs through a loopback UDP impairment relay
// (tests/helpers/udp-relay.ts). Blackouts, a network switch, socket and media lost together, and a
// lossy, jittery path.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { UdpRelay } from '../helpers/udp-relay.ts';
import { decodeStream, envelope, envelopeSimilarity, speechPackets } from '../helpers/audio.ts';
import type { QualityInfo, ServerMessage } from '../../signaling/protocol.ts';

const BLACKOUT_MS = 2000;

async function relayedClient(server: RunningServer, relay: UdpRelay): Promise<TestClient> {
  return TestClient.connect(server.wsUrl, {}, {
    rewriteRemote: (text) => (text.includes('\r\n') ? relay.rewriteSdp(text) : relay.rewriteCandidate(text)),
    rewriteLocal: (line) => relay.rewriteClientCandidate(line),
  });
}

/** Resolves after `ms` of real time: the blackout itself is a duration, not an event to await. */
const hold = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function talk(client: TestClient): Promise<void> {
  const next = client.next((m) => m.type === 'turn', 20_000);
  await client.speak(speechPackets(0).packets);
  await next;
}

function states(client: TestClient, since = 0): string[] {
  return client.messages.slice(since).flatMap((m) => (m.type === 'state' ? [`${m.state}:${m.reason ?? ''}`] : []));
}

describe('network failures through an impairment relay', () => {
  let server: RunningServer;
  let relay: UdpRelay;
  let client: TestClient | null = null;
  before(async () => {
    server = await startServer({ ECHO_END_SILENCE_MS: '400', ICE_RESTART_RETRY_MS: '1000' });
  });
  afterEach(async () => {
    await client?.close();
    client = null;
    await relay?.close();
  });
  after(async () => {
    await server.close();
  });

  it('2 s blackout: detected within a second, server-initiated ICE restart, media and turns resume', async () => {
    relay = new UdpRelay({ seed: 11 });
    client = await relayedClient(server, relay);
    await talk(client);
    const mark = client.messages.length;
    const lost = client.next((m) => m.type === 'state' && m.state === 'reconnecting', 5000);
    const restartOffer = client.next((m) => m.type === 'offer', 5000);
    const start = performance.now();
    relay.blackhole(true);
    const reconnecting = await lost;
    const detectionMs = performance.now() - start;
    assert.ok(reconnecting.type === 'state' && reconnecting.reason === 'media_lost');
    assert.ok(detectionMs < 1500, `detected after ${detectionMs.toFixed(0)} ms`);
    await restartOffer; // the socket is alive, so the server restarts ICE itself
    await hold(BLACKOUT_MS - (performance.now() - start));
    const back = client.next((m) => m.type === 'state' && m.state === 'listening', 10_000);
    relay.blackhole(false);
    await back;
    assert.deepEqual(states(client, mark), ['reconnecting:media_lost', 'listening:recovered']);
    await talk(client);
    assert.deepEqual(server.sessions.get(client.sessionId)!.history.map((t) => t.index), [0, 1]);
  });

  it('2 s blackout: a client-initiated ICE restart brings media and turns back', async () => {
    relay = new UdpRelay({ seed: 16 });
    // This client leaves the server's own restart offers unanswered: only its restart can help.
    client = await TestClient.connect(server.wsUrl, {}, {
      manualOffers: true,
      rewriteRemote: (text) => (text.includes('\r\n') ? relay.rewriteSdp(text) : relay.rewriteCandidate(text)),
      rewriteLocal: (line) => relay.rewriteClientCandidate(line),
    });
    await talk(client);
    const lost = client.next((m) => m.type === 'state' && m.state === 'reconnecting', 5000);
    relay.blackhole(true);
    await lost;
    await hold(BLACKOUT_MS);
    relay.blackhole(false);
    const back = client.next((m) => m.type === 'state' && m.state === 'listening' && m.reason === 'recovered', 10_000);
    // The client restarts ICE. The server, which saw the blackout too, has its own restart offer
    // outstanding, so the offers cross: the server (impolite) answers ours with SIG_ERR_GLARE and
    // the client (polite) answers the server's offer instead, as the SDK does.
    await client.restartIce();
    if (client.pc!.signalingState === 'have-local-offer') {
      const last = client.messages.filter((m) => m.type === 'offer').at(-1);
      assert.ok(last && last.type === 'offer', 'glare implies a server offer');
      await client.answerServerOffer(last.sdp);
    }
    await back;
    await talk(client);
    assert.deepEqual(client.turns().map((t) => t.index), [0, 1]);
  });

  it('network switch: the server keeps sending to the old address until a client-initiated ICE restart', async () => {
    relay = new UdpRelay({ seed: 12 });
    client = await relayedClient(server, relay);
    await talk(client);
    await relay.switchNetwork();
    // The client's packets now arrive from a new address; the server's replies still go to the old
    // one, which is gone. The echo of this utterance is lost on the way back.
    const before = client.received.length;
    await talk(client);
    assert.ok(client.received.length - before < 5, `${client.received.length - before} echo packets got through the dead path`);
    // The client notices (no audio: in the SDK, a network change or ICE state) and restarts ICE
    // with its candidates on the new network.
    await client.restartIce();
    const received = client.received.length;
    await talk(client);
    assert.ok(client.received.length - received > 50, 'the echo reaches the client again');
    assert.deepEqual(client.turns().map((t) => t.index), [0, 1, 2]);
  });

  it('socket and media lost together: resume over a new WebSocket, restart ICE, history intact', async () => {
    relay = new UdpRelay({ seed: 14 });
    client = await relayedClient(server, relay);
    await talk(client);
    const sessionId = client.sessionId;
    relay.blackhole(true);
    client.dropSocket();
    const session = server.sessions.get(sessionId)!;
    await new Promise<void>((resolve) => session.on('statechange', (s) => s === 'reconnecting' && resolve()));
    await hold(BLACKOUT_MS);
    relay.blackhole(false);
    const resumed = await client.resume('keep');
    assert.equal(resumed.sessionId, sessionId);
    const back = client.waitFor((m) => m.type === 'state' && m.state === 'listening' && m.reason === 'recovered', 10_000);
    await client.restartIce();
    await back;
    await talk(client);
    assert.deepEqual(session.history.map((t) => t.index), [0, 1]);
    assert.deepEqual(client.turns().map((t) => t.index), [0, 1]);
  });

  it('10% loss and 50 ms jitter: turns complete with intelligible audio; FEC and a lower bitrate kick in', async () => {
    relay = new UdpRelay({ seed: 15 });
    client = await relayedClient(server, relay);
    relay.setLoss(0.1);
    relay.setDelay(5, 50);
    const { packets, pcm } = speechPackets(0);
    const qualities = () => client!.messages.flatMap((m: ServerMessage) => (m.type === 'quality' ? [m.quality] : [] as QualityInfo[]));
    const correlations: number[] = [];
    for (let round = 0; round < 4; round++) {
      const from = client.received.length;
      const turn = client.next((m) => m.type === 'turn', 20_000);
      await client.speak(packets);
      await turn;
      const echoed = decodeStream(client.received.slice(from));
      correlations.push(envelopeSimilarity(envelope(pcm), envelope(echoed)).correlation);
      if (round >= 1 && qualities().some((q) => q.fec && q.bitrate < 32000)) break;
    }
    // Stated tolerance: on this path the echo's loudness envelope still follows the speech: every
    // round > 0.6 and on average > 0.7 (a clean path gives > 0.9).
    const mean = correlations.reduce((a, b) => a + b, 0) / correlations.length;
    assert.ok(correlations.every((c) => c > 0.6) && mean > 0.7, `envelope correlations ${correlations.map((c) => c.toFixed(3)).join(', ')}`);
    const q = qualities();
    assert.ok(q.some((x) => x.lossPercent >= 3), `the client reported loss: ${JSON.stringify(q.at(-1))}`);
    assert.ok(q.some((x) => x.fec && x.fecLossPercent >= 5), 'in-band FEC switched on');
    assert.ok(q.some((x) => x.bitrate < 32000), 'bitrate stepped down');
    assert.ok(q.at(-1)!.inboundLossPercent > 3, 'our jitter buffer saw the inbound loss');
  });
});
