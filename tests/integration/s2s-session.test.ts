// Speech-to-speech mode end to end: a werift client speaks flite sentences over real WebRTC on
// loopback; the server's listening pipeline streams the user's turns to a local stand-in for the
// OpenAI Realtime API, which answers with scripted audio and transcripts; the client hears that
// audio, gets the transcripts and the turn. Barge-in (and a dead media path) cancels and truncates
// the provider's answer, a short "mhm" over it does not reach the provider, and a provider that
// refuses the handshake or drops mid-answer is reported without ending the session or leaving
// turns hanging.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { TestClient } from '../helpers/werift-client.ts';
import { concatPcm, decodeStream, encodePackets, envelope, envelopeSimilarity } from '../helpers/audio.ts';
import { fliteSpeech } from '../helpers/flite-speech.ts';
import { OpenAiRealtimeTestServer, scriptedResponse, type RealtimeTestConnection, type WireEvent } from '../helpers/vendors/openai-realtime-server.ts';
import { PcmResampler } from '../../media/pcm-resampler.ts';
import type { ServerMessage } from '../../signaling/protocol.ts';
import type { ConversationTurn } from '../../server/session-types.ts';

type TurnMessage = Extract<ServerMessage, { type: 'turn' }>;
type Transcript = Extract<ServerMessage, { type: 'transcript' }>;

const API_KEY = 'sk-test-s2s-not-a-real-key';
// What the server streams after the user's turn ends: the turn detector's end silence (default
// TURN_END_SILENCE_MS) and the conversation's own trailing silence (800 ms), less what the adapter
// may still hold back in an unsent batch (< 60 ms).
const MIN_TRAILING_QUIET_MS = 500 + 800 - 60;
const QUIET = 64; // |sample| at or below: silence (Opus-decoded digital silence is not always exactly 0)

const nextTurn = (client: TestClient, timeoutMs = 20_000): Promise<ConversationTurn> =>
  client.next<TurnMessage>((m) => m.type === 'turn', timeoutMs).then((m) => m.turn);

/** 16 kHz flite speech raised to the 24 kHz the Realtime API speaks. */
async function agentSpeech(text: string): Promise<{ pcm16k: Int16Array; pcm24k: Int16Array }> {
  const pcm16k = await fliteSpeech(text, 0);
  return { pcm16k, pcm24k: new PcmResampler(16000, 24000).push(pcm16k) };
}

function appendedSince(events: WireEvent[], from: number): Int16Array {
  return concatPcm(
    events.slice(from).filter((e) => e.type === 'input_audio_buffer.append').map((e) => {
      const bytes = Buffer.from(e.audio as string, 'base64');
      return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    }),
  );
}

/** How the 24 kHz audio the provider received is made: where the voice is, and the quiet after it. */
function analyse(pcm24k: Int16Array): { voiced: boolean; trailingQuietMs: number; pcm: Int16Array } {
  let last = pcm24k.length - 1;
  while (last >= 0 && Math.abs(pcm24k[last]) <= QUIET) last--;
  const trailingQuietMs = ((pcm24k.length - 1 - last) / 24000) * 1000;
  const voiced = envelope(pcm24k, 480).some((db) => db > -40);
  return { voiced, trailingQuietMs, pcm: pcm24k };
}

/** The test stand-in waits without a limit: every wait on it gets one, so a missing event fails the test. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves once the provider has been sent a spoken turn and its trailing silence (after event index `from`). */
function turnStreamed(connection: RealtimeTestConnection, from: number): Promise<Int16Array> {
  const streamed = connection.until((events) => {
    const { voiced, trailingQuietMs, pcm } = analyse(appendedSince(events, from));
    return voiced && trailingQuietMs >= MIN_TRAILING_QUIET_MS ? pcm : undefined;
  });
  return within(streamed, 15_000, 'the user turn and its trailing silence at the provider');
}

const sent = (connection: RealtimeTestConnection, type: string, ms = 5000): Promise<WireEvent> => within(connection.first(type), ms, type);

/** Span (ms) of the 20 ms windows louder than -40 dBFS, first to last. */
function voicedSpanMs(levels: number[]): number {
  const loud = levels.map((db, i) => (db > -40 ? i : -1)).filter((i) => i >= 0);
  return loud.length === 0 ? 0 : (loud[loud.length - 1] - loud[0] + 1) * 20;
}

