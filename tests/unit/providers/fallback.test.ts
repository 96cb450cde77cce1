import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CircuitBreaker } from '../../../providers/circuit-breaker.ts';
import type { FallbackClock, FallbackEvent, FallbackOptions } from '../../../providers/fallback.ts';
import { FallbackAgent } from '../../../providers/fallback-agent.ts';
import { FallbackS2s } from '../../../providers/fallback-s2s.ts';
import { FallbackStt } from '../../../providers/fallback-stt.ts';
import { FallbackTts } from '../../../providers/fallback-tts.ts';
import { FakeAgent } from '../../../providers/testing/fake-agent.ts';
import { FakeS2s } from '../../../providers/testing/fake-s2s.ts';
import { FakeStt } from '../../../providers/testing/fake-stt.ts';
import { FakeTts, toneFrame } from '../../../providers/testing/fake-tts.ts';
import { isAbort, ProviderError, type AudioFrame, type ProviderKind } from '../../../providers/types.ts';

/** Timers that fire only when the test moves time on. */
class ManualClock implements FallbackClock {
  time = 0;
  /** Every delay requested, in order. */
  readonly requested: number[] = [];
  readonly #timers = new Map<number, { at: number; ms: number; callback: () => void }>();
  readonly #waiters: Array<{ ms: number; resolve: () => void }> = [];
  #nextId = 1;

