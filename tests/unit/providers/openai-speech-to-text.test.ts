import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ProviderHttpError } from '../../../providers/openai/http.ts';
import { OpenAiSpeechToText, type OpenAiSpeechToTextOptions } from '../../../providers/openai/speech-to-text.ts';
import { ProviderError, type SttStream, type TranscriptEvent } from '../../../providers/types.ts';
import { OpenAiTestServer, transcriptionEvents, type ScriptedReply } from '../../helpers/vendors/openai-server.ts';
import { concatPcm } from '../../helpers/audio.ts';

const KEY = 'sk-test-stt-0123456789abcdef';

/** 20 ms frames of a recognisable ramp: sample i of the utterance is (i * 7 + offset) wrapped to int16. */
function frames(count: number, offset = 0): Int16Array[] {
  return Array.from({ length: count }, (_, f) => Int16Array.from({ length: 320 }, (_, i) => ((f * 320 + i) * 7 + offset) % 65536 - 32768));
}

function push(stream: SttStream, parts: Int16Array[]): void {
  for (const samples of parts) stream.pushAudio({ samples, sampleRate: 16000 });
}

/** Checks every header field of the canonical 44-byte WAV and returns its samples. */
function parseWav(bytes: Uint8Array, sampleRate: number): Int16Array {
  const wav = Buffer.from(bytes);
  assert.equal(wav.toString('ascii', 0, 4), 'RIFF');
  assert.equal(wav.readUInt32LE(4), wav.length - 8);
  assert.equal(wav.toString('ascii', 8, 16), 'WAVEfmt ');
  assert.equal(wav.readUInt32LE(16), 16);
  assert.equal(wav.readUInt16LE(20), 1, 'PCM');
  assert.equal(wav.readUInt16LE(22), 1, 'mono');
  assert.equal(wav.readUInt32LE(24), sampleRate);
  assert.equal(wav.readUInt32LE(28), sampleRate * 2, 'byte rate');
  assert.equal(wav.readUInt16LE(32), 2, 'block align');
  assert.equal(wav.readUInt16LE(34), 16, 'bits');
  assert.equal(wav.toString('ascii', 36, 40), 'data');
  assert.equal(wav.readUInt32LE(40), wav.length - 44);
  return Int16Array.from({ length: (wav.length - 44) / 2 }, (_, i) => wav.readInt16LE(44 + i * 2));
}

async function drain(stream: AsyncIterable<TranscriptEvent>): Promise<{ events: TranscriptEvent[]; error: unknown }> {
  const events: TranscriptEvent[] = [];
  try {
    for await (const event of stream) events.push(event);
    return { events, error: undefined };
  } catch (error) {
    return { events, error };
  }
}

