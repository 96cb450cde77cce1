import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { OpenAiRealtimeS2s, type OpenAiRealtimeS2sOptions } from '../../../providers/openai-realtime/realtime-s2s.ts';
import { isAbort, ProviderError, type S2sEvent, type S2sOptions, type S2sSession } from '../../../providers/types.ts';
import { OpenAiRealtimeTestServer, scriptedResponse, type RealtimeTestConnection, type RealtimeTestServerOptions } from '../../helpers/vendors/openai-realtime-server.ts';
import { concatPcm } from '../../helpers/audio.ts';

const KEY = 'sk-test-4f9a2c71d3e8b605';

async function startServer(t: TestContext, options: Partial<RealtimeTestServerOptions> = {}): Promise<OpenAiRealtimeTestServer> {
  const server = await OpenAiRealtimeTestServer.start(options);
  t.after(() => server.close());
  return server;
}

interface Connected {
  session: S2sSession;
  connection: RealtimeTestConnection;
  events: AsyncIterator<S2sEvent>;
  controller: AbortController;
}

/** A session connected to a fresh test server. */
async function connect(
  t: TestContext,
  session: Partial<S2sOptions> = {},
  provider: Partial<OpenAiRealtimeS2sOptions> = {},
  serverOptions: Partial<RealtimeTestServerOptions> = {},
): Promise<Connected> {
  const server = await startServer(t, serverOptions);
  const controller = new AbortController();
  const s2s = new OpenAiRealtimeS2s({ apiKey: KEY, baseUrl: server.baseUrl, ...provider });
  const pending = s2s.connect({ sampleRate: 16000, instructions: 'Be brief.', history: [], signal: controller.signal, ...session });
  const connection = await server.nextConnection();
  const connected = await pending;
  return { session: connected, connection, events: connected[Symbol.asyncIterator](), controller };
}

async function next(events: AsyncIterator<S2sEvent>): Promise<S2sEvent> {
  const result = await events.next();
  assert.equal(result.done, false, 'iteration ended early');
  return result.value;
}

/** Reads events up to and including the first of `type`. */
async function readThrough(events: AsyncIterator<S2sEvent>, type: S2sEvent['type']): Promise<S2sEvent[]> {
  const seen: S2sEvent[] = [];
  for (;;) {
    const event = await next(events);
    seen.push(event);
    if (event.type === type) return seen;
  }
}

/** A connect() that is expected to fail (no test server connection to wait for). */
function attempt(baseUrl: string, provider: Partial<OpenAiRealtimeS2sOptions> = {}, session: Partial<S2sOptions> = {}): Promise<S2sSession> {
  const s2s = new OpenAiRealtimeS2s({ apiKey: KEY, baseUrl, ...provider });
  return s2s.connect({ sampleRate: 16000, instructions: '', history: [], signal: new AbortController().signal, ...session });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => error,
  );
}

async function providerError(promise: Promise<unknown>, code: string, retryable: boolean): Promise<ProviderError> {
  const error = await rejection(promise);
  assert.ok(error instanceof ProviderError, String(error));
  assert.equal(error.code, code);
  assert.equal(error.retryable, retryable);
  return error;
}

function sine(samples: number, rate: number, hz: number, amplitude: number): Int16Array {
  return Int16Array.from({ length: samples }, (_, i) => Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / rate)));
}

