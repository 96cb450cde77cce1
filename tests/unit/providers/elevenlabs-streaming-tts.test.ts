import { after, before, describe, it as test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ElevenLabsStreamingTts, type ElevenLabsStreamingTtsOptions } from '../../../providers/elevenlabs/streaming-tts.ts';
import { ProviderError, type AudioFrame } from '../../../providers/types.ts';
import { ElevenLabsTestServer, littleEndian, speechFor } from '../../helpers/vendors/elevenlabs-server.ts';

const API_KEY = 'xi-secret-key';

async function* deltas(...parts: string[]): AsyncIterable<string> {
  for (const part of parts) yield part;
}

/** A text stream that never ends by itself, like an agent still thinking. */
async function* stalled(first: string): AsyncIterable<string> {
  yield first;
  await new Promise(() => {});
}

async function collect(frames: AsyncIterable<AudioFrame>): Promise<AudioFrame[]> {
  const out: AudioFrame[] = [];
  for await (const frame of frames) out.push(frame);
  return out;
}

function joined(frames: AudioFrame[]): Int16Array {
  const out = new Int16Array(frames.reduce((n, frame) => n + frame.samples.length, 0));
  let offset = 0;
  for (const frame of frames) {
    out.set(frame.samples, offset);
    offset += frame.samples.length;
  }
  return out;
}

function concat(...parts: Int16Array[]): Int16Array {
  return joined(parts.map((samples) => ({ samples, sampleRate: 16000 })));
}

async function rejection(promise: Promise<unknown>): Promise<ProviderError> {
  const error = await promise.then(() => assert.fail('synthesis should have failed'), (e: unknown) => e);
  assert.ok(error instanceof ProviderError, String(error));
  assert.ok(!error.message.includes(API_KEY), 'the API key must not appear in errors');
  return error;
}

// A broken adapter tends to hang rather than throw: that test fails on its own, the others still run.
const it = (name: string, fn: () => Promise<void>) => test(name, { timeout: 5000 }, fn);

