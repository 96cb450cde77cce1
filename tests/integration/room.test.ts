// Three real werift clients in one room over loopback UDP: each hears the other two on tracks the
// server adds by renegotiation (SFU forwarding, no transcoding), never itself; the agent (here the
// echo, listening to the first participant) answers on everyone's own track; muting a subscription
// stops that one forwarding; a participant who leaves is removed from the others' connections.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient, type ReceivedPacket } from '../helpers/werift-client.ts';
import { decodePackets, decodeStream, encodePackets, envelope, envelopeSimilarity } from '../helpers/audio.ts';
import { mulberry32 } from '../helpers/prng.ts';
import type { ServerMessage } from '../../signaling/protocol.ts';
import type { Grant } from '../../signaling/auth.ts';
import { mintTestToken } from '../helpers/auth.ts';

type RoomMessage = Extract<ServerMessage, { type: 'room' }>;
type TracksMessage = Extract<ServerMessage, { type: 'tracks' }>;

const RATE = 16000;
const BLOCK = 1600; // 100 ms

/**
 * A talker of its own: 100 ms blocks of a tone, on or off at random (seeded), never silent for more
 * than 300 ms (so the echo hears one utterance). Distinct seeds give uncorrelated envelopes.
 */
function talker(seed: number, blocks: number, hz: number): Int16Array {
  const random = mulberry32(seed);
  const pcm = new Int16Array(blocks * BLOCK);
  let off = 0;
  for (let b = 0; b < blocks; b++) {
    const on = b === 0 || b === blocks - 1 || off >= 3 || random() < 0.5;
    off = on ? 0 : off + 1;
    if (!on) continue;
    const amplitude = 6000 + random() * 6000;
    for (let i = 0; i < BLOCK; i++) pcm[b * BLOCK + i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * (b * BLOCK + i)) / RATE));
  }
  return pcm;
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The mid carrying `participantId` on this client, from the latest `tracks` message. */
function midOf(client: TestClient, participantId: string): string | undefined {
  const latest = client.messages.filter((m): m is TracksMessage => m.type === 'tracks').at(-1);
  return latest?.tracks.find((t) => t.participantId === participantId)?.mid;
}

const between = (packets: ReceivedPacket[] | undefined, from: number, to: number): ReceivedPacket[] =>
  (packets ?? []).filter((p) => p.at >= from && p.at <= to);

interface Spoken {
  packets: Uint8Array[];
  /** The audio as any receiver decodes it. */
  heard: Int16Array;
  /** The voiced packets (silence encodes the same for everyone), byte for byte. */
  voiced: Set<string>;
}

const key = (payload: Uint8Array): string => Buffer.from(payload).toString('base64');

function spoken(pcm: Int16Array): Spoken {
  const packets = encodePackets(pcm);
  return { packets, heard: decodePackets(packets), voiced: new Set(packets.filter((p) => p.length > 10).map(key)) };
}

const similarity = (sent: { heard: Int16Array }, received: ReceivedPacket[]): number =>
  envelopeSimilarity(envelope(sent.heard), envelope(decodeStream(received))).correlation;

