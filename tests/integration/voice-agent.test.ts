// The embedded voice agent end to end over real WebRTC on loopback: a werift client speaks
// flite-generated questions; the server's local pipeline (Silero VAD, turn detection, pocketsphinx,
// the rule agent, flite) answers with audio and records the turn.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { encodePackets } from '../helpers/audio.ts';
import { fliteSpeech } from '../helpers/flite-speech.ts';
import { wordErrorRate } from '../helpers/word-error-rate.ts';
import type { ServerMessage } from '../../signaling/protocol.ts';
import type { ConversationTurn } from '../../server/session-types.ts';

type Transcript = Extract<ServerMessage, { type: 'transcript' }>;
type TurnMessage = Extract<ServerMessage, { type: 'turn' }>;

async function say(client: TestClient, text: string): Promise<void> {
  await client.speak(encodePackets(await fliteSpeech(text, 200)));
}

const nextTurn = (client: TestClient, timeoutMs = 20_000): Promise<ConversationTurn> =>
  client.next<TurnMessage>((m) => m.type === 'turn', timeoutMs).then((m) => m.turn);

describe('voice agent (stt_tts, local providers)', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ VOICE_DEFAULT_MODE: 'stt_tts', MEDIA_WORKERS: '1' });
  });
  after(async () => {
    await server?.close();
  });

  it('answers "what time is it" with the time, in speech, and records the turn', async () => {
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
    try {
      const question = 'what time is it';
      const turnPromise = nextTurn(client);
      await say(client, question);
      const turn = await turnPromise;
      assert.equal(turn.mode, 'stt_tts');
      assert.ok(turn.userText, 'a transcript');
      assert.ok(wordErrorRate(question, turn.userText!) <= 0.5, `heard "${turn.userText}"`);
      assert.match(turn.agentText ?? '', /\d{1,2}(:\d{2})?|o'clock|time/i);
      assert.equal(turn.heardText, turn.agentText);
      assert.equal(turn.interrupted, false);
      assert.ok(turn.agentAudioMs > 500, `answer audio ${turn.agentAudioMs} ms`);
      const t = turn.timings;
      assert.ok(t.sttFinalAt! >= t.endOfTurnAt && t.agentFirstTextAt! >= t.sttFinalAt! && t.ttsFirstAudioAt! >= t.agentFirstTextAt!, JSON.stringify(t));
      assert.ok(t.firstPacketOutAt! >= t.ttsFirstAudioAt!, JSON.stringify(t));
      const finalUser = client.messages.find((m): m is Transcript => m.type === 'transcript' && m.role === 'user' && m.final);
      assert.equal(finalUser?.text, turn.userText);
      // The answer really arrived as audio: about as long as the turn says.
      const arrived = client.received.filter((p) => p.at >= 0).length * 20;
      assert.ok(arrived >= turn.agentAudioMs * 0.9, `received ${arrived} ms of ${turn.agentAudioMs} ms`);
    } finally {
      await client.close();
    }
  });

  it('recognises a small set of spoken sentences over WebRTC (mean word error rate <= 0.25)', async () => {
    // Bound: pocketsphinx measured ~3% WER on flite speech fed directly (tests/unit/providers); over
    // WebRTC the audio is Opus-coded and jitter-buffered, so allow a margin that still fails a broken
    // path (a wrong sample rate or lost frames push WER far above 0.5).
    const sentences = ['hello there', 'what can you do', 'say that again', 'tell me the time please'];
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
    try {
      const rates: number[] = [];
      for (const sentence of sentences) {
        const turn = nextTurn(client, 30_000);
        await say(client, sentence);
        const heard = (await turn).userText ?? '';
        rates.push(wordErrorRate(sentence, heard));
      }
      const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
      assert.ok(mean <= 0.25, `mean WER ${mean.toFixed(2)} (${rates.map((r) => r.toFixed(2)).join(', ')})`);
    } finally {
      await client.close();
    }
  });

  it('barge-in: speaking over the answer stops its audio within 100 ms and records what was heard', async () => {
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
    try {
      const first = nextTurn(client, 30_000);
      await say(client, 'what can you do');
      // Wait until the answer is well under way, then interrupt.
      await client.waitFor((m) => m.type === 'state' && m.state === 'responding', 20_000);
      const startedAt = performance.now();
      while (client.received.length === 0 || performance.now() - client.received[client.received.length - 1].at > 5) {
        await new Promise((resolve) => setImmediate(resolve));
      }
      const sentenceWhileAnswering = say(client, 'hello there my friend');
      const bargeIn = await client.next((m) => m.type === 'speech' && m.event === 'barge_in', 10_000);
      const bargeInAt = performance.now();
      const interrupted = await first;
      await sentenceWhileAnswering;
      assert.ok(bargeIn);
      assert.equal(interrupted.interrupted, true);
      assert.ok(interrupted.heardText!.length < interrupted.agentText!.length, `heard "${interrupted.heardText}" of "${interrupted.agentText}"`);
      assert.ok(interrupted.agentText!.startsWith(interrupted.heardText!.split(' ').slice(0, -1).join(' ')));
      const late = client.received.filter((p) => p.at > bargeInAt + 100 && p.at < bargeInAt + 1000);
      assert.equal(late.length, 0, `${late.length} packets arrived more than 100 ms after the barge-in`);
      assert.ok(performance.now() - startedAt < 30_000);
      // The interruption is the next turn.
      const second = await nextTurn(client, 30_000);
      assert.ok(second.userText, 'the interrupting words became the next turn');
    } finally {
      await client.close();
    }
  });

  it('a client without echo cancellation (audio looped back) does not interrupt the agent', async () => {
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true, loopback: true });
    try {
      const turnPromise = nextTurn(client, 30_000);
      await say(client, 'what can you do');
      const turn = await turnPromise;
      assert.equal(turn.interrupted, false, `self-interrupted after ${turn.heardAudioMs} ms`);
      assert.ok(turn.agentAudioMs > 1000);
      assert.equal(client.messages.filter((m) => m.type === 'speech' && m.event === 'barge_in').length, 0);
    } finally {
      await client.close();
    }
  });
});