describe('ElevenLabsStreamingTts', () => {
  let server: ElevenLabsTestServer;
  let scripted: ElevenLabsTestServer;
  before(async () => {
    server = await ElevenLabsTestServer.start();
    scripted = await ElevenLabsTestServer.start({ synthesize: false });
  });
  after(async () => {
    await server.close();
    await scripted.close();
  });

  function tts(on: ElevenLabsTestServer, options: Partial<ElevenLabsStreamingTtsOptions> = {}) {
    return new ElevenLabsStreamingTts({ apiKey: API_KEY, baseUrl: on.url, ...options });
  }

  it('speaks the documented protocol and decodes the PCM it gets back', async () => {
    const voiceSettings = { stability: 0.5, similarity_boost: 0.75 };
    const next = server.connection(server.connectionCount);
    const frames = await collect(
      tts(server, { voiceSettings }).synthesize(deltas('Hel', 'lo there', '. How', ' are you?'), {
        signal: new AbortController().signal,
        voice: 'voice-abc',
      }),
    );
    const conn = await next;
    assert.equal(conn.handshake.path, '/v1/text-to-speech/voice-abc/stream-input');
    assert.deepEqual(Object.fromEntries(conn.handshake.query), { model_id: 'eleven_flash_v2_5', output_format: 'pcm_16000' });
    assert.equal(conn.handshake.headers['xi-api-key'], API_KEY);
    assert.deepEqual(conn.messages, [
      { text: ' ', voice_settings: voiceSettings },
      { text: 'Hello there. ', flush: true },
      { text: 'How are you? ', flush: true },
      { text: '' },
    ]);
    assert.ok(frames.every((frame) => frame.sampleRate === 16000));
    assert.deepEqual(joined(frames), concat(speechFor('Hello there.'), speechFor('How are you?')));
    assert.equal((await conn.closed).code, 1000);
  });

  it('uses the configured voice, model and rate when the call names none', async () => {
    const next = server.connection(server.connectionCount);
    const frames = await collect(
      tts(server, { voiceId: 'default-voice', modelId: 'eleven_turbo_v2_5', sampleRate: 24000 }).synthesize(deltas('Hi.'), {
        signal: new AbortController().signal,
      }),
    );
    const conn = await next;
    assert.equal(conn.handshake.path, '/v1/text-to-speech/default-voice/stream-input');
    assert.equal(conn.handshake.query.get('model_id'), 'eleven_turbo_v2_5');
    assert.equal(conn.handshake.query.get('output_format'), 'pcm_24000');
    assert.deepEqual(conn.messages[0], { text: ' ' });
    assert.ok(frames.length > 0 && frames.every((frame) => frame.sampleRate === 24000));
    assert.deepEqual(joined(frames), speechFor('Hi.', 24000));
  });

  it('delivers the first audio before the text stream ends', async () => {
    let firstFrame!: () => void;
    const heard = new Promise<void>((resolve) => (firstFrame = resolve));
    // The agent's second sentence comes only after the first one was heard: a TTS that waits for
    // the whole text (or for 120 characters) never produces anything here.
    async function* agent(): AsyncIterable<string> {
      yield 'Sure. ';
      await heard;
      yield 'Here it is.';
    }
    const next = server.connection(server.connectionCount);
    const frames: AudioFrame[] = [];
    let endOfInputAtFirstFrame: boolean | undefined;
    for await (const frame of tts(server).synthesize(agent(), { signal: new AbortController().signal })) {
      if (frames.length === 0) {
        endOfInputAtFirstFrame = (await next).endOfInput;
        firstFrame();
      }
      frames.push(frame);
    }
    assert.equal(endOfInputAtFirstFrame, false);
    assert.deepEqual(joined(frames), concat(speechFor('Sure.'), speechFor('Here it is.')));
  });

  it('reassembles samples split across messages at odd byte counts', async () => {
    const pcm = littleEndian(speechFor('Odd pieces.'));
    const next = scripted.connection(scripted.connectionCount);
    const run = collect(tts(scripted).synthesize(deltas('Odd pieces.'), { signal: new AbortController().signal }));
    const conn = await next;
    await conn.waitForEndOfInput();
    conn.sendAudio(pcm, [1, 3, 2, 5, 1, 1, 7, 999]);
    conn.sendFinal();
    const frames = await run;
    assert.deepEqual(joined(frames), speechFor('Odd pieces.'));
    assert.ok(frames.length > 4, 'frames come out per message, not at the end');
  });

  it('ends normally when ElevenLabs closes with 1000 after the end of input without isFinal', async () => {
    const next = scripted.connection(scripted.connectionCount);
    const run = collect(tts(scripted).synthesize(deltas('Bye.'), { signal: new AbortController().signal }));
    const conn = await next;
    await conn.waitForEndOfInput();
    conn.sendAudio(littleEndian(speechFor('Bye.')));
    conn.close(1000);
    assert.deepEqual(joined(await run), speechFor('Bye.'));
  });

  for (const { status, retryable, body, expect } of [
    { status: 401, retryable: false, body: '{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}', expect: 'invalid_api_key: Invalid API key' },
    { status: 429, retryable: true, body: '{"detail":{"status":"too_many_concurrent_requests","message":"Too many requests"}}', expect: 'too_many_concurrent_requests' },
    { status: 500, retryable: true, body: 'upstream exploded', expect: 'upstream exploded' },
  ]) {
    it(`refused handshake ${status} -> ProviderError, retryable=${retryable}`, async () => {
      scripted.refuseNextHandshake(status, body);
      const error = await rejection(collect(tts(scripted).synthesize(deltas('Hi.'), { signal: new AbortController().signal })));
      assert.equal(error.code, `PROVIDER_ERR_HTTP_${status}`);
      assert.equal(error.retryable, retryable);
      assert.equal(error.status, status);
      assert.ok(error.message.includes(expect), error.message);
    });
  }

  it('an error message from ElevenLabs becomes a ProviderError, retryable only when transient', async () => {
    for (const [vendor, retryable] of [
      [{ error: 'quota_exceeded', message: 'This request exceeds your quota.', code: 1008 }, false],
      [{ error: 'input_timeout_exceeded', message: 'No text received for 20 seconds.' }, true],
      [{ error: 'max_character_limit_exceeded', message: 'Text is too long.' }, false],
    ] as const) {
      const next = scripted.connection(scripted.connectionCount);
      const run = collect(tts(scripted).synthesize(stalled('Hello there. '), { signal: new AbortController().signal }));
      const conn = await next;
      await conn.waitFor(() => conn.messages.length >= 2, 'the first sentence');
      conn.send(vendor);
      const error = await rejection(run);
      assert.equal(error.code, 'PROVIDER_ERR_VENDOR');
      assert.equal(error.retryable, retryable, vendor.error);
      assert.ok(error.message.includes(vendor.error) && error.message.includes(vendor.message), error.message);
      await conn.closed; // the adapter closes its socket
    }
  });

  it('a 1008 close mid-stream is final; a dropped connection is retryable', async () => {
    for (const [end, expected] of [
      [(conn: { close(code: number, reason: string): void }) => conn.close(1008, 'Invalid voice id'), { code: 'PROVIDER_ERR_WS_1008', retryable: false }],
      [(conn: { drop(): void }) => conn.drop(), { code: 'PROVIDER_ERR_CONNECTION_CLOSED', retryable: true }],
    ] as const) {
      const next = scripted.connection(scripted.connectionCount);
      const run = collect(tts(scripted).synthesize(stalled('Hello there. '), { signal: new AbortController().signal }));
      const conn = await next;
      await conn.waitFor(() => conn.messages.length >= 2, 'the first sentence');
      conn.sendAudio(littleEndian(speechFor('Hello')));
      end(conn as never);
      const error = await rejection(run);
      assert.equal(error.code, expected.code);
      assert.equal(error.retryable, expected.retryable);
    }
  });

  it('an abort mid-stream ends the frames at once and closes the socket', async () => {
    const controller = new AbortController();
    const next = server.connection(server.connectionCount);
    const frames: AudioFrame[] = [];
    for await (const frame of tts(server).synthesize(stalled('Hello there. '), { signal: controller.signal })) {
      frames.push(frame);
      if (frames.length === 1) controller.abort();
    }
    assert.equal(frames.length, 1, 'nothing after the abort');
    const conn = await next;
    assert.equal((await conn.closed).code, 1000);
    assert.equal(conn.endOfInput, false);
  });

  it('a consumer that stops early closes the socket', async () => {
    const next = server.connection(server.connectionCount);
    for await (const frame of tts(server).synthesize(stalled('Hello there. '), { signal: new AbortController().signal })) {
      assert.ok(frame.samples.length > 0);
      break;
    }
    assert.equal((await (await next).closed).code, 1000);
  });

  it('a failing text stream rejects with its own error and closes the socket', async () => {
    const agentError = new Error('agent failed');
    async function* failing(): AsyncIterable<string> {
      yield 'First sentence. ';
      throw agentError;
    }
    const next = server.connection(server.connectionCount);
    const error = await collect(tts(server).synthesize(failing(), { signal: new AbortController().signal })).then(
      () => assert.fail('should have failed'),
      (e: unknown) => e,
    );
    assert.equal(error, agentError);
    assert.equal((await (await next).closed).code, 1000);
  });

  it('a handshake that never completes rejects with a retryable timeout', async () => {
    const silent = net.createServer(() => {}); // accepts TCP, never answers the upgrade
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const slow = new ElevenLabsStreamingTts({ apiKey: API_KEY, baseUrl: `ws://127.0.0.1:${port}/v1`, connectTimeoutMs: 30 });
    const error = await rejection(collect(slow.synthesize(deltas('Hi.'), { signal: new AbortController().signal })));
    assert.equal(error.code, 'PROVIDER_ERR_TIMEOUT');
    assert.equal(error.retryable, true);
    silent.close();
  });

  it('gives up with a retryable timeout when ElevenLabs goes silent after the end of input', async () => {
    const next = scripted.connection(scripted.connectionCount);
    const run = collect(tts(scripted, { idleTimeoutMs: 30 }).synthesize(deltas('Hi.'), { signal: new AbortController().signal }));
    const conn = await next;
    await conn.waitForEndOfInput();
    const error = await rejection(run);
    assert.equal(error.code, 'PROVIDER_ERR_TIMEOUT');
    assert.equal(error.retryable, true);
    await conn.closed;
  });
});