describe('room: three participants hear each other (SFU forwarding)', () => {
  let server: RunningServer;
  const clients: TestClient[] = [];
  const ids: string[] = [];

  before(async () => {
    server = await startServer({ ECHO_END_SILENCE_MS: '600', ROOM_MAX_PARTICIPANTS: '3' });
    for (let i = 0; i < 3; i++) {
      const client = await TestClient.connect(server.wsUrl, { room: 'trio' });
      clients.push(client);
      const room = await client.waitFor<RoomMessage>((m) => m.type === 'room');
      ids.push(room.participantId);
    }
    // Every client gets a track for each of the other two, negotiated and carrying their microphone.
    await until(
      () => clients.every((c, i) => ids.every((id, j) => i === j || (c.receivedByMid.get(midOf(c, id) ?? '')?.length ?? 0) > 5)),
      15_000,
      'every client to receive both other participants',
    );
  });

  after(async () => {
    for (const client of clients) await client.close();
    await server.close();
  });

  it('lists the participants and announces newcomers; the agent listens to the first one', async () => {
    const first = clients[0]!.messages.find((m): m is RoomMessage => m.type === 'room')!;
    assert.equal(first.room, 'trio');
    assert.deepEqual(first.participants.map((p) => p.participantId), [ids[0]]);
    assert.equal(first.agentListensTo, ids[0]);
    const third = clients[2]!.messages.find((m): m is RoomMessage => m.type === 'room')!;
    assert.deepEqual(third.participants.map((p) => p.participantId), ids);
    assert.equal(third.agentListensTo, ids[0]);
    const joinedSeenByFirst = clients[0]!.messages.filter((m) => m.type === 'participant' && m.event === 'joined');
    assert.deepEqual(joinedSeenByFirst.map((m) => (m.type === 'participant' ? m.participant.participantId : '')), [ids[1], ids[2]]);
    // All three sessions live on the same media worker.
    const workers = new Set(clients.map((c) => server.sessions.get(c.sessionId)?.workerIndex));
    assert.equal(workers.size, 1);
  });

  it('refuses a fourth participant: the room is full', async () => {
    const extra = await TestClient.open(server.wsUrl);
    try {
      const error = await extra.expectError({ type: 'join', room: 'trio' });
      assert.equal(error.code, 'ROOM_ERR_FULL');
      assert.equal(error.retryable, true);
    } finally {
      await extra.close();
    }
  });

  it('each hears the other two (envelopes match), never itself; forwarded streams are continuous', async () => {
    const signals = [spoken(talker(11, 40, 440)), spoken(talker(22, 40, 660)), spoken(talker(33, 40, 880))];
    const t0 = performance.now();
    await Promise.all(clients.map((c, i) => c.speak(signals[i]!.packets)));
    const t1 = performance.now();
    for (let x = 0; x < 3; x++) {
      const client = clients[x]!;
      const mids = ids.map((id) => midOf(client, id));
      assert.equal(mids[x], undefined, `client ${x} has no track of its own`);
      for (let y = 0; y < 3; y++) {
        if (y === x) continue;
        const packets = between(client.receivedByMid.get(mids[y]!), t0 - 50, t1 + 300);
        assert.ok(packets.length >= 190, `client ${x} got ${packets.length} packets from ${y}`);
        const fromSpeaker = similarity(signals[y]!, packets);
        assert.ok(fromSpeaker > 0.95, `client ${x} <- ${y}: envelope correlation ${fromSpeaker.toFixed(3)}`);
        // Forwarded, not transcoded: every voiced packet of the speaker arrives byte for byte, and
        // none of anyone else's (its own included) is on this track.
        const got = new Set(packets.map((p) => key(p.payload)));
        const missing = [...signals[y]!.voiced].filter((k) => !got.has(k)).length;
        assert.ok(missing <= 2, `client ${x} <- ${y}: ${missing} of ${signals[y]!.voiced.size} voiced packets missing`);
        for (const other of [x, 3 - x - y]) {
          const foreign = [...signals[other]!.voiced].filter((k) => got.has(k)).length;
          assert.equal(foreign, 0, `client ${x}'s track of ${y} carries ${foreign} packets of ${other}`);
          const wrong = similarity(signals[other]!, packets);
          assert.ok(fromSpeaker - wrong > 0.3, `client ${x}'s track of ${y} resembles ${other}'s audio (${wrong.toFixed(3)})`);
        }
        // The track's own numbering: one step per packet, 20 ms of RTP clock per step.
        for (let i = 1; i < packets.length; i++) {
          const steps = (packets[i]!.sequenceNumber - packets[i - 1]!.sequenceNumber) & 0xffff;
          assert.ok(steps >= 1 && steps < 5, `sequence step ${steps}`);
          assert.equal((packets[i]!.timestamp - packets[i - 1]!.timestamp) >>> 0, 960 * steps);
        }
      }
    }
    // The agent (the echo of participant 0) answers on every participant's own track: the others
    // get exactly what the agent sent to the participant it listens to.
    await clients[0]!.waitFor((m) => m.type === 'turn', 20_000);
    const answer = clients[0]!.received.map((p) => key(p.payload));
    assert.ok(answer.length > 150, `the agent sent ${answer.length} packets`);
    for (const client of clients.slice(1)) {
      await until(() => client.received.length >= answer.length - 2, 10_000, 'the agent audio on every client');
      const got = new Set(client.received.map((p) => key(p.payload)));
      const missing = answer.filter((k) => !got.has(k)).length;
      assert.ok(missing <= 2, `${missing} of ${answer.length} agent packets missing`);
    }
  });

  it('a muted subscription stops that forwarding only; unmuted, it resumes seamlessly; the speaker is announced', async () => {
    const [a, b, c] = clients as [TestClient, TestClient, TestClient];
    const aTrackOfB = midOf(a, ids[1]!)!;
    const cTrackOfB = midOf(c, ids[1]!)!;
    a.send({ type: 'subscription', participantId: ids[1], muted: true });
    const speaker = Promise.all(clients.map((x) => x.next((m) => m.type === 'active_speaker' && m.participantId === ids[1], 10_000)));
    const signal = spoken(talker(44, 20, 550));
    const t0 = performance.now();
    await b.speak(signal.packets);
    const t1 = performance.now();
    await speaker;
    // The mute takes effect within a few packets; after that nothing of B reaches A.
    const toA = between(a.receivedByMid.get(aTrackOfB), t0 + 200, t1 + 300);
    const toC = between(c.receivedByMid.get(cTrackOfB), t0 + 200, t1 + 300);
    assert.equal(toA.length, 0, `A still got ${toA.length} packets of B`);
    assert.ok(toC.length >= 80, `C got ${toC.length} packets of B`);
    assert.ok(similarity(signal, between(c.receivedByMid.get(cTrackOfB), t0 - 50, t1 + 300)) > 0.9);

    const before = a.receivedByMid.get(aTrackOfB)!;
    const last = before.at(-1)!;
    const count = before.length;
    a.send({ type: 'subscription', participantId: ids[1], muted: false });
    await until(() => a.receivedByMid.get(aTrackOfB)!.length > count + 5, 5000, 'B forwarded to A again');
    const resumed = a.receivedByMid.get(aTrackOfB)![count]!;
    assert.equal(resumed.sequenceNumber, (last.sequenceNumber + 1) & 0xffff, 'no sequence gap across the mute');
    assert.equal(resumed.marker, true, 'a new talkspurt');
    const gapMs = ((resumed.timestamp - last.timestamp) >>> 0) / 48;
    assert.ok(Math.abs(gapMs - (resumed.at - last.at)) < 100, `timestamp gap ${gapMs} ms for ${(resumed.at - last.at).toFixed(0)} ms`);
  });

  it('a participant who resumes with a new connection gets its tracks again; the others hear it without a break', async () => {
    const [a, b] = clients as [TestClient, TestClient, TestClient];
    const aTrackOfB = a.receivedByMid.get(midOf(a, ids[1]!)!)!;
    const before = aTrackOfB.length;
    const rooms = b.messages.filter((m) => m.type === 'room').length;
    await b.resume('new');
    const room = await b.waitFor<RoomMessage>((m) => m.type === 'room' && b.messages.filter((x) => x.type === 'room').length > rooms);
    assert.equal(room.participantId, ids[1], 'the same participant');
    const counts = (c: TestClient) => [ids[0]!, ids[2]!].map((id) => c.receivedByMid.get(midOf(c, id) ?? '')?.length ?? 0);
    const start = counts(b);
    await until(() => counts(b).every((n, i) => n > start[i]! + 10), 10_000, 'B receiving A and C on its new connection');
    // On A's side, B's new stream continues the same track: no sequence gap at the switch.
    await until(() => aTrackOfB.length > before + 10, 5000, 'A receiving B again');
    for (let i = Math.max(1, before - 20); i < aTrackOfB.length; i++) {
      assert.equal((aTrackOfB[i]!.sequenceNumber - aTrackOfB[i - 1]!.sequenceNumber) & 0xffff, 1, `sequence step at ${i}`);
    }
  });

  it('refuses a subscription to someone who is not in the room', async () => {
    const error = await clients[0]!.expectError({ type: 'subscription', participantId: 'p-nobody', muted: true });
    assert.equal(error.code, 'ROOM_ERR_UNKNOWN_PARTICIPANT');
  });

  it('a participant who leaves is removed from the others by renegotiation', async () => {
    const [a, b, c] = clients as [TestClient, TestClient, TestClient];
    const midOnA = midOf(a, ids[2]!)!;
    const midOnB = midOf(b, ids[2]!)!;
    const answered = [a.serverOffersAnswered, b.serverOffersAnswered];
    const left = Promise.all([a, b].map((x) => x.next((m) => m.type === 'participant' && m.event === 'left' && m.participant.participantId === ids[2])));
    await c.close();
    await left;
    await Promise.all([a.serverOffersAnsweredReach(answered[0]! + 1), b.serverOffersAnsweredReach(answered[1]! + 1)]);
    for (const [client, mid] of [[a, midOnA], [b, midOnB]] as const) {
      assert.equal(midOf(client, ids[2]!), undefined, 'the track mapping no longer lists the participant');
      const transceiver = client.pc!.getTransceivers().find((t) => t.mid === mid);
      assert.equal(transceiver?.currentDirection, 'inactive', 'the m-line is inactive after the renegotiation');
    }
    // The two who stay still hear each other, also after A restarts ICE with the inactive m-line in its offer.
    const mark = a.messages.length;
    await a.restartIce();
    const errors = a.messages.slice(mark).filter((m) => m.type === 'error');
    assert.deepEqual(errors, [], 'the restart offer is answered');
    const count = a.receivedByMid.get(midOf(a, ids[1]!)!)!.length;
    await until(() => a.receivedByMid.get(midOf(a, ids[1]!)!)!.length > count + 10, 5000, 'A still receiving B');
  });
});