describe('OpenAiSpeechToText against a local OpenAI server', () => {
  let server: OpenAiTestServer;
  const open = (options: Partial<OpenAiSpeechToTextOptions> = {}, signal = new AbortController().signal) =>
    new OpenAiSpeechToText({ baseUrl: server.baseUrl, apiKey: KEY, ...options }).stream({ sampleRate: 16000, language: 'en-US', signal });

  beforeEach(async () => {
    server = await OpenAiTestServer.start();
  });
  afterEach(() => server.close());

  it('uploads the utterance as a WAV on flush and turns the SSE transcript into partials and one final', { timeout: 5000 }, async () => {
    server.reply('transcription', { kind: 'sse', events: transcriptionEvents(['Hello', ' world'], 'Hello world.') });
    const stream = open();
    const audio = frames(3);
    push(stream, audio);
    stream.flush();
    const events: TranscriptEvent[] = [];
    for await (const event of stream) {
      events.push(event);
      if (event.type === 'final') stream.close();
    }
    assert.deepEqual(events, [
      { type: 'partial', text: 'Hello' },
      { type: 'partial', text: 'Hello world' },
      { type: 'final', text: 'Hello world.' },
    ]);

    const [request] = server.requests;
    assert.equal(request.path, '/v1/audio/transcriptions');
    assert.equal(request.headers.authorization, `Bearer ${KEY}`);
    assert.match(request.headers['content-type'] ?? '', /^multipart\/form-data; boundary=/);
    const form = await request.form();
    const fields: string[] = [];
    form.forEach((_, name) => fields.push(name));
    assert.deepEqual(fields.sort(), ['file', 'language', 'model', 'stream']);
    assert.equal(form.get('model'), 'gpt-4o-mini-transcribe');
    assert.equal(form.get('language'), 'en');
    assert.equal(form.get('stream'), 'true');
    const file = form.get('file') as File;
    assert.equal(file.name, 'utterance.wav');
    assert.equal(file.type, 'audio/wav');
    assert.deepEqual(parseWav(new Uint8Array(await file.arrayBuffer()), 16000), concatPcm(audio));
  });

  it('accepts a plain JSON {text} reply (whisper-1 without streaming)', { timeout: 5000 }, async () => {
    server.reply('transcription', { kind: 'json', body: { text: 'Hi there.' } });
    const stream = open({ model: 'whisper-1', stream: false });
    push(stream, frames(1));
    stream.flush();
    const iterator = stream[Symbol.asyncIterator]();
    assert.deepEqual((await iterator.next()).value, { type: 'final', text: 'Hi there.' });
    const form = await server.requests[0].form();
    assert.equal(form.get('model'), 'whisper-1');
    assert.equal(form.has('stream'), false);
    stream.close();
    assert.equal((await iterator.next()).done, true);
  });

  it('answers each flush with exactly one final, in order; an empty utterance makes no request', { timeout: 5000 }, async () => {
    server.reply('transcription', { kind: 'json', body: { text: 'one' } }, { kind: 'json', body: { text: 'two' } });
    const stream = open();
    const first = frames(2, 1);
    const second = frames(1, 2);
    push(stream, first);
    stream.flush();
    stream.flush(); // nothing pushed since
    push(stream, second);
    stream.flush();
    const finals: string[] = [];
    for await (const event of stream) {
      if (event.type === 'final') finals.push(event.text);
      if (finals.length === 3) stream.close();
    }
    assert.deepEqual(finals, ['one', '', 'two']);
    assert.equal(server.requests.length, 2);
    assert.equal(server.requests[1].remotePort, server.requests[0].remotePort, 'the second upload reuses the first one\'s connection');
    assert.deepEqual(await uploadedSamples(server, 0), concatPcm(first));
    assert.deepEqual(await uploadedSamples(server, 1), concatPcm(second));
  });

  it('caps the buffered utterance: audio beyond maxUtteranceMs is dropped and counted', { timeout: 5000 }, async () => {
    server.reply('transcription', { kind: 'json', body: { text: 'long' } });
    const stream = open({ maxUtteranceMs: 100 }); // 1600 samples at 16 kHz
    const audio = frames(10); // 200 ms
    push(stream, audio);
    stream.flush();
    const iterator = stream[Symbol.asyncIterator]();
    assert.deepEqual((await iterator.next()).value, { type: 'final', text: 'long' });
    assert.deepEqual(await uploadedSamples(server, 0), concatPcm(audio).subarray(0, 1600));
    assert.equal(stream.droppedSamples, 1600);
    stream.close();
  });

  it('discard() drops the buffered utterance: the next flush gives an empty final without a request', { timeout: 5000 }, async () => {
    const stream = open();
    push(stream, frames(2));
    stream.discard();
    stream.flush();
    const iterator = stream[Symbol.asyncIterator]();
    assert.deepEqual((await iterator.next()).value, { type: 'final', text: '' });
    assert.equal(server.requests.length, 0);
    stream.close();
  });

  it('discard() aborts an in-flight request: no final for it, and the stream goes on', { timeout: 5000 }, async () => {
    server.reply('transcription', { kind: 'sse', events: transcriptionEvents(['stale']).slice(0, 1), then: 'hang' });
    server.reply('transcription', { kind: 'json', body: { text: 'fresh' } });
    const stream = open();
    const iterator = stream[Symbol.asyncIterator]();
    push(stream, frames(1));
    stream.flush();
    assert.deepEqual((await iterator.next()).value, { type: 'partial', text: 'stale' });
    push(stream, frames(1, 3));
    stream.flush(); // queued behind the first: discarded with it
    stream.discard();
    await server.requests[0].closedByClient;
    const fresh = frames(1, 5);
    push(stream, fresh);
    stream.flush();
    assert.deepEqual((await iterator.next()).value, { type: 'final', text: 'fresh' });
    assert.equal(server.requests.length, 2);
    assert.deepEqual(await uploadedSamples(server, 1), concatPcm(fresh));
    stream.close();
    assert.equal((await iterator.next()).done, true);
  });

  it('ends the iteration quietly on abort mid-stream, and the server sees the request closed', { timeout: 5000 }, async () => {
    server.reply('transcription', { kind: 'sse', events: transcriptionEvents(['Hel']).slice(0, 1), then: 'hang' });
    const controller = new AbortController();
    const stream = open({}, controller.signal);
    push(stream, frames(1));
    stream.flush();
    const events: TranscriptEvent[] = [];
    for await (const event of stream) {
      events.push(event);
      controller.abort();
    }
    assert.deepEqual(events, [{ type: 'partial', text: 'Hel' }]);
    await server.requests[0].closedByClient;
  });

  it('refuses frames at another rate than the stream was opened with', { timeout: 5000 }, () => {
    const stream = open();
    assert.throws(() => stream.pushAudio({ samples: new Int16Array(480), sampleRate: 24000 }), RangeError);
    stream.close();
  });

  const failures: { name: string; reply: ScriptedReply; code: string; retryable: boolean; retryAfterMs?: number; options?: Partial<OpenAiSpeechToTextOptions> }[] = [
    { name: '401', reply: { kind: 'error', status: 401, message: `Incorrect API key provided: ${KEY}.` }, code: 'PROVIDER_ERR_HTTP_401', retryable: false },
    { name: '429', reply: { kind: 'error', status: 429, headers: { 'retry-after': '3' } }, code: 'PROVIDER_ERR_HTTP_429', retryable: true, retryAfterMs: 3000 },
    { name: '500', reply: { kind: 'error', status: 500 }, code: 'PROVIDER_ERR_HTTP_500', retryable: true },
    { name: 'slow first byte', reply: { kind: 'stall' }, code: 'PROVIDER_ERR_TIMEOUT', retryable: true, options: { responseTimeoutMs: 100 } },
    { name: 'dropped mid-stream', reply: { kind: 'sse', events: transcriptionEvents(['Hel']).slice(0, 1), then: 'drop' }, code: 'PROVIDER_ERR_CONNECTION_LOST', retryable: true },
    { name: 'ended without done', reply: { kind: 'sse', events: transcriptionEvents(['Hel']).slice(0, 1) }, code: 'PROVIDER_ERR_TRUNCATED', retryable: true },
    { name: 'error event', reply: { kind: 'sse', events: [{ error: { message: 'Audio file might be corrupted', type: 'invalid_request_error' } }] }, code: 'PROVIDER_ERR_VENDOR', retryable: false },
  ];
  for (const { name, reply, code, retryable, retryAfterMs, options } of failures) {
    it(`rejects the iteration on ${name}: ${code}, retryable ${retryable}`, { timeout: 5000 }, async () => {
      server.reply('transcription', reply);
      const stream = open(options);
      push(stream, frames(1));
      stream.flush();
      const { error } = await drain(stream);
      assert.ok(error instanceof ProviderError);
      assert.equal(error.code, code);
      assert.equal(error.retryable, retryable);
      assert.ok(!error.message.includes(KEY), error.message);
      if (retryAfterMs !== undefined) assert.equal((error as ProviderHttpError).retryAfterMs, retryAfterMs);
    });
  }
});

async function uploadedSamples(server: OpenAiTestServer, index: number): Promise<Int16Array> {
  const file = (await server.requests[index].form()).get('file') as File;
  return parseWav(new Uint8Array(await file.arrayBuffer()), 16000);
}
