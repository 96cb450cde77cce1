import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ProviderHttpError } from '../../../providers/openai/http.ts';
import { OpenAiTextToSpeech, type OpenAiTextToSpeechOptions } from '../../../providers/openai/text-to-speech.ts';
import { PcmDecoder } from '../../../providers/pcm-decoder.ts';
import { ProviderError, type AudioFrame } from '../../../providers/types.ts';
import { OpenAiTestServer, pcmBytes, type ScriptedReply } from '../../helpers/vendors/openai-server.ts';

const KEY = 'sk-test-tts-0123456789abcdef';

/** Samples covering the whole int16 range, negatives included, distinct per `seed`. */
function speech(length: number, seed: number): Int16Array {
  return Int16Array.from({ length }, (_, i) => ((i * 2654435761 + seed * 40503) >>> 0) % 65536 - 32768);
}

/** Cuts bytes at odd sizes so samples straddle chunks. */
function oddChunks(bytes: Uint8Array): Uint8Array[] {
  const sizes = [1, 2, 3, 5, 7, 11, 101];
  const chunks: Uint8Array[] = [];
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const size = sizes[k % sizes.length];
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

function concat(frames: AudioFrame[]): Int16Array {
  const all = new Int16Array(frames.reduce((n, f) => n + f.samples.length, 0));
  frames.reduce((offset, f) => (all.set(f.samples, offset), offset + f.samples.length), 0);
  return all;
}

async function* words(...parts: string[]): AsyncGenerator<string> {
  yield* parts;
}

async function drain(frames: AsyncIterable<AudioFrame>): Promise<{ frames: AudioFrame[]; error: unknown }> {
  const got: AudioFrame[] = [];
  try {
    for await (const frame of frames) got.push(frame);
    return { frames: got, error: undefined };
  } catch (error) {
    return { frames: got, error };
  }
}

describe('OpenAiTextToSpeech against a local OpenAI server', () => {
  let server: OpenAiTestServer;
  const tts = (options: Partial<OpenAiTextToSpeechOptions> = {}): OpenAiTextToSpeech =>
    new OpenAiTextToSpeech({ baseUrl: server.baseUrl, apiKey: KEY, ...options });

  beforeEach(async () => {
    server = await OpenAiTestServer.start();
  });
  afterEach(() => server.close());

  it('speaks each sentence as it completes: first audio comes out before the text stream ends', { timeout: 5000 }, async () => {
    const first = speech(2400, 1);
    const second = speech(1201, 2);
    server.reply('speech', { kind: 'audio', chunks: oddChunks(pcmBytes(first)) }, { kind: 'audio', chunks: oddChunks(pcmBytes(second)) });
    let firstFrameArrived!: () => void;
    const firstFrame = new Promise<void>((resolve) => (firstFrameArrived = resolve));
    let textEnded = false;
    async function* agentText(): AsyncGenerator<string> {
      yield 'Hello ';
      yield 'there. How';
      await firstFrame; // a TTS that waited for the whole text would never get past here
      yield ' are you?';
      textEnded = true;
    }

    const frames: AudioFrame[] = [];
    for await (const frame of tts().synthesize(agentText(), { signal: new AbortController().signal })) {
      if (frames.length === 0) assert.equal(textEnded, false);
      frames.push(frame);
      firstFrameArrived();
    }

    assert.ok(frames.every((frame) => frame.sampleRate === 24000));
    assert.deepEqual(concat(frames), Int16Array.from([...first, ...second]));
    assert.equal(server.requests.length, 2);
    for (const request of server.requests) {
      assert.equal(request.path, '/v1/audio/speech');
      assert.equal(request.headers.authorization, `Bearer ${KEY}`);
      assert.equal(request.headers['content-type'], 'application/json');
    }
    assert.deepEqual(server.requests[0].json(), { model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'Hello there.', response_format: 'pcm' });
    assert.deepEqual(server.requests[1].json(), { model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'How are you?', response_format: 'pcm' });
  });

  it('takes the voice from the call, instructions and model from the options', { timeout: 5000 }, async () => {
    await drain(tts({ model: 'tts-1', instructions: 'Speak calmly.', apiKey: '' }).synthesize(words('Hi.'), { signal: new AbortController().signal, voice: 'nova' }));
    assert.deepEqual(server.requests[0].json(), { model: 'tts-1', voice: 'nova', input: 'Hi.', response_format: 'pcm', instructions: 'Speak calmly.' });
    assert.equal(server.requests[0].headers.authorization, undefined);
  });

  it('stops the request and the iteration promptly on abort mid-stream; the server sees the request closed', { timeout: 5000 }, async () => {
    server.reply('speech', { kind: 'audio', chunks: [pcmBytes(speech(480, 3))], then: 'hang' });
    const controller = new AbortController();
    const frames: AudioFrame[] = [];
    let abortedAt = 0;
    for await (const frame of tts().synthesize(words('One sentence. ', 'And another.'), { signal: controller.signal })) {
      frames.push(frame);
      abortedAt = performance.now();
      controller.abort();
    }
    assert.equal(frames.length, 1);
    assert.ok(performance.now() - abortedAt < 500, 'iteration ended promptly');
    await server.requests[0].closedByClient;
    assert.equal(server.requests.length, 1, 'no request for the next sentence');
  });

  it('ends promptly on abort while waiting for more text', { timeout: 5000 }, async () => {
    let waitingForText!: () => void;
    const waiting = new Promise<void>((resolve) => (waitingForText = resolve));
    async function* stalledText(): AsyncGenerator<string> {
      yield 'Hi. ';
      waitingForText();
      await new Promise(() => undefined); // the agent never writes again
    }
    const controller = new AbortController();
    const result = drain(tts().synthesize(stalledText(), { signal: controller.signal }));
    await waiting;
    controller.abort();
    const { frames, error } = await result;
    assert.equal(error, undefined);
    assert.equal(concat(frames).length, 480); // the default reply for the first sentence
  });

  const failures: { name: string; reply: ScriptedReply; code: string; retryable: boolean; retryAfterMs?: number }[] = [
    { name: '401', reply: { kind: 'error', status: 401, message: `Incorrect API key provided: ${KEY}.` }, code: 'PROVIDER_ERR_HTTP_401', retryable: false },
    { name: '429', reply: { kind: 'error', status: 429, headers: { 'retry-after': '1' } }, code: 'PROVIDER_ERR_HTTP_429', retryable: true, retryAfterMs: 1000 },
    { name: '500', reply: { kind: 'error', status: 500 }, code: 'PROVIDER_ERR_HTTP_500', retryable: true },
    { name: 'slow first byte', reply: { kind: 'stall', headers: true }, code: 'PROVIDER_ERR_TIMEOUT', retryable: true },
    { name: 'dropped mid-stream', reply: { kind: 'audio', chunks: [pcmBytes(speech(480, 4))], then: 'drop' }, code: 'PROVIDER_ERR_CONNECTION_LOST', retryable: true },
  ];
  for (const { name, reply, code, retryable, retryAfterMs } of failures) {
    it(`fails the iteration on ${name}: ${code}, retryable ${retryable}`, { timeout: 5000 }, async () => {
      server.reply('speech', reply);
      const { error } = await drain(tts({ firstAudioTimeoutMs: 100 }).synthesize(words('Hello.'), { signal: new AbortController().signal }));
      assert.ok(error instanceof ProviderError);
      assert.equal(error.code, code);
      assert.equal(error.retryable, retryable);
      assert.ok(!error.message.includes(KEY), error.message);
      if (retryAfterMs !== undefined) assert.equal((error as ProviderHttpError).retryAfterMs, retryAfterMs);
    });
  }
});

describe('PcmDecoder', () => {
  it('decodes little-endian int16 whatever the chunk boundaries, keeping the odd byte for the next chunk', { timeout: 5000 }, () => {
    const samples = Int16Array.from([0, 1, -1, 32767, -32768, 258, -258, 12345]);
    const bytes = pcmBytes(samples);
    for (const cuts of [[1], [3], [1, 1, 5, 0, 2], [15], [16]]) {
      const decoder = new PcmDecoder();
      const out: number[] = [];
      let at = 0;
      for (let k = 0; at < bytes.length; k++) {
        const size = cuts[k % cuts.length];
        out.push(...decoder.push(bytes.subarray(at, at + size)));
        at += size;
      }
      assert.deepEqual(out, [...samples], `cuts ${cuts.join(',')}`);
    }
  });
});