  now = (): number => this.time;

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.time + ms, ms, callback });
    this.requested.push(ms);
    for (const waiter of this.#waiters.filter((w) => w.ms === ms)) {
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Resolves once a timer of `ms` is pending. */
  pending(ms: number): Promise<void> {
    if ([...this.#timers.values()].some((timer) => timer.ms === ms)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ ms, resolve }));
  }

  advance(ms: number): void {
    this.time += ms;
    const due = [...this.#timers].filter(([, timer]) => timer.at <= this.time).sort(([, x], [, y]) => x.at - y.at);
    for (const [id, timer] of due) {
      this.#timers.delete(id);
      timer.callback();
    }
  }
}

type Name = 'a' | 'b';
interface Fault {
  /** Outputs (events, frames, deltas) delivered before the fault; 0: before the first (S2S: the connect). */
  after: number;
  /** Without one: a stall. */
  error?: ProviderError;
  onStrike?: () => void;
}
interface Rig {
  run(signal?: AbortSignal): Promise<string>;
  calls(name: Name): number;
  signal(name: Name, call: number): AbortSignal;
  breaker(name: Name): CircuitBreaker;
}
interface Harness {
  kind: ProviderKind;
  /** What run() returns when provider `name` answers without trouble. */
  clean(name: Name): string;
  /** Does an abort end the output quietly (STT, per its contract) or reject? */
  abortEnds: boolean;
  setup(faults: Partial<Record<Name, Fault[]>>, options: Partial<FallbackOptions>): Rig;
}

const NAMES: Name[] = ['a', 'b'];
const never = new AbortController().signal;
const frame = (i: number): AudioFrame => toneFrame({ sampleRate: 16_000, frameMs: 20, hz: 300 + 100 * i });
const sttHarness: Harness = {
  kind: 'stt',
  clean: (name) => `heard by ${name}`,
  abortEnds: true,
  setup(faults, options) {
    const make = (name: Name): FakeStt =>
      new FakeStt({
        name,
        transcribe: () => ({ partials: ['heard'], final: `heard by ${name}` }),
        faults: (faults[name] ?? []).map(({ after, ...rest }) => ({ afterEvents: after, ...rest })),
      });
    const fakes = { a: make('a'), b: make('b') };
    const wrapper = new FallbackStt([fakes.a, fakes.b], options);
    return {
      async run(signal = never) {
        const stream = wrapper.stream({ sampleRate: 16_000, language: 'en', signal });
        try {
          for (let i = 0; i < 3; i++) stream.pushAudio(frame(i));
          stream.flush();
          for await (const event of stream) if (event.type === 'final') return event.text;
          return '(ended)';
        } finally {
          stream.close();
        }
      },
      calls: (name) => fakes[name].streams.length,
      signal: (name, call) => fakes[name].streams[call]!.options.signal,
      breaker: (name) => wrapper.breakers[NAMES.indexOf(name)]!,
    };
  },
};

async function* text(...chunks: string[]): AsyncGenerator<string> {
  yield* chunks;
}

const ttsHarness: Harness = {
  kind: 'tts',
  clean: (name) => name.repeat(4), // two sentences of two frames
  abortEnds: false,
  setup(faults, options) {
    const make = (name: Name): FakeTts =>
      new FakeTts({
        name,
        sampleRate: name === 'a' ? 16_000 : 24_000,
        framesPerSentence: 2,
        faults: (faults[name] ?? []).map(({ after, ...rest }) => ({ afterFrames: after, ...rest })),
      });
    const fakes = { a: make('a'), b: make('b') };
    const wrapper = new FallbackTts([fakes.a, fakes.b], options);
    return {
      async run(signal = never) {
        let made = '';
        for await (const f of wrapper.synthesize(text('Hello there. ', 'Bye.'), { signal })) made += f.sampleRate === 16_000 ? 'a' : 'b';
        return made;
      },
      calls: (name) => fakes[name].requests.length,
      signal: (name, call) => fakes[name].requests[call]!.options.signal,
      breaker: (name) => wrapper.breakers[NAMES.indexOf(name)]!,
    };
  },
};

const agentHarness: Harness = {
  kind: 'agent',
  clean: (name) => `reply from ${name}`,
  abortEnds: false,
  setup(faults, options) {
    const make = (name: Name): FakeAgent =>
      new FakeAgent({
        name,
        reply: () => `reply from ${name}`,
        faults: (faults[name] ?? []).map(({ after, ...rest }) => ({ afterDeltas: after, ...rest })),
      });
    const fakes = { a: make('a'), b: make('b') };
    const wrapper = new FallbackAgent([fakes.a, fakes.b], options);
    return {
      async run(signal = never) {
        let reply = '';
        for await (const delta of wrapper.respond({ history: [], userText: 'hi', signal })) reply += delta;
        return reply;
      },
      calls: (name) => fakes[name].requests.length,
      signal: (name, call) => fakes[name].requests[call]!.signal,
      breaker: (name) => wrapper.breakers[NAMES.indexOf(name)]!,
    };
  },
};

const s2sHarness: Harness = {
  kind: 's2s',
  clean: (name) => `hello from ${name}`,
  abortEnds: false,
  setup(faults, options) {
    const make = (name: Name): FakeS2s =>
      new FakeS2s({
        name,
        events: [{ type: 'transcript', role: 'agent', text: `hello from ${name}`, final: true }, { type: 'response_done' }],
        faults: (faults[name] ?? []).map(({ after, ...rest }) => ({ afterEvents: after, ...rest })),
      });
    const fakes = { a: make('a'), b: make('b') };
    const wrapper = new FallbackS2s([fakes.a, fakes.b], options);
    return {
      async run(signal = never) {
        const session = await wrapper.connect({ sampleRate: 16_000, instructions: '', history: [], signal });
        let heard = '';
        try {
          for await (const event of session) {
            if (event.type === 'transcript') heard += event.text;
            if (event.type === 'response_done') return heard;
          }
          return '(ended)';
        } finally {
          session.close();
        }
      },
      calls: (name) => fakes[name].connects.length,
      signal: (name, call) => fakes[name].connects[call]!.signal,
      breaker: (name) => wrapper.breakers[NAMES.indexOf(name)]!,
    };
  },
};

const unavailable = (provider: string): ProviderError => ProviderError.fromHttpStatus(provider, 503, 'unavailable');
const badRequest = (provider: string): ProviderError => ProviderError.fromHttpStatus(provider, 400, 'bad request');

/** Options on a manual clock that record every fallback; no timeout, no retries unless asked. */
function options(overrides: Partial<FallbackOptions> = {}) {
  const clock = new ManualClock();
  const fallbacks: FallbackEvent[] = [];
  const merged: Partial<FallbackOptions> = {
    clock,
    retries: 0,
    firstOutputTimeoutMs: 0,
    onFallback: (event) => fallbacks.push(event),
    ...overrides,
  };
  return { clock, fallbacks, options: merged };
}

for (const h of [sttHarness, ttsHarness, agentHarness, s2sHarness]) {
  describe(`Fallback ${h.kind}`, { timeout: 10_000 }, () => {
    it('retries a retryable failure before the first output on the same provider, after the backoff', async () => {
      const { clock, fallbacks, options: o } = options({ retries: 1, retryDelayMs: 100 });
      const rig = h.setup({ a: [{ after: 0, error: unavailable('a') }] }, o);
      const result = rig.run();
      await clock.pending(100);
      clock.advance(100);
      assert.equal(await result, h.clean('a'));
      assert.deepEqual([rig.calls('a'), rig.calls('b')], [2, 0]);
      assert.deepEqual(fallbacks, []);
      assert.equal(rig.breaker('a').state, 'closed');
    });

    it('backs off exponentially, then moves to the next provider when retries run out', async () => {
      const { clock, fallbacks, options: o } = options({ retries: 2, retryDelayMs: 100 });
      const rig = h.setup({ a: [0, 1, 2].map(() => ({ after: 0, error: unavailable('a') })) }, o);
      const result = rig.run();
      await clock.pending(100);
      clock.advance(100);
      await clock.pending(200);
      clock.advance(200);
      assert.equal(await result, h.clean('b'));
      assert.deepEqual(clock.requested, [100, 200]);
      assert.deepEqual([rig.calls('a'), rig.calls('b')], [3, 1]);
      assert.deepEqual(fallbacks, [{ kind: h.kind, from: 'a', to: 'b', reason: 'PROVIDER_ERR_HTTP_503' }]);
    });

    it('moves on at once after a non-retryable failure', async () => {
      const { clock, fallbacks, options: o } = options({ retries: 3 });
      const rig = h.setup({ a: [{ after: 0, error: badRequest('a') }] }, o);
      assert.equal(await rig.run(), h.clean('b'));
      assert.deepEqual([rig.calls('a'), rig.calls('b')], [1, 1]);
      assert.deepEqual(clock.requested, [], 'no backoff');
      assert.deepEqual(fallbacks, [{ kind: h.kind, from: 'a', to: 'b', reason: 'PROVIDER_ERR_HTTP_400' }]);
    });

    it('skips a provider whose circuit is open, and tries it again after openMs', async () => {
      const { clock, fallbacks, options: o } = options({ breaker: { failureThreshold: 1, openMs: 1_000 } });
      const rig = h.setup({ a: [{ after: 0, error: badRequest('a') }] }, o);
      assert.equal(await rig.run(), h.clean('b'));
      assert.equal(rig.breaker('a').state, 'open');
      assert.equal(await rig.run(), h.clean('b'));
      assert.equal(rig.calls('a'), 1, 'not called while open');
      assert.deepEqual(fallbacks[1], { kind: h.kind, from: 'a', to: 'b', reason: 'PROVIDER_ERR_CIRCUIT_OPEN' });
      clock.advance(1_000);
      assert.equal(await rig.run(), h.clean('a'));
      assert.equal(rig.breaker('a').state, 'closed', 'the trial succeeded');
      assert.equal(fallbacks.length, 2);
    });

    it('propagates a failure after the first output without replaying it anywhere', async () => {
      const { fallbacks, options: o } = options({ retries: 2 });
      const failure = unavailable('a');
      const rig = h.setup({ a: [{ after: 1, error: failure }] }, o);
      await assert.rejects(rig.run(), (error) => error === failure);
      assert.deepEqual([rig.calls('a'), rig.calls('b')], [1, 0]);
      assert.deepEqual(fallbacks, []);
      assert.equal(rig.breaker('a').toJSON().consecutiveFailures, 1, 'still a failure of the provider');
    });

    it('counts no output within firstOutputTimeoutMs as a retryable failure and abandons the attempt', async () => {
      const { clock, fallbacks, options: o } = options({ firstOutputTimeoutMs: 1_000 });
      const rig = h.setup({ a: [{ after: 0 }] }, o);
      const result = rig.run();
      await clock.pending(1_000);
      clock.advance(1_000);
      assert.equal(await result, h.clean('b'));
      assert.deepEqual(fallbacks, [{ kind: h.kind, from: 'a', to: 'b', reason: 'PROVIDER_ERR_TIMEOUT' }]);
      assert.equal(rig.signal('a', 0).aborted, true);
    });

    it('propagates the last error when every provider fails', async () => {
      const { options: o } = options();
      const last = unavailable('b');
      const rig = h.setup({ a: [{ after: 0, error: badRequest('a') }], b: [{ after: 0, error: last }] }, o);
      await assert.rejects(rig.run(), (error) => error === last);
    });

    it('treats an abort as no failure: nothing counted, no fallback', async () => {
      const { fallbacks, options: o } = options({ breaker: { failureThreshold: 1 }, retries: 2 });
      let struck!: () => void;
      const stalled = new Promise<void>((resolve) => (struck = resolve));
      const rig = h.setup({ a: [{ after: 0, onStrike: () => struck() }] }, o);
      const controller = new AbortController();
      const outcome = rig.run(controller.signal).then(
        (value) => value,
        (error: unknown) => (isAbort(error) ? '(aborted)' : error),
      );
      await stalled;
      controller.abort();
      assert.equal(await outcome, h.abortEnds ? '(ended)' : '(aborted)');
      assert.equal(rig.breaker('a').state, 'closed');
      assert.equal(rig.breaker('a').toJSON().consecutiveFailures, 0);
      assert.deepEqual([rig.calls('a'), rig.calls('b')], [1, 0]);
      assert.deepEqual(fallbacks, []);
      assert.equal(rig.signal('a', 0).aborted, true);
    });
  });
}

const sttOptions = (signal = never) => ({ sampleRate: 16_000, language: 'en', signal });

describe('FallbackStt replay', { timeout: 10_000 }, () => {
  it('replays only the utterance not yet answered into the next provider, then stays there', async () => {
    const { fallbacks, options: o } = options();
    const a = new FakeStt({ name: 'a', transcripts: ['first'], faults: [{ afterEvents: 1, error: badRequest('a') }] });
    const b = new FakeStt({ name: 'b', transcripts: ['second', 'third'] });
    const stream = new FallbackStt([a, b], o).stream(sttOptions());
    const events = stream[Symbol.asyncIterator]();
    stream.pushAudio(frame(0));
    stream.flush();
    assert.deepEqual((await events.next()).value, { type: 'final', text: 'first' });
    stream.pushAudio(frame(1));
    stream.pushAudio(frame(2));
    stream.flush();
    assert.deepEqual((await events.next()).value, { type: 'final', text: 'second' });
    assert.deepEqual(b.streams[0]!.utterances, [[frame(1), frame(2)]]);
    stream.pushAudio(frame(3));
    stream.flush();
    assert.deepEqual((await events.next()).value, { type: 'final', text: 'third' });
    assert.equal(a.streams.length, 1);
    assert.deepEqual(b.streams[0]!.utterances[1], [frame(3)]);
    assert.deepEqual(fallbacks, [{ kind: 'stt', from: 'a', to: 'b', reason: 'PROVIDER_ERR_HTTP_400' }]);
    stream.close();
  });

  it('keeps frames pushed during the backoff for the retried stream', async () => {
    const { clock, options: o } = options({ retries: 1, retryDelayMs: 100 });
    const a = new FakeStt({ name: 'a', transcripts: ['hello'], faults: [{ onOpen: true, error: unavailable('a') }] });
    const stream = new FallbackStt([a, new FakeStt({ name: 'b' })], o).stream(sttOptions());
    stream.pushAudio(frame(0));
    await clock.pending(100);
    stream.pushAudio(frame(1));
    stream.flush();
    clock.advance(100);
    assert.deepEqual((await stream[Symbol.asyncIterator]().next()).value, { type: 'final', text: 'hello' });
    assert.deepEqual(a.streams[0]!.frames, [frame(0)]);
    assert.deepEqual(a.streams[1]!.utterances, [[frame(0), frame(1)]]);
    stream.close();
  });

  it('replays several unanswered utterances with their flushes, in order', async () => {
    const { options: o } = options();
    const a = new FakeStt({ name: 'a', faults: [{ error: badRequest('a') }] });
    const b = new FakeStt({ name: 'b', transcripts: ['one', 'two'] });
    const stream = new FallbackStt([a, b], o).stream(sttOptions());
    stream.pushAudio(frame(0));
    stream.flush(); // a fails here, but the wrapper hears of it only later
    stream.pushAudio(frame(1));
    stream.flush();
    const finals: string[] = [];
    for await (const event of stream) if (event.type === 'final' && finals.push(event.text) === 2) break;
    assert.deepEqual(finals, ['one', 'two']);
    assert.deepEqual(b.streams[0]!.utterances, [[frame(0)], [frame(1)]]);
  });

  it('does not replay a discarded utterance', async () => {
    const { options: o } = options();
    const a = new FakeStt({ name: 'a', faults: [{ error: badRequest('a') }] });
    const b = new FakeStt({ name: 'b', transcripts: ['kept'] });
    const stream = new FallbackStt([a, b], o).stream(sttOptions());
    stream.pushAudio(frame(0));
    stream.discard();
    stream.pushAudio(frame(1));
    stream.flush();
    assert.deepEqual((await stream[Symbol.asyncIterator]().next()).value, { type: 'final', text: 'kept' });
    assert.deepEqual(b.streams[0]!.frames, [frame(1)]);
    stream.close();
  });

  it('propagates the failure when the utterance outgrew maxReplayMs', async () => {
    const { options: o } = options();
    const failure = badRequest('a');
    const a = new FakeStt({ name: 'a', faults: [{ error: failure }] });
    const b = new FakeStt({ name: 'b' });
    const stream = new FallbackStt([a, b], { ...o, maxReplayMs: 40 }).stream(sttOptions());
    for (let i = 0; i < 3; i++) stream.pushAudio(frame(i)); // 60 ms
    stream.flush();
    await assert.rejects(stream[Symbol.asyncIterator]().next(), (error) => error === failure);
    assert.equal(b.streams.length, 0);
  });
});

describe('FallbackTts input', { timeout: 10_000 }, () => {
  it('gives the next provider the whole text, including what the failed one had read', async () => {
    const { options: o } = options();
    const a = new FakeTts({ name: 'a', faults: [{ error: badRequest('a') }] });
    const b = new FakeTts({ name: 'b', framesPerSentence: 1 });
    const frames: AudioFrame[] = [];
    for await (const f of new FallbackTts([a, b], o).synthesize(text('Hello there. ', 'How are ', 'you?'), { signal: never })) frames.push(f);
    assert.deepEqual(a.requests[0]!.sentences, ['Hello there.']);
    assert.deepEqual(b.requests[0]!.sentences, ['Hello there.', 'How are you?']);
    assert.equal(frames.length, 2);
  });

  it('propagates a failing text source as is, without charging the provider or falling back', async () => {
    const { fallbacks, options: o } = options({ breaker: { failureThreshold: 1 } });
    const agentFailure = unavailable('agent');
    async function* failingText(): AsyncGenerator<string> {
      yield 'Hello';
      throw agentFailure;
    }
    const a = new FakeTts({ name: 'a' });
    const b = new FakeTts({ name: 'b' });
    const wrapper = new FallbackTts([a, b], o);
    await assert.rejects(async () => {
      for await (const _ of wrapper.synthesize(failingText(), { signal: never }));
    }, (error) => error === agentFailure);
    assert.equal(wrapper.breakers[0]!.toJSON().consecutiveFailures, 0);
    assert.equal(b.requests.length, 0);
    assert.deepEqual(fallbacks, []);
  });
});

describe('FallbackAgent', { timeout: 10_000 }, () => {
  it('a consumer that stops early aborts the provider, which is no failure', async () => {
    const { options: o } = options({ breaker: { failureThreshold: 1 } });
    const a = new FakeAgent({ name: 'a', replies: ['one two three'] });
    const wrapper = new FallbackAgent([a, new FakeAgent({ name: 'b' })], o);
    for await (const delta of wrapper.respond({ history: [], userText: 'hi', signal: never })) {
      assert.equal(delta, 'one');
      break;
    }
    assert.equal(a.requests[0]!.signal.aborted, true);
    assert.equal(wrapper.breakers[0]!.toJSON().consecutiveFailures, 0);
  });

  it('fails with PROVIDER_ERR_CIRCUIT_OPEN when every circuit is open', async () => {
    const { options: o } = options({ breaker: { failureThreshold: 1 } });
    const a = new FakeAgent({ name: 'a', faults: [{ error: badRequest('a') }] });
    const b = new FakeAgent({ name: 'b', faults: [{ error: badRequest('b') }] });
    const wrapper = new FallbackAgent([a, b], o);
    const respond = async (): Promise<void> => {
      for await (const _ of wrapper.respond({ history: [], userText: 'hi', signal: never }));
    };
    await assert.rejects(respond(), (error) => error instanceof ProviderError && error.provider === 'b');
    await assert.rejects(respond(), (error) => error instanceof ProviderError && error.code === 'PROVIDER_ERR_CIRCUIT_OPEN' && error.retryable);
    assert.deepEqual([a.requests.length, b.requests.length], [1, 1]);
  });
});

describe('FallbackS2s session', { timeout: 10_000 }, () => {
  it('passes audio, say and cancel through to the connected provider', async () => {
    const { options: o } = options();
    const a = new FakeS2s({ name: 'a', faults: [{ error: badRequest('a') }] });
    const b = new FakeS2s({ name: 'b' });
    const session = await new FallbackS2s([a, b], o).connect({ sampleRate: 16_000, instructions: '', history: [], signal: never });
    session.pushAudio(frame(0));
    session.say('Welcome.');
    session.cancelResponse('Wel');
    const types: string[] = [];
    for await (const event of session) if (types.push(event.type) && event.type === 'response_done') break;
    assert.deepEqual(types, ['transcript', 'audio', 'audio', 'audio', 'response_done']);
    const inner = b.sessions[0]!;
    assert.deepEqual([inner.frames, inner.said, inner.cancels], [[frame(0)], ['Welcome.'], ['Wel']]);
    session.close();
    assert.equal(inner.closed, true);
  });
});
