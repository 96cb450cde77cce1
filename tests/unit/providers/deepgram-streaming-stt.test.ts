import { after, before, describe, it as test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { DeepgramStreamingStt, type DeepgramStreamingSttOptions } from '../../../providers/deepgram/streaming-stt.ts';
import { ProviderError, type SttStream, type TranscriptEvent } from '../../../providers/types.ts';
import { DeepgramTestServer } from '../../helpers/vendors/deepgram-server.ts';

const API_KEY = 'dg-secret-key';
const RATE = 16000;

/** 20 ms of deterministic audio with negative samples, so byte order matters. */
function frame(seed: number): Int16Array {
  return Int16Array.from({ length: 320 }, (_, i) => ((seed * 7919 + i * 104729) % 65536) - 32768);
}

/** The frame as linear16 puts it on the wire: little-endian, written out independently of the adapter. */
function littleEndian(samples: Int16Array): Buffer {
  const bytes = Buffer.alloc(samples.length * 2);
  samples.forEach((sample, i) => bytes.writeInt16LE(sample, i * 2));
  return bytes;
}

/** Reads a stream in the background; tests await the events they expect. */
class Reader {
  readonly events: TranscriptEvent[] = [];
  readonly done: Promise<void>;
  #waiters: Array<() => void> = [];

  constructor(stream: SttStream) {
    this.done = (async () => {
      for await (const event of stream) {
        this.events.push(event);
        for (const waiter of this.#waiters) waiter();
      }
    })();
    this.done.catch(() => {});
  }

  until(predicate: (event: TranscriptEvent) => boolean): Promise<TranscriptEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find(predicate);
        if (found) resolve(found);
      };
      this.#waiters.push(check);
      check();
      this.done.then(() => reject(new Error('stream ended first')), reject);
    });
  }

  partial(text: string) {
    return this.until((event) => event.type === 'partial' && event.text === text);
  }

  finals(): string[] {
    return this.events.flatMap((event) => (event.type === 'final' ? [event.text] : []));
  }
}

// A broken adapter tends to hang rather than throw: that test fails on its own, the others still run.
const it = (name: string, fn: () => Promise<void>) => test(name, { timeout: 5000 }, fn);

