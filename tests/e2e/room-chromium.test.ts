// Chromium plus two werift clients in one room: the browser answers the server's renegotiation
// offers (one m-line per remote participant, msid stream id = participant id), plays both others,
// is heard by them, is not answered by the agent (which listens to the designated participant only,
// and answers everyone), sees a leaver's m-line go inactive, and can still restart ICE afterwards with
// that m-line in its offer. The page drives a bare RTCPeerConnection (the protocol, not the SDK).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { launchChromium, type ChromiumSession } from '../helpers/chromium.ts';
import { SPEECH_WAV, speechPackets } from '../helpers/audio.ts';
import { mintTestToken, testIdentity } from '../helpers/auth.ts';
import type { ServerMessage } from '../../signaling/protocol.ts';

interface PageState {
  messages: ServerMessage[];
  errors: string[];
  tracks: { mid: string | null; streamId: string | null }[];
}

type RoomWindow = Window & {
  room: PageState;
  pc: RTCPeerConnection;
  inbound(): Promise<Record<string, number>>;
  restart(): void;
};

// The page's client, as plain JavaScript: the test loader would add helpers to a TypeScript function
// that the page does not have. Joins `room` with a bare peer connection, answers every server offer,
// trickles candidates; `restart()` restarts ICE, `inbound()` counts packets per mid.
const PAGE_CLIENT = String.raw`async ({ wsUrl, token, room }) => {
  const state = { messages: [], errors: [], tracks: [] };
  window.room = state;
  const ws = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const send = (m) => ws.send(JSON.stringify(m));
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  const pc = (window.pc = new RTCPeerConnection());
  pc.addTransceiver(mic.getAudioTracks()[0], { direction: 'sendrecv', streams: [mic] });
  pc.ontrack = (e) => {
    state.tracks.push({ mid: e.transceiver.mid, streamId: e.streams[0] ? e.streams[0].id : null });
    const audio = document.createElement('audio');
    audio.srcObject = e.streams[0] || new MediaStream([e.track]);
    audio.play().catch(() => undefined);
  };
  pc.onicecandidate = (e) => send({ type: 'candidate', candidate: e.candidate ? e.candidate.toJSON() : null });
  let chain = Promise.resolve();
  const early = [];
  const serially = (work) => (chain = chain.then(work).catch((err) => { state.errors.push(String(err)); }));
  ws.onmessage = (event) => {
    const m = JSON.parse(event.data);
    state.messages.push(m);
    if (m.type === 'offer') {
      serially(async () => {
        await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
        await pc.setLocalDescription();
        send({ type: 'answer', sdp: pc.localDescription.sdp });
      });
    } else if (m.type === 'answer') {
      serially(async () => {
        await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
        for (const c of early.splice(0)) await pc.addIceCandidate(c);
      });
    } else if (m.type === 'candidate' && m.candidate) {
      // The server trickles candidates of its answer before the answer itself: hold them until then.
      serially(async () => (pc.remoteDescription ? pc.addIceCandidate(m.candidate) : early.push(m.candidate)));
    }
    else if (m.type === 'error') state.errors.push(m.code + ': ' + m.message);
  };
  window.restart = () => {
    pc.restartIce();
    serially(async () => {
      await pc.setLocalDescription();
      send({ type: 'offer', sdp: pc.localDescription.sdp });
    });
  };
  window.inbound = async () => {
    const counts = {};
    (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') counts[s.mid] = s.packetsReceived; });
    return counts;
  };
  send({ type: 'join', room, token, mode: 'echo' });
  await new Promise((resolve) => {
    const check = () => (state.messages.some((m) => m.type === 'joined') ? resolve(null) : setTimeout(check, 20));
    check();
  });
  await pc.setLocalDescription();
  send({ type: 'offer', sdp: pc.localDescription.sdp });
}`;

function joinFromPage(page: Page, wsUrl: string, token: string, room: string): Promise<void> {
  return page.evaluate(`(${PAGE_CLIENT})(${JSON.stringify({ wsUrl, token, room })})`) as Promise<void>;
}

