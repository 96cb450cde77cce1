// The agent in a room that listens to everyone (ROOM_AGENT_LISTENS=all): two werift participants
// each ask a question; the agent (hosted by the first one's session) answers both, one at a time,
// in audio everyone hears, and each turn names the participant who spoke. When the host leaves, the
// agent moves to the next participant and goes on.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { encodePackets } from '../helpers/audio.ts';
import { fliteSpeech } from '../helpers/flite-speech.ts';
import type { ServerMessage } from '../../signaling/protocol.ts';

type RoomMessage = Extract<ServerMessage, { type: 'room' }>;
type TurnMessage = Extract<ServerMessage, { type: 'turn' }>;
type Transcript = Extract<ServerMessage, { type: 'transcript' }>;

async function say(client: TestClient, text: string): Promise<void> {
  await client.speak(encodePackets(await fliteSpeech(text, 200)));
}

describe('room agent listening to every participant', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ VOICE_DEFAULT_MODE: 'stt_tts', MEDIA_WORKERS: '1', ROOM_AGENT_LISTENS: 'all' });
  });
  after(async () => {
    await server?.close();
  });

  it('answers each participant and attributes every turn to its speaker', async () => {
    const host = await TestClient.connect(server.wsUrl, { room: 'table' });
    const guest = await TestClient.connect(server.wsUrl, { room: 'table' });
    try {
      const idOf = (c: TestClient) => c.messages.find((m): m is RoomMessage => m.type === 'room')!.participantId;
      const room = guest.messages.find((m): m is RoomMessage => m.type === 'room')!;
      assert.equal(room.agentListensTo, idOf(host));
      assert.equal(room.agentListensToAll, true);

      const first = host.next<TurnMessage>((m) => m.type === 'turn', 30_000);
      await say(host, 'what time is it');
      const turn0 = (await first).turn;
      assert.equal(turn0.speaker, idOf(host));
      assert.match(turn0.agentText ?? '', /\d|time/i);

      // The guest speaks: its turn is answered too, in audio the guest receives on its own track.
      const guestAudioBefore = guest.received.length;
      const second = host.next<TurnMessage>((m) => m.type === 'turn', 30_000);
      await say(guest, 'what can you do');
      const turn1 = (await second).turn;
      assert.equal(turn1.index, 1);
      assert.equal(turn1.speaker, idOf(guest), 'the turn names the guest');
      assert.ok(turn1.userText, 'the guest was recognised');
      assert.ok(turn1.agentAudioMs > 500, `answer audio ${turn1.agentAudioMs} ms`);
      const heard = (guest.received.length - guestAudioBefore) * 20;
      assert.ok(heard >= turn1.agentAudioMs * 0.9, `the guest received ${heard} ms of the ${turn1.agentAudioMs} ms answer`);
      const transcript = host.messages.find((m): m is Transcript => m.type === 'transcript' && m.role === 'user' && m.final && m.speaker === idOf(guest));
      assert.equal(transcript?.text, turn1.userText);
      assert.deepEqual(server.sessions.get(host.sessionId)!.history.map((t) => t.speaker), [idOf(host), idOf(guest)]);

      // The host leaves: the agent moves to the guest's session and goes on answering it.
      await host.close();
      await guest.waitFor((m) => m.type === 'participant' && m.event === 'left', 10_000);
      const third = guest.next<TurnMessage>((m) => m.type === 'turn', 30_000);
      await say(guest, 'hello there');
      const turn = (await third).turn;
      assert.equal(turn.speaker, idOf(guest));
      assert.ok(turn.agentAudioMs > 0);
    } finally {
      await Promise.all([host.close(), guest.close()]);
    }
  });
});