describe('OpenAiRealtimeS2s', { timeout: 30_000 }, () => {
  describe('connect', () => {
    it('opens the realtime endpoint with the model and bearer key, GA protocol (no beta header)', async (t) => {
      const { connection, session } = await connect(t);
      assert.equal(connection.url.pathname, '/v1/realtime');
      assert.equal(connection.url.searchParams.get('model'), 'gpt-realtime');
      assert.equal(connection.headers.authorization, `Bearer ${KEY}`);
      assert.equal(connection.headers['openai-beta'], undefined);
      session.close();
    });

    it('configures the session: instructions, pcm16 24 kHz both ways, voice, server VAD, input transcription', async (t) => {
      const { connection, session } = await connect(t, { instructions: 'You are a concierge.', voice: 'cedar' }, { model: 'gpt-realtime-mini' });
      assert.equal(connection.url.searchParams.get('model'), 'gpt-realtime-mini');
      const update = await connection.first('session.update');
      const pcm = { type: 'audio/pcm', rate: 24000 };
      assert.deepEqual(update.session, {
        type: 'realtime',
        instructions: 'You are a concierge.',
        output_modalities: ['audio'],
        audio: {
          input: {
            format: pcm,
            transcription: { model: 'gpt-4o-mini-transcribe' },
            turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500, create_response: true, interrupt_response: true },
          },
          output: { format: pcm, voice: 'cedar' },
        },
      });
      session.close();
    });

    it('replays the history as conversation items after the session update, and resolves only on session.updated', async (t) => {
      const server = await startServer(t, { configureSession: false });
      const history = [
        { role: 'user' as const, text: 'What is the capital of France?' },
        { role: 'assistant' as const, text: 'Paris.' },
      ];
      const pending = attempt(server.baseUrl, {}, { history });
      let settled = false;
      void pending.then(() => (settled = true), () => (settled = true));
      const connection = await server.nextConnection();
      connection.send({ type: 'session.created', session: { type: 'realtime', id: 'sess_1' } });
      const items = await connection.until((events) => {
        const created = events.filter((event) => event.type === 'conversation.item.create');
        return created.length === 2 ? created : undefined;
      });
      assert.deepEqual(connection.received.map((event) => event.type), ['session.update', 'conversation.item.create', 'conversation.item.create']);
      assert.deepEqual(items[0].item, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'What is the capital of France?' }] });
      assert.deepEqual(items[1].item, { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Paris.' }] });
      assert.equal(settled, false, 'connect resolved before the session was configured');
      connection.send({ type: 'session.updated', session: { type: 'realtime', id: 'sess_1' } });
      const session = await pending;
      session.close();
    });

    for (const [status, retryable] of [[401, false], [429, true], [503, true]] as const) {
      it(`rejects a ${status} handshake with a ProviderError (retryable: ${retryable}) that never quotes the key`, async (t) => {
        // OpenAI quotes a masked key; it still gives away the start and the end.
        const masked = `${KEY.slice(0, 10)}********${KEY.slice(-4)}`;
        const message = status === 401 ? `Incorrect API key provided: ${masked}. You can find your API key at https://platform.openai.com.` : 'Slow down.';
        const server = await startServer(t, { refuseWith: { status, body: { error: { message, type: 'invalid_request_error', code: null } } } });
        const error = await providerError(attempt(server.baseUrl), `PROVIDER_ERR_HTTP_${status}`, retryable);
        assert.equal(error.status, status);
        assert.match(error.message, status === 401 ? /Incorrect API key provided/ : /Slow down/);
        assert.ok(!error.message.includes(KEY), error.message);
        assert.ok(!error.message.includes(KEY.slice(3, 10)) && !error.message.includes(KEY.slice(-4)), error.message);
        assert.equal(server.refusedRequests[0].authorization, `Bearer ${KEY}`);
      });
    }

    it('rejects when the server refuses the session configuration', async (t) => {
      const sessionUpdateError = { type: 'invalid_request_error', code: 'invalid_value', message: "Invalid value: 'nobody'. Supported values are: 'alloy', 'marin'." };
      const server = await startServer(t, { sessionUpdateError });
      const error = await providerError(attempt(server.baseUrl, {}, { voice: 'nobody' }), 'PROVIDER_ERR_VENDOR', false);
      assert.match(error.message, /invalid_value: Invalid value: 'nobody'/);
    });

    it('rejects with a retryable timeout when the session is not ready in time, and closes the socket', async (t) => {
      const server = await startServer(t, { configureSession: false });
      const pending = attempt(server.baseUrl, { connectTimeoutMs: 50 });
      const connection = await server.nextConnection();
      await providerError(pending, 'PROVIDER_ERR_TIMEOUT', true);
      await connection.closed;
    });

    it('rejects with a retryable error when nothing listens', async () => {
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const { port } = probe.address() as { port: number };
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      await providerError(attempt(`ws://127.0.0.1:${port}/v1/realtime`), 'PROVIDER_ERR_CONNECTION', true);
    });

    it('refuses to connect without an API key', async () => {
      await providerError(attempt('ws://127.0.0.1:9/v1/realtime', { apiKey: '' }), 'PROVIDER_ERR_NO_API_KEY', false);
    });

    it('an abort while connecting rejects with an AbortError and closes the socket', async (t) => {
      const server = await startServer(t, { configureSession: false });
      const controller = new AbortController();
      const s2s = new OpenAiRealtimeS2s({ apiKey: KEY, baseUrl: server.baseUrl });
      const pending = s2s.connect({ sampleRate: 16000, instructions: '', history: [], signal: controller.signal });
      const connection = await server.nextConnection();
      controller.abort();
      assert.ok(isAbort(await rejection(pending)));
      await connection.closed;
      assert.ok(isAbort(await rejection(s2s.connect({ sampleRate: 16000, instructions: '', history: [], signal: controller.signal }))));
    });
  });

  describe('input audio', () => {
    it('resamples 16 kHz frames to 24 kHz and appends them base64 in 40-100 ms batches', async (t) => {
      const { session, connection } = await connect(t);
      const input = sine(16000, 16000, 440, 10000);
      for (let offset = 0; offset < input.length; offset += 320) session.pushAudio({ samples: input.subarray(offset, offset + 320), sampleRate: 16000 });
      // Messages arrive in order: once say()'s request is in, every append before it is too.
      session.say('barrier');
      await connection.first('response.create');
      const appends = connection.appendedAudio();
      const received = concatPcm(appends);
      // One second in; less than a batch may still wait for more audio.
      assert.ok(received.length > 24000 - 60 * 24 && received.length <= 24000, `${received.length} samples at 24 kHz`);
      for (const part of appends) assert.ok(part.length >= 40 * 24 && part.length <= 100 * 24, `append of ${part.length / 24} ms`);
      const expected = sine(received.length, 24000, 440, 10000);
      let worst = 0;
      for (let i = 0; i < received.length; i++) worst = Math.max(worst, Math.abs(received[i] - expected[i]));
      // Linear interpolation of 440 Hz at 16 kHz errs by at most ~0.4% of the amplitude.
      assert.ok(worst <= 100, `worst sample error ${worst}`);
      session.close();
    });

    it('sends 24 kHz frames unchanged', async (t) => {
      const { session, connection } = await connect(t, { sampleRate: 24000 });
      const input = sine(4800, 24000, 300, 8000);
      for (let offset = 0; offset < input.length; offset += 480) session.pushAudio({ samples: input.subarray(offset, offset + 480), sampleRate: 24000 });
      session.say('barrier');
      await connection.first('response.create');
      // Three 60 ms batches; the last 40 ms wait for more audio.
      assert.deepEqual(concatPcm(connection.appendedAudio()), input.subarray(0, 3 * 1440));
      session.close();
    });
  });

  describe('server events', () => {
    it('turns a scripted turn into speech, transcript, audio and response_done events, in order', async (t) => {
      const { session, connection, events } = await connect(t);
      const audio = sine(7200, 24000, 200, 6000);
      const response = scriptedResponse({ responseId: 'resp_1', itemId: 'item_a1', audio, deltaSamples: 2400, transcript: ['It is ', 'noon.'] });
      connection.send(
        { type: 'input_audio_buffer.speech_started', audio_start_ms: 1000, item_id: 'item_u1' },
        { type: 'input_audio_buffer.speech_stopped', audio_end_ms: 2200, item_id: 'item_u1' },
        { type: 'input_audio_buffer.committed', previous_item_id: null, item_id: 'item_u1' },
        { type: 'conversation.item.input_audio_transcription.delta', item_id: 'item_u1', content_index: 0, delta: 'What' },
        { type: 'conversation.item.input_audio_transcription.completed', item_id: 'item_u1', content_index: 0, transcript: 'What time is it?' },
        ...response.start,
        ...response.deltas,
        ...response.end,
      );
      const seen = await readThrough(events, 'response_done');
      const frames = seen.flatMap((event) => (event.type === 'audio' ? [event.frame] : []));
      assert.deepEqual(
        seen.map((event) => (event.type === 'audio' ? { type: 'audio', sampleRate: event.frame.sampleRate, samples: event.frame.samples.length } : event)),
        [
          { type: 'speech_started' },
          { type: 'speech_stopped' },
          { type: 'transcript', role: 'user', text: 'What', final: false },
          { type: 'transcript', role: 'user', text: 'What time is it?', final: true },
          { type: 'audio', sampleRate: 24000, samples: 2400 },
          { type: 'transcript', role: 'agent', text: 'It is ', final: false },
          { type: 'audio', sampleRate: 24000, samples: 2400 },
          { type: 'transcript', role: 'agent', text: 'It is noon.', final: false },
          { type: 'audio', sampleRate: 24000, samples: 2400 },
          { type: 'transcript', role: 'agent', text: 'It is noon.', final: true },
          { type: 'response_done' },
        ],
      );
      assert.deepEqual(concatPcm(frames.map((frame) => frame.samples)), audio);
      session.close();
    });

    it('also reads the beta spelling of the response audio events', async (t) => {
      const { session, connection, events } = await connect(t);
      const audio = sine(480, 24000, 200, 6000);
      const at = { response_id: 'resp_b', item_id: 'item_b', output_index: 0, content_index: 0 };
      connection.send(
        { type: 'response.audio.delta', ...at, delta: Buffer.from(audio.buffer).toString('base64') },
        { type: 'response.audio_transcript.done', ...at, transcript: 'Hi.' },
      );
      const audioEvent = await next(events);
      assert.equal(audioEvent.type, 'audio');
      assert.deepEqual(audioEvent.type === 'audio' && audioEvent.frame.samples, audio);
      assert.deepEqual(await next(events), { type: 'transcript', role: 'agent', text: 'Hi.', final: true });
      session.close();
    });
  });

  describe('barge-in', () => {
    it('cancels the answer and truncates it to what was played, then drops its late audio', async (t) => {
      let clock = 10_000;
      const { session, connection, events } = await connect(t, {}, { now: () => clock });
      const response = scriptedResponse({ responseId: 'resp_7', itemId: 'item_7', audio: sine(24000, 24000, 200, 6000), deltaSamples: 2400, transcript: ['Once upon ', 'a time'] });
      connection.send(...response.start, ...response.deltas);
      let audioEvents = 0;
      while (audioEvents < 10) if ((await next(events)).type === 'audio') audioEvents++;
      clock += 400;
      connection.send({ type: 'input_audio_buffer.speech_started', audio_start_ms: 5000, item_id: 'item_u2' });
      assert.deepEqual(await next(events), { type: 'speech_started' });
      session.cancelResponse('Once upon');
      const cancel = await connection.first('response.cancel');
      assert.equal(cancel.response_id, 'resp_7');
      const truncate = await connection.first('conversation.item.truncate');
      assert.equal(truncate.item_id, 'item_7');
      assert.equal(truncate.content_index, 0);
      assert.equal(truncate.audio_end_ms, 400);
      // The test server answered the cancel with response.done; deltas that were already in flight follow.
      connection.send(response.deltas[0], response.end[1], { type: 'input_audio_buffer.speech_stopped', audio_end_ms: 6000, item_id: 'item_u2' });
      assert.deepEqual(await next(events), { type: 'response_done' });
      assert.deepEqual(await next(events), { type: 'speech_stopped' });
      session.close();
    });

    it('drops what a cancelled answer sends before its response.done, even before its first audio', async (t) => {
      const { session, connection, events } = await connect(t, {}, {}, { answerCancel: false });
      const response = scriptedResponse({ responseId: 'resp_c', itemId: 'item_c', audio: sine(2400, 24000, 200, 6000), deltaSamples: 2400, transcript: ['Well, '] });
      connection.send(...response.start);
      connection.send({ type: 'input_audio_buffer.speech_started', audio_start_ms: 300, item_id: 'item_u4' });
      assert.deepEqual(await next(events), { type: 'speech_started' });
      session.cancelResponse('');
      assert.equal((await connection.first('response.cancel')).response_id, 'resp_c');
      connection.send(...response.deltas, ...response.end, { type: 'input_audio_buffer.speech_stopped', audio_end_ms: 900, item_id: 'item_u4' });
      assert.deepEqual(await next(events), { type: 'response_done' });
      assert.deepEqual(await next(events), { type: 'speech_stopped' });
      assert.deepEqual(connection.ofType('conversation.item.truncate'), []);
      session.close();
    });

    it('sends nothing for an answer that has finished and was played in full', async (t) => {
      let clock = 0;
      const { session, connection, events } = await connect(t, {}, { now: () => clock });
      const response = scriptedResponse({ responseId: 'resp_8', itemId: 'item_8', audio: sine(4800, 24000, 200, 6000), deltaSamples: 2400, transcript: ['Done.'] });
      connection.send(...response.start, ...response.deltas, ...response.end);
      await readThrough(events, 'response_done');
      clock += 5000;
      session.cancelResponse('Done.');
      session.say('Goodbye.');
      await connection.first('response.create');
      assert.deepEqual(connection.ofType('response.cancel'), []);
      assert.deepEqual(connection.ofType('conversation.item.truncate'), []);
      session.close();
    });

    it('truncates a finished answer whose audio is still playing, without a cancel', async (t) => {
      let clock = 0;
      const { session, connection, events } = await connect(t, {}, { now: () => clock });
      const response = scriptedResponse({ responseId: 'resp_9', itemId: 'item_9', audio: sine(48000, 24000, 200, 6000), deltaSamples: 4800, transcript: [] });
      connection.send(...response.start, ...response.deltas, ...response.end);
      await readThrough(events, 'response_done');
      clock += 1234.6;
      session.cancelResponse();
      const truncate = await connection.first('conversation.item.truncate');
      assert.equal(truncate.audio_end_ms, 1234);
      assert.deepEqual(connection.ofType('response.cancel'), []);
      session.close();
    });

    it('ignores the error for cancelling a response that is no longer active', async (t) => {
      const { session, connection, events } = await connect(t);
      connection.send(
        { type: 'error', error: { type: 'invalid_request_error', code: 'response_cancel_not_active', message: 'Cancellation failed: no active response found', param: null, event_id: null } },
        { type: 'input_audio_buffer.speech_started', audio_start_ms: 100, item_id: 'item_u3' },
      );
      assert.deepEqual(await next(events), { type: 'speech_started' });
      session.close();
    });
  });

  describe('say', () => {
    it('asks for a response that says exactly the text', async (t) => {
      const { session, connection } = await connect(t);
      session.say('Welcome to the demo.');
      const create = await connection.first('response.create');
      const response = create.response as { instructions: string; output_modalities: string[] };
      assert.match(response.instructions, /exactly/);
      assert.ok(response.instructions.endsWith('Welcome to the demo.'), response.instructions);
      assert.deepEqual(response.output_modalities, ['audio']);
      session.close();
    });

    it('waits for the answer in progress before asking for the next one', async (t) => {
      const { session, connection, events } = await connect(t);
      session.say('First.');
      await connection.first('response.create');
      connection.send({ type: 'response.created', response: { id: 'resp_s1', status: 'in_progress', output: [] } });
      session.say('Second.');
      // Audio sent after say() reaches the server after anything say() sent.
      for (let i = 0; i < 5; i++) session.pushAudio({ samples: new Int16Array(320), sampleRate: 16000 });
      await connection.first('input_audio_buffer.append');
      assert.equal(connection.ofType('response.create').length, 1);
      connection.send({ type: 'response.done', response: { id: 'resp_s1', status: 'completed', output: [] } });
      assert.deepEqual(await next(events), { type: 'response_done' });
      const second = await connection.until((received) => received.filter((event) => event.type === 'response.create')[1]);
      assert.ok((second.response as { instructions: string }).instructions.endsWith('Second.'));
      session.close();
    });

    it('retries after the answer that was already running when the server refused it', async (t) => {
      const { session, connection, events } = await connect(t);
      session.say('Please hold.');
      const create = await connection.first('response.create');
      connection.send(
        { type: 'error', error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'Conversation already has an active response in progress: resp_v.', param: null, event_id: create.event_id } },
        { type: 'response.done', response: { id: 'resp_v', status: 'completed', output: [] } },
      );
      assert.deepEqual(await next(events), { type: 'response_done' });
      const retry = await connection.until((received) => received.filter((event) => event.type === 'response.create')[1]);
      assert.deepEqual(retry.response, create.response);
      session.close();
    });
  });

  describe('failures and shutdown', () => {
    for (const [type, code, retryable] of [['invalid_request_error', 'invalid_value', false], ['server_error', null, true]] as const) {
      it(`a ${type} error event rejects the iteration (retryable: ${retryable}) and closes the socket`, async (t) => {
        const { connection, events } = await connect(t);
        connection.send({ type: 'error', error: { type, code, message: `Something went wrong (${KEY})`, param: null, event_id: null } });
        const error = await providerError(events.next(), 'PROVIDER_ERR_VENDOR', retryable);
        assert.match(error.message, /Something went wrong/);
        assert.ok(!error.message.includes(KEY), error.message);
        assert.equal(await connection.closed, 1000);
      });
    }

    it('a dropped connection rejects the iteration with a retryable error', async (t) => {
      const { connection, events } = await connect(t);
      connection.drop();
      await providerError(events.next(), 'PROVIDER_ERR_DISCONNECTED', true);
    });

    it('an abort ends the iteration without an error and closes the socket', async (t) => {
      const { connection, events, controller } = await connect(t);
      const reading = events.next();
      controller.abort();
      assert.deepEqual(await reading, { value: undefined, done: true });
      assert.equal(await connection.closed, 1000);
    });

    it('close() ends the iteration, closes the socket, and later calls are ignored', async (t) => {
      const { session, connection, events } = await connect(t);
      session.close();
      assert.deepEqual(await events.next(), { value: undefined, done: true });
      assert.equal(await connection.closed, 1000);
      session.pushAudio({ samples: new Int16Array(4800), sampleRate: 16000 });
      session.say('Too late.');
      session.cancelResponse();
      session.close();
    });
  });
});