async function until(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const pageState = (page: Page) => page.evaluate(() => (window as unknown as RoomWindow).room);
const inbound = (page: Page) => page.evaluate(() => (window as unknown as RoomWindow).inbound());

function midOf(state: PageState, participantId: string): string | undefined {
  const latest = state.messages.filter((m): m is Extract<ServerMessage, { type: 'tracks' }> => m.type === 'tracks').at(-1);
  return latest?.tracks.find((t) => t.participantId === participantId)?.mid;
}

describe('room with Chromium and two werift clients', () => {
  let server: RunningServer;
  let chromium: ChromiumSession;
  const clients: TestClient[] = [];
  const ids: string[] = [];

  before(async () => {
    server = await startServer();
    for (let i = 0; i < 2; i++) {
      const client = await TestClient.connect(server.wsUrl, { room: 'mixed' });
      clients.push(client);
      ids.push((await client.waitFor<Extract<ServerMessage, { type: 'room' }>>((m) => m.type === 'room')).participantId);
    }
    chromium = await launchChromium({ fakeAudioCapture: SPEECH_WAV });
  });

  after(async () => {
    for (const client of clients) await client.close();
    await chromium?.close();
    await server.close();
  });

  it('answers the room offers, receives both, is heard by both, is not answered by the agent, and survives a leave and an ICE restart', async () => {
    const { page } = chromium;
    await page.goto(`${server.url}/healthz`); // same origin as the WebSocket: Chromium blocks it from about:blank
    await joinFromPage(page, server.wsUrl, await mintTestToken({ identity: testIdentity('chromium'), room: 'mixed' }), 'mixed');
    await until(async () => {
      const state = await pageState(page);
      const counts = await inbound(page);
      return ids.every((id) => (counts[midOf(state, id) ?? ''] ?? 0) > 50);
    }, 20_000, 'Chromium to receive both werift participants');
    const state = await pageState(page);
    assert.deepEqual(state.errors, []);
    for (const id of ids) {
      const mid = midOf(state, id);
      assert.ok(state.tracks.some((t) => t.mid === mid && t.streamId === id), `the msid stream id of mid ${mid} is ${id}`);
    }
    const browserId = state.messages.find((m): m is Extract<ServerMessage, { type: 'room' }> => m.type === 'room')!.participantId;
    for (const client of clients) {
      await until(async () => (client.receivedByMid.get(midOfClient(client, browserId) ?? '')?.length ?? 0) > 50, 10_000, 'the browser heard by a werift client');
    }

    // The agent (here the echo) listens to the designated participant only: the first werift client.
    // The second one speaks first, then the first one: only the first is answered, and everyone hears it.
    const answered = clients[0]!.next<Extract<ServerMessage, { type: 'turn' }>>((m) => m.type === 'turn', 20_000);
    await clients[1]!.speak(speechPackets(800).packets);
    const othersBefore = clients[1]!.received.length;
    await clients[0]!.speak(speechPackets(600).packets);
    const turn = (await answered).turn;
    assert.equal(turn.index, 0, 'the second client was not answered');
    const histories = [...server.sessions.all()].filter((s) => s.room === 'mixed').map((s) => s.history.length);
    assert.deepEqual(histories.sort(), [0, 0, 1], 'one turn in the room: the designated participant\'s');
    await until(async () => clients[1]!.received.length - othersBefore > 100, 10_000, 'the answer on the other werift client');

    // The second werift client leaves: its m-line goes inactive in the browser.
    const leaverMid = midOf(state, ids[1]!)!;
    await clients[1]!.close();
    await until(async () => {
      // Chromium stops a transceiver whose m-line an offer sets to port 0, and drops it from the list.
      const direction = await page.evaluate((mid) => (window as unknown as RoomWindow).pc.getTransceivers().find((t) => t.mid === mid)?.currentDirection ?? 'gone', leaverMid);
      return direction === 'gone' || direction === 'inactive' || direction === 'stopped';
    }, 10_000, 'the leaver\'s m-line to go inactive in Chromium');

    assert.equal(midOf(await pageState(page), ids[1]!), undefined, 'the track mapping no longer lists the leaver');
    // A browser ICE restart offers the inactive m-line too; the server answers it and media goes on.
    const before = (await inbound(page))[midOf(await pageState(page), ids[0]!)!] ?? 0;
    await page.evaluate(() => (window as unknown as RoomWindow).restart());
    await until(async () => ((await inbound(page))[midOf(await pageState(page), ids[0]!)!] ?? 0) > before + 100, 10_000, 'media after the browser\'s ICE restart');
    const after = await pageState(page);
    assert.deepEqual(after.errors, [], chromium.log.join('\n'));
  });
});

function midOfClient(client: TestClient, participantId: string): string | undefined {
  const latest = client.messages.filter((m): m is Extract<ServerMessage, { type: 'tracks' }> => m.type === 'tracks').at(-1);
  return latest?.tracks.find((t) => t.participantId === participantId)?.mid;
}