describe('room: a renegotiation offer crossing a client offer (glare)', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ICE_RESTART_RETRY_MS: '10000' });
  });
  after(async () => {
    await server.close();
  });

  it('the server keeps its offer (SIG_ERR_GLARE); the client rolls back, answers, and gets the new track', async () => {
    const a = await TestClient.connect(server.wsUrl, { room: 'glare' });
    const b = await TestClient.connect(server.wsUrl, { room: 'glare' }, { manualOffers: true });
    try {
      // B's connection is up: the server offers it A's track. B, meanwhile, sends an offer of its own
      // (a plain re-offer: a werift client cannot roll back an ICE restart it has already applied).
      const offer = await b.waitFor<Extract<ServerMessage, { type: 'offer' | 'answer' }>>((m) => m.type === 'offer');
      const glare = b.next((m) => m.type === 'error', 5000);
      const pc = b.pc!;
      await pc.setLocalDescription(await pc.createOffer());
      b.send({ type: 'offer', sdp: pc.localDescription!.sdp });
      const error = await glare;
      assert.ok(error.type === 'error');
      assert.equal(error.code, 'SIG_ERR_GLARE');
      assert.equal(b.pc!.signalingState, 'have-local-offer');
      await b.answerServerOffer(offer.sdp);
      assert.equal(b.pc!.signalingState, 'stable');
      const idOfA = a.messages.find((m): m is RoomMessage => m.type === 'room')!.participantId;
      const mid = midOf(b, idOfA);
      assert.ok(mid, 'the tracks message names the m-line of A');
      await until(() => (b.receivedByMid.get(mid)?.length ?? 0) > 10, 10_000, 'A forwarded to B');
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('room: the publish and subscribe grants', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ ECHO_END_SILENCE_MS: '600' });
  });
  after(async () => {
    await server.close();
  });

  it('without publish, a participant is heard by no one; without subscribe, it hears no one; neither can lift it', async () => {
    const grants = (list: Grant[]) => ({ token: () => mintTestToken({ identity: 'g-' + list.join('-'), grants: list }), identity: 'g-' + list.join('-') });
    const speaker = await TestClient.connect(server.wsUrl, { room: 'grants' });
    const listener = await TestClient.connect(server.wsUrl, { room: 'grants' }, grants(['join', 'subscribe']));
    const deaf = await TestClient.connect(server.wsUrl, { room: 'grants' }, grants(['join', 'publish']));
    try {
      const idOf = (c: TestClient) => c.messages.find((m): m is RoomMessage => m.type === 'room')!.participantId;
      const room = deaf.messages.find((m): m is RoomMessage => m.type === 'room')!;
      assert.equal(room.participants.find((p) => p.participantId === idOf(listener))?.muted, true, 'the room sees the listener muted');
      // Speaker and listener both talk (the deaf one too); the speaker is heard by the listener.
      const [a, b, c] = [spoken(talker(5, 30, 440)), spoken(talker(6, 30, 660)), spoken(talker(7, 30, 880))];
      const t0 = performance.now();
      await Promise.all([speaker.speak(a.packets), listener.speak(b.packets), deaf.speak(c.packets)]);
      const t1 = performance.now();
      await until(() => between(listener.receivedByMid.get(midOf(listener, idOf(speaker)) ?? ''), t0, t1 + 300).length >= 140, 10_000, 'the speaker forwarded to the listener');
      await until(() => between(speaker.receivedByMid.get(midOf(speaker, idOf(deaf)) ?? ''), t0, t1 + 300).length >= 140, 10_000, 'the deaf one forwarded to the speaker');
      // The listener's audio reached nobody: no packet on its track at the speaker's.
      const fromListener = speaker.receivedByMid.get(midOf(speaker, idOf(listener)) ?? '') ?? [];
      assert.equal(fromListener.filter((p) => p.payload.length > 10).length, 0, 'nothing of the listener was forwarded');
      // The one without subscribe was never offered a track.
      assert.equal(deaf.receivedByMid.size, 0);
      assert.equal(deaf.messages.filter((m) => m.type === 'tracks').length, 0);
      // Nor can they lift it.
      assert.equal((await listener.expectError({ type: 'mute', muted: false })).code, 'AUTH_ERR_MISSING_GRANT');
      assert.equal((await deaf.expectError({ type: 'subscribe', participantIds: [idOf(speaker)] })).code, 'AUTH_ERR_MISSING_GRANT');
      assert.equal((await deaf.expectError({ type: 'subscription', participantId: idOf(speaker), muted: false })).code, 'AUTH_ERR_MISSING_GRANT');
    } finally {
      await Promise.all([speaker.close(), listener.close(), deaf.close()]);
    }
  });
});