function userTranscript(itemId: string, transcript: string): WireEvent {
  return { type: 'conversation.item.input_audio_transcription.completed', item_id: itemId, content_index: 0, transcript };
}

/** Polls a condition on what the client has received (packets carry no event of their own). */
async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('s2s mode (OpenAI Realtime stand-in)', () => {
  let realtime: OpenAiRealtimeTestServer;
  let server: RunningServer;
  before(async () => {
    realtime = await OpenAiRealtimeTestServer.start();
    server = await startServer({
      VOICE_DEFAULT_MODE: 's2s',
      MEDIA_WORKERS: '1',
      OPENAI_API_KEY: API_KEY,
      OPENAI_REALTIME_URL: realtime.baseUrl,
      OPENAI_REALTIME_MODEL: 'gpt-realtime-test',
    });
  });
  after(async () => {
    await server?.close();
    await realtime?.close();
  });

  /** A client that asked the question: its turn has reached the provider, which has not answered yet. */
  async function ask(question: string): Promise<{ client: TestClient; provider: RealtimeTestConnection }> {
    const packets = encodePackets(await fliteSpeech(question, 200));
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
    try {
      const provider = await within(realtime.nextConnection(), 5000, 'the provider connection');
      await sent(provider, 'session.update');
      await client.speak(packets);
      await turnStreamed(provider, 0);
      return { client, provider };
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  it('streams the user turn to the provider and plays its answer, with transcripts and the turn', async () => {
    const question = 'what will the weather be like in paris tomorrow';
    const questionPcm = await fliteSpeech(question, 200);
    const answer = await agentSpeech('sunny and warm');
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
    try {
      const provider = await within(realtime.nextConnection(), 5000, 'the provider connection');
      assert.equal(provider.url.searchParams.get('model'), 'gpt-realtime-test');
      assert.equal(provider.headers.authorization, `Bearer ${API_KEY}`);
      const update = await sent(provider, 'session.update');
      assert.equal((update.session as { type: string }).type, 'realtime');

      const from = provider.received.length;
      await client.speak(encodePackets(questionPcm));
      const streamed = await turnStreamed(provider, from);
      // The user's words went up: the provider's audio has the sentence's loudness contour and length.
      const streamedLevels = envelope(streamed, 480);
      const spokenLevels = envelope(questionPcm);
      const similarity = envelopeSimilarity(spokenLevels, streamedLevels, 100);
      assert.ok(similarity.correlation > 0.8, `streamed audio is not the sentence: ${JSON.stringify(similarity)}`);
      const spokenMs = voicedSpanMs(spokenLevels);
      const sentMs = voicedSpanMs(streamedLevels);
      assert.ok(Math.abs(sentMs - spokenMs) <= 200, `streamed ${sentMs} ms of voice for a ${spokenMs} ms sentence`);
      await client.waitFor((m) => m.type === 'speech' && m.event === 'end_of_turn');

      // The provider answers; the first transcript piece comes before any audio, as the real one may.
      const pieces = ['Sunny ', 'and ', 'warm.'];
      const response = scriptedResponse({ responseId: 'resp_1', itemId: 'item_a1', audio: answer.pcm24k, deltaSamples: 2400, transcript: pieces });
      const firstText = response.deltas.findIndex((e) => e.type === 'response.output_audio_transcript.delta');
      const [textFirst] = response.deltas.splice(firstText, 1);
      const turnPromise = nextTurn(client);
      provider.send(userTranscript('item_u1', question), ...response.start, textFirst, ...response.deltas, ...response.end);
      const turn = await turnPromise;

      const answerMs = (answer.pcm16k.length / 16000) * 1000;
      assert.equal(turn.mode, 's2s');
      assert.equal(turn.userText, question);
      assert.equal(turn.agentText, 'Sunny and warm.');
      assert.equal(turn.heardText, turn.agentText);
      assert.equal(turn.interrupted, false);
      assert.ok(Math.abs(turn.agentAudioMs - answerMs) <= 40, `turn says ${turn.agentAudioMs} ms of answer, scripted ${answerMs} ms`);
      assert.ok(turn.userAudioMs > 1000, `user audio ${turn.userAudioMs} ms`);
      assert.ok(turn.timings.firstPacketOutAt! >= turn.timings.endOfTurnAt, JSON.stringify(turn.timings));

      // The answer reached the client over WebRTC: as long as scripted, and it is that audio.
      await until(() => client.received.length * 20 >= answerMs - 20, 2000, 'the answer audio');
      const receivedMs = client.received.length * 20;
      assert.ok(receivedMs >= answerMs - 20 && receivedMs <= answerMs + 60, `received ${receivedMs} ms of a ${answerMs} ms answer`);
      const heard = envelopeSimilarity(envelope(answer.pcm16k), envelope(decodeStream(client.received)), 10);
      assert.ok(heard.correlation > 0.8, `received audio is not the answer: ${JSON.stringify(heard)}`);

      const transcripts = client.messages.filter((m): m is Transcript => m.type === 'transcript');
      assert.ok(transcripts.some((t) => t.role === 'user' && t.final && t.text === question), JSON.stringify(transcripts));
      const agent = transcripts.filter((t) => t.role === 'agent');
      assert.deepEqual(agent.filter((t) => !t.final).map((t) => t.text), ['Sunny ', 'Sunny and ', 'Sunny and warm.']);
      assert.equal(agent.filter((t) => t.final).at(-1)?.text, 'Sunny and warm.');
      assert.equal(client.messages.filter((m) => m.type === 'error').length, 0);
      await client.waitFor((m) => m.type === 'state' && m.state === 'listening' && m.previous === 'responding');
    } finally {
      await client.close();
    }
  });

  it('barge-in cancels and truncates the answer, stops its audio, and the interruption is the next turn', async () => {
    const first = 'what will the weather be like in paris tomorrow';
    const second = 'stop, tell me about london instead';
    const [firstPackets, secondPackets] = [encodePackets(await fliteSpeech(first, 200)), encodePackets(await fliteSpeech(second, 200))];
    const longAnswerText =
      'Paris will be sunny all day with a light breeze from the west, and temperatures will reach twenty five degrees in the afternoon before clouds arrive late in the evening.';
    const longAnswer = await agentSpeech(longAnswerText);
    const shortAnswer = await agentSpeech('London will be rainy.');
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
    try {
      const provider = await within(realtime.nextConnection(), 5000, 'the provider connection');
      await sent(provider, 'session.update');
      await client.speak(firstPackets);
      await turnStreamed(provider, 0);

      // A 9 s answer, all of its audio at once (the service sends faster than real time); its end is held back.
      const words = longAnswerText.split(' ').map((w, i, all) => (i < all.length - 1 ? `${w} ` : w));
      const long = scriptedResponse({ responseId: 'resp_long', itemId: 'item_long', audio: longAnswer.pcm24k, deltaSamples: 2400, transcript: words });
      const interrupted = nextTurn(client, 30_000);
      provider.send(userTranscript('item_u1', first), ...long.start, ...long.deltas);
      await until(() => client.received.length >= 50, 10_000, 'a second of the answer');

      const secondFrom = provider.received.length;
      const speaking = client.speak(secondPackets);
      const cancel = await sent(provider, 'response.cancel');
      const cancelAt = performance.now();
      const truncate = await sent(provider, 'conversation.item.truncate');
      const turn = await interrupted;
      assert.equal(cancel.response_id, 'resp_long');
      await client.waitFor((m) => m.type === 'speech' && m.event === 'barge_in', 1000);
      assert.equal(turn.interrupted, true);
      assert.equal(turn.userText, first);
      assert.equal(turn.agentText, longAnswerText);
      assert.ok(turn.heardText && turn.heardText.length < turn.agentText.length, `heard "${turn.heardText}"`);
      assert.ok(turn.agentText.startsWith(turn.heardText), `heard "${turn.heardText}" is not the start of the answer`);
      assert.ok(turn.heardAudioMs >= 900 && turn.heardAudioMs < turn.agentAudioMs / 2, `heard ${turn.heardAudioMs} of ${turn.agentAudioMs} ms`);
      // The provider's copy of the answer is cut where the user stopped hearing it.
      assert.equal(truncate.item_id, 'item_long');
      assert.ok(Math.abs((truncate.audio_end_ms as number) - turn.heardAudioMs) <= 250, `truncated at ${truncate.audio_end_ms} ms, heard ${turn.heardAudioMs} ms`);

      // The interrupting words are streamed as the next turn; meanwhile no answer audio arrives.
      await speaking;
      const streamed = await turnStreamed(provider, secondFrom);
      assert.ok(voicedSpanMs(envelope(streamed, 480)) > 1500, 'the interrupting sentence was streamed');
      const late = client.received.filter((p) => p.at > cancelAt + 100);
      assert.equal(late.length, 0, `${late.length} packets arrived more than 100 ms after the provider got response.cancel`);
      const receivedMs = client.received.length * 20;
      assert.ok(Math.abs(receivedMs - turn.heardAudioMs) <= 100, `received ${receivedMs} ms, heard ${turn.heardAudioMs} ms`);

      // The next answer is the interruption's own: nothing of the cancelled one leaks into it.
      const before = client.received.length;
      const next = nextTurn(client);
      const short = scriptedResponse({ responseId: 'resp_2', itemId: 'item_a2', audio: shortAnswer.pcm24k, deltaSamples: 2400, transcript: ['London ', 'will be rainy.'] });
      provider.send(userTranscript('item_u2', second), ...short.start, ...short.deltas, ...short.end);
      const answered = await next;
      assert.equal(answered.interrupted, false);
      assert.equal(answered.userText, second);
      assert.equal(answered.agentText, 'London will be rainy.');
      assert.equal(answered.heardText, answered.agentText);
      const shortMs = (shortAnswer.pcm16k.length / 16000) * 1000;
      await until(() => (client.received.length - before) * 20 >= shortMs - 20, 2000, 'the second answer audio');
      assert.equal(client.messages.filter((m) => m.type === 'error').length, 0);
      assert.deepEqual(client.turns().map((t) => t.interrupted), [true, false]);
    } finally {
      await client.close();
    }
  });

  it('a short "mhm" over the answer neither interrupts it nor reaches the provider', async () => {
    const mhm = await fliteSpeech('mhm', 0);
    let onset = 0;
    while (Math.abs(mhm[onset]) < 1000) onset++;
    // 200 ms of voice: a turn for the VAD, shorter than BARGE_IN_MIN_MS (300 ms), so dropped.
    const blip = encodePackets(mhm.subarray(onset, onset + 200 * 16));
    const answerText = 'it will be sunny and warm in paris all day tomorrow';
    const answer = await agentSpeech(answerText);
    const { client, provider } = await ask('what will the weather be like in paris tomorrow');
    try {
      const response = scriptedResponse({ responseId: 'resp_m', itemId: 'item_m', audio: answer.pcm24k, deltaSamples: 2400, transcript: [answerText] });
      const turnPromise = nextTurn(client);
      provider.send(...response.start, ...response.deltas, ...response.end);
      await until(() => client.received.length >= 25, 10_000, 'half a second of the answer');
      const from = provider.received.length;
      await client.speak(blip);
      const turn = await turnPromise;
      assert.equal(turn.interrupted, false);
      assert.equal(turn.heardText, answerText);
      assert.equal(client.messages.filter((m) => m.type === 'speech' && m.event === 'barge_in').length, 0);
      assert.deepEqual(provider.received.slice(from).map((e) => e.type), [], 'the provider heard nothing during the answer');
    } finally {
      await client.close();
    }
  });

  it('the provider dropping mid-answer: PROVIDER_ERR_S2S, what arrived plays and ends the turn, later turns are not left hanging', async () => {
    const answer = await agentSpeech('paris will be sunny all day with a light breeze from the west');
    const { client, provider } = await ask('what will the weather be like in paris tomorrow');
    try {
      const response = scriptedResponse({ responseId: 'resp_d', itemId: 'item_d', audio: answer.pcm24k, deltaSamples: 2400, transcript: ['Paris ', 'will be ', 'sunny'] });
      const turnPromise = nextTurn(client);
      // One second of the answer (10 audio deltas with their 3 transcript pieces), then the connection is cut without a close frame.
      provider.send(userTranscript('item_u1', 'what will the weather be like'), ...response.start, ...response.deltas.slice(0, 13));
      await until(() => client.received.length > 0, 5000, 'the answer audio');
      provider.drop();
      const error = await client.waitFor<Extract<ServerMessage, { type: 'error' }>>((m) => m.type === 'error', 5000);
      assert.equal(error.code, 'PROVIDER_ERR_S2S');
      const turn = await turnPromise;
      assert.equal(turn.interrupted, false);
      assert.equal(turn.userText, 'what will the weather be like');
      assert.equal(turn.agentText, 'Paris will be sunny');
      assert.ok(Math.abs(turn.agentAudioMs - 1000) <= 40, `answer ${turn.agentAudioMs} ms`);
      await until(() => client.received.length * 20 >= 980, 2000, 'the second of answer audio that arrived');

      // No provider any more: the next turn is heard and ends unanswered instead of staying in processing.
      const listening = client.next((m) => m.type === 'state' && m.state === 'listening' && m.previous === 'processing', 20_000);
      await client.speak(encodePackets(await fliteSpeech('hello are you still there', 200)));
      await listening;
      assert.equal(client.turns().length, 1);
      assert.equal(client.messages.filter((m) => m.type === 'error').length, 1);
    } finally {
      await client.close();
    }
  });

  it("media lost mid-answer: the provider's answer is cancelled too", async () => {
    const answerText = 'paris will be sunny all day with a light breeze from the west, and temperatures will reach twenty five degrees';
    const answer = await agentSpeech(answerText);
    const { client, provider } = await ask('what will the weather be like in paris tomorrow');
    try {
      const response = scriptedResponse({ responseId: 'resp_l', itemId: 'item_l', audio: answer.pcm24k, deltaSamples: 2400, transcript: [answerText] });
      const turnPromise = nextTurn(client, 10_000);
      provider.send(...response.start, ...response.deltas);
      await until(() => client.received.length >= 25, 10_000, 'half a second of the answer');
      client.micPaused = true; // the client's media stops reaching the server
      const cancel = await sent(provider, 'response.cancel');
      assert.equal(cancel.response_id, 'resp_l');
      const turn = await turnPromise;
      assert.equal(turn.interrupted, true);
      assert.ok(turn.agentText!.startsWith(turn.heardText!) && turn.heardText!.length < turn.agentText!.length, `heard "${turn.heardText}"`);
    } finally {
      await client.close();
    }
  });
});

describe('s2s mode, provider refusing the connection', () => {
  let realtime: OpenAiRealtimeTestServer;
  let server: RunningServer;
  before(async () => {
    realtime = await OpenAiRealtimeTestServer.start({
      refuseWith: { status: 401, body: { error: { type: 'invalid_request_error', code: 'invalid_api_key', message: `Incorrect API key provided: ${API_KEY}.` } } },
    });
    server = await startServer({ VOICE_DEFAULT_MODE: 's2s', MEDIA_WORKERS: '1', OPENAI_API_KEY: API_KEY, OPENAI_REALTIME_URL: realtime.baseUrl });
  });
  after(async () => {
    await server?.close();
    await realtime?.close();
  });

  it('reports PROVIDER_ERR_S2S without the key, and the session stays and keeps listening', async () => {
    const client = await TestClient.connect(server.wsUrl, {}, { mic: true });
    try {
      const error = await client.waitFor<Extract<ServerMessage, { type: 'error' }>>((m) => m.type === 'error', 10_000);
      assert.equal(error.code, 'PROVIDER_ERR_S2S');
      assert.match(error.message, /401/);
      assert.ok(!error.message.includes(API_KEY) && !error.message.includes('sk-'), error.message);
      assert.equal(realtime.refusedRequests.length, 1);
      assert.equal(realtime.refusedRequests[0].authorization, `Bearer ${API_KEY}`);

      // The session is still there and usable: a turn is heard, nothing answers it, and it goes back to listening.
      const listening = client.next((m) => m.type === 'state' && m.state === 'listening' && m.previous === 'processing', 20_000);
      await client.speak(encodePackets(await fliteSpeech('hello is anybody there', 200)));
      await client.waitFor((m) => m.type === 'speech' && m.event === 'end_of_turn', 10_000);
      await listening;
      const pong = client.next((m) => m.type === 'pong');
      client.send({ type: 'ping', id: 7 });
      assert.deepEqual(await pong, { type: 'pong', id: 7 });
      assert.equal(client.closeInfo, null);
      assert.ok(server.sessions.get(client.sessionId), 'the session is still open');
      assert.equal(client.turns().length, 0);
      assert.equal(client.received.length, 0);
      assert.equal(client.messages.filter((m) => m.type === 'error').length, 1, 'the failure is reported once');
    } finally {
      await client.close();
    }
  });
});