describe('DeepgramStreamingStt', () => {
  let server: DeepgramTestServer;
  before(async () => {
    server = await DeepgramTestServer.start();
  });
  after(() => server.close());

  function open(options: Partial<DeepgramStreamingSttOptions> = {}, signal = new AbortController().signal) {
    const stt = new DeepgramStreamingStt({ apiKey: API_KEY, baseUrl: server.url, ...options });
    const stream = stt.stream({ sampleRate: RATE, language: 'en-US', signal });
    const connection = server.connection(server.connectionCount);
    return { stream, reader: new Reader(stream), connection };
  }

  function push(stream: SttStream, ...seeds: number[]) {
    for (const seed of seeds) stream.pushAudio({ samples: frame(seed), sampleRate: RATE });
  }

  async function expectFailure(reader: Reader, expected: Partial<ProviderError>) {
    const error = await reader.done.then(() => assert.fail('the stream should have failed'), (e: unknown) => e);
    assert.ok(error instanceof ProviderError, String(error));
    for (const [key, value] of Object.entries(expected)) assert.equal(error[key as keyof ProviderError], value, key);
    assert.ok(!error.message.includes(API_KEY), 'the API key must not appear in errors');
    return error;
  }

  it('connects with the documented query and Token auth, and sends the audio unchanged', async () => {
    const { stream, reader, connection } = open();
    push(stream, 1, 2, 3); // before the socket is open: buffered
    const conn = await connection;
    await conn.waitForAudioBytes(3 * 640);
    push(stream, 4, 5);
    await conn.waitForAudioBytes(5 * 640);
    assert.equal(conn.handshake.path, '/v1/listen');
    assert.deepEqual(Object.fromEntries(conn.handshake.query), {
      encoding: 'linear16',
      sample_rate: '16000',
      channels: '1',
      model: 'nova-3',
      language: 'en-US',
      interim_results: 'true',
      punctuate: 'true',
    });
    assert.equal(conn.handshake.headers.authorization, `Token ${API_KEY}`);
    assert.deepEqual(conn.audio(), Buffer.concat([1, 2, 3, 4, 5].map((seed) => littleEndian(frame(seed)))));
    assert.ok(conn.received.every((item) => item.kind === 'audio'), 'nothing but audio while speaking');
    stream.close();
    await reader.done;
  });

  it('maps interim results to partials and answers flush with one final once Deepgram finalizes', async () => {
    const { stream, reader, connection } = open({ model: 'nova-2', language: 'multi' });
    push(stream, 1, 2);
    const conn = await connection;
    await conn.waitForAudioBytes(2 * 640);
    assert.equal(conn.handshake.query.get('model'), 'nova-2');
    assert.equal(conn.handshake.query.get('language'), 'multi');
    conn.sendResults({ transcript: 'hello' });
    await reader.partial('hello');
    conn.sendResults({ transcript: 'Hello there.', isFinal: true, speechFinal: true, confidence: 1 });
    await reader.partial('Hello there.');
    push(stream, 3);
    await conn.waitForAudioBytes(3 * 640);
    conn.sendResults({ transcript: 'how' });
    await reader.partial('Hello there. how');
    stream.flush();
    await conn.waitForControl('Finalize');
    assert.deepEqual(reader.finals(), [], 'no final before Deepgram answers the Finalize');
    conn.sendResults({ transcript: 'How are you?', fromFinalize: true, confidence: 0.5 });
    const final = await reader.until((event) => event.type === 'final');
    assert.deepEqual(final, { type: 'final', text: 'Hello there. How are you?', confidence: 0.75 });

    // A second answer over the same audio belongs to no utterance; the next one starts clean.
    conn.sendResults({ transcript: 'ghost', fromFinalize: true, start: 0 });
    push(stream, 4);
    await conn.waitForAudioBytes(4 * 640);
    conn.sendResults({ transcript: 'next' });
    await reader.partial('next');
    stream.close();
    await reader.done;
    assert.deepEqual(reader.events, [
      { type: 'partial', text: 'hello' },
      { type: 'partial', text: 'Hello there.' },
      { type: 'partial', text: 'Hello there. how' },
      { type: 'final', text: 'Hello there. How are you?', confidence: 0.75 },
      { type: 'partial', text: 'next' },
    ]);
  });

  it('sends the final after the finalize timeout when Deepgram never answers, and drops the late answer', async () => {
    const { stream, reader, connection } = open({ finalizeTimeoutMs: 20 });
    push(stream, 1, 2);
    const conn = await connection;
    await conn.waitForAudioBytes(2 * 640);
    conn.sendResults({ transcript: 'only part', isFinal: true, end: 0.02 });
    conn.sendResults({ transcript: 'of it' });
    await reader.partial('only part of it');
    stream.flush();
    await reader.until((event) => event.type === 'final');
    assert.deepEqual(reader.finals(), ['only part of it']);

    conn.sendResults({ transcript: 'late words', fromFinalize: true });
    push(stream, 3);
    await conn.waitForAudioBytes(3 * 640);
    conn.sendResults({ transcript: 'fresh' });
    await reader.partial('fresh');
    stream.flush();
    await conn.waitForControl('Finalize', 2);
    conn.sendResults({ transcript: 'fresh start', fromFinalize: true });
    await reader.until((event) => event.type === 'final' && event.text === 'fresh start');
    stream.close();
    await reader.done;
    assert.deepEqual(reader.finals(), ['only part of it', 'fresh start']);
    assert.ok(!reader.events.some((event) => event.text.includes('late')), JSON.stringify(reader.events));
  });

  it('completes at once when Deepgram had already finalized all the audio', async () => {
    const { stream, reader, connection } = open({ finalizeTimeoutMs: 60_000 });
    push(stream, 1, 2);
    const conn = await connection;
    await conn.waitForAudioBytes(2 * 640);
    conn.sendResults({ transcript: 'all done', isFinal: true, speechFinal: true });
    await reader.partial('all done');
    stream.flush();
    await reader.until((event) => event.type === 'final');
    assert.deepEqual(reader.finals(), ['all done']);
    stream.close();
    await reader.done;
  });

  it('answers a flush without audio with an empty final, in flush order, without opening a socket', async () => {
    const connectionsBefore = server.connectionCount;
    const idle = open();
    idle.stream.flush();
    await idle.reader.until((event) => event.type === 'final');
    assert.deepEqual(idle.reader.events, [{ type: 'final', text: '' }]);
    idle.stream.close();
    await idle.reader.done;
    assert.equal(server.connectionCount, connectionsBefore);

    const { stream, reader, connection } = open();
    push(stream, 1);
    const conn = await connection;
    stream.flush();
    stream.flush();
    await conn.waitForControl('Finalize');
    assert.deepEqual(reader.finals(), [], 'the empty final waits for the one before it');
    conn.sendResults({ transcript: 'hi', fromFinalize: true });
    await reader.until((event) => event.type === 'final' && event.text === '');
    assert.deepEqual(reader.finals(), ['hi', '']);
    assert.deepEqual(conn.controls(), ['Finalize'], 'one Finalize: the empty utterance needs none');
    stream.close();
    await reader.done;
  });

  it('discard drops the utterance, including what Deepgram returns for its audio later', async () => {
    const { stream, reader, connection } = open();
    push(stream, 1, 2);
    const conn = await connection;
    await conn.waitForAudioBytes(2 * 640);
    conn.sendResults({ transcript: 'drop this', isFinal: true, end: 0.02 });
    await reader.partial('drop this');
    stream.discard();
    await conn.waitForControl('Finalize');
    conn.sendResults({ transcript: 'and this', fromFinalize: true });
    push(stream, 3, 4);
    await conn.waitForAudioBytes(4 * 640);
    conn.sendResults({ transcript: 'keep' });
    await reader.partial('keep');
    stream.flush();
    await conn.waitForControl('Finalize', 2);
    conn.sendResults({ transcript: 'keep going', fromFinalize: true });
    await reader.until((event) => event.type === 'final');
    stream.close();
    await reader.done;
    assert.deepEqual(reader.events, [
      { type: 'partial', text: 'drop this' },
      { type: 'partial', text: 'keep' },
      { type: 'final', text: 'keep going', confidence: 0.9 },
    ]);
  });

  it('sends KeepAlive while idle', async () => {
    const { stream, reader, connection } = open({ keepAliveIntervalMs: 10 });
    push(stream, 1);
    const conn = await connection;
    await conn.waitForControl('KeepAlive', 2);
    assert.deepEqual(new Set(conn.controls()), new Set(['KeepAlive']));
    stream.close();
    await reader.done;
  });

  it('close() delivers the pending final, sends CloseStream and ends the iteration', async () => {
    const { stream, reader, connection } = open();
    push(stream, 1);
    const conn = await connection;
    await conn.waitForAudioBytes(640);
    conn.sendResults({ transcript: 'almost' });
    await reader.partial('almost');
    stream.flush();
    await conn.waitForControl('Finalize');
    stream.close();
    await reader.done;
    assert.deepEqual(reader.finals(), ['almost']);
    const closed = await conn.closed;
    assert.equal(closed.code, 1000);
    assert.deepEqual(conn.controls(), ['Finalize', 'CloseStream']);
  });

  for (const { status, retryable, dgError, body, expect } of [
    { status: 401, retryable: false, dgError: 'Invalid credentials.', body: '', expect: 'Invalid credentials.' },
    { status: 429, retryable: true, dgError: 'Too many requests', body: '', expect: 'Too many requests' },
    { status: 500, retryable: true, dgError: undefined, body: '{"err_code":"INTERNAL_SERVER_ERROR","err_msg":"Something broke."}', expect: 'Something broke.' },
  ]) {
    it(`refused handshake ${status} -> ProviderError, retryable=${retryable}`, async () => {
      server.refuseNextHandshake({ status, dgError, body });
      const stt = new DeepgramStreamingStt({ apiKey: API_KEY, baseUrl: server.url });
      const stream = stt.stream({ sampleRate: RATE, language: 'en', signal: new AbortController().signal });
      const reader = new Reader(stream);
      push(stream, 1);
      const error = await expectFailure(reader, { code: `PROVIDER_ERR_HTTP_${status}`, retryable, status });
      assert.ok(error.message.includes(expect), error.message);
      assert.equal(server.refused.at(-1)?.headers.authorization, `Token ${API_KEY}`);
    });
  }

  it('a connection dropped mid-utterance rejects with a retryable error', async () => {
    const { stream, reader, connection } = open();
    push(stream, 1);
    (await connection).drop();
    await expectFailure(reader, { code: 'PROVIDER_ERR_CONNECTION_CLOSED', retryable: true });
  });

  it("Deepgram's error close frames: DATA-0000 (1008) is final, NET-0001 (1011) is retryable", async () => {
    for (const [code, reason, retryable] of [[1008, 'DATA-0000', false], [1011, 'NET-0001', true]] as const) {
      const { stream, reader, connection } = open();
      push(stream, 1);
      (await connection).close(code, reason);
      const error = await expectFailure(reader, { retryable });
      assert.ok(error.message.includes(reason), error.message);
    }
  });

  it('reconnects on the next push after Deepgram closed the socket while idle', async () => {
    const { stream, reader, connection } = open();
    push(stream, 1);
    const first = await connection;
    stream.flush();
    await first.waitForControl('Finalize');
    first.sendResults({ transcript: 'one', fromFinalize: true });
    await reader.until((event) => event.type === 'final');
    first.close(1011, 'NET-0001');
    await first.closed;
    const next = server.connection(server.connectionCount);
    push(stream, 2);
    const second = await next;
    await second.waitForAudioBytes(640);
    assert.deepEqual(second.audio(), littleEndian(frame(2)));
    stream.flush();
    await second.waitForControl('Finalize');
    second.sendResults({ transcript: 'two', fromFinalize: true });
    await reader.until((event) => event.type === 'final' && event.text === 'two');
    stream.close();
    await reader.done;
    assert.deepEqual(reader.finals(), ['one', 'two']);
  });

  it('an abort ends the iteration quietly, drops what is queued and closes the socket', async () => {
    const controller = new AbortController();
    const stt = new DeepgramStreamingStt({ apiKey: API_KEY, baseUrl: server.url });
    const stream = stt.stream({ sampleRate: RATE, language: 'en', signal: controller.signal });
    const connection = server.connection(server.connectionCount);
    const events = stream[Symbol.asyncIterator]();
    push(stream, 1);
    const conn = await connection;
    await conn.waitForAudioBytes(640);
    // Two messages in one write: the second is queued by the time the first is read.
    conn.sendResults({ transcript: 'half' });
    conn.sendResults({ transcript: 'half more' });
    assert.deepEqual(await events.next(), { done: false, value: { type: 'partial', text: 'half' } });
    controller.abort();
    assert.deepEqual(await events.next(), { done: true, value: undefined });
    assert.equal((await conn.closed).code, 1000);
  });

  it('keeps at most maxPendingAudioMs while connecting, dropping the oldest frames', async () => {
    const { stream, reader, connection } = open({ maxPendingAudioMs: 60 });
    push(stream, 1, 2, 3, 4, 5);
    const conn = await connection;
    await conn.waitForAudioBytes(3 * 640);
    assert.deepEqual(conn.audio(), Buffer.concat([3, 4, 5].map((seed) => littleEndian(frame(seed)))));
    assert.equal(stream.droppedFrames, 2);
    stream.close();
    await reader.done;
  });

  it('a handshake that never completes rejects with a retryable timeout', async () => {
    const silent = net.createServer(() => {}); // accepts TCP, never answers the upgrade
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const stt = new DeepgramStreamingStt({ apiKey: API_KEY, baseUrl: `ws://127.0.0.1:${port}/v1/listen`, connectTimeoutMs: 30 });
    const stream = stt.stream({ sampleRate: RATE, language: 'en', signal: new AbortController().signal });
    const reader = new Reader(stream);
    push(stream, 1);
    await expectFailure(reader, { code: 'PROVIDER_ERR_TIMEOUT', retryable: true });
    silent.close();
  });

  it('a refused TCP connection rejects with a retryable connect error', async () => {
    const gone = await DeepgramTestServer.start();
    const url = gone.url;
    await gone.close();
    const stt = new DeepgramStreamingStt({ apiKey: API_KEY, baseUrl: url });
    const stream = stt.stream({ sampleRate: RATE, language: 'en', signal: new AbortController().signal });
    const reader = new Reader(stream);
    push(stream, 1);
    await expectFailure(reader, { code: 'PROVIDER_ERR_CONNECT', retryable: true });
  });
});
