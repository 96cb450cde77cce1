import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { PocketsphinxStt } from '../../../providers/local/pocketsphinx-stt.ts';
import { ProviderError, type SttStream, type TranscriptEvent } from '../../../providers/types.ts';
import { fliteSpeech, frames20ms } from '../../helpers/flite-speech.ts';
import { wordErrorRate } from '../../helpers/word-error-rate.ts';

const SENTENCES = [
  'what time is it',
  'hello there',
  'what can you do',
  'say that again',
  'goodbye',
  'thank you very much',
  'can you help me please',
  'tell me the time',
];
const LONG = 'the weather today is sunny and warm, and tomorrow it will rain in the morning before it clears up again';
/** Flite speech decodes at ~3-10% WER here; a broken decoder or wrong audio format gives 80-100%. */
const MAX_MEAN_WER = 0.35;
const TIMEOUT = { timeout: 120_000 };

/** Reads a stream in the background; tests await the events they expect. */
class Transcript {
  readonly events: TranscriptEvent[] = [];
  readonly done: Promise<void>;
  #wake: () => void = () => {};

  constructor(stream: SttStream) {
    this.done = (async () => {
      try {
        for await (const event of stream) {
          this.events.push(event);
          this.#wake();
        }
      } finally {
        this.#wake();
      }
    })();
    this.done.catch(() => undefined);
  }

  /** The n-th final (1-based), or rejects if the stream ends before it comes. */
  final(n = 1): Promise<string> {
    return this.#nth('final', n);
  }

  partial(n = 1): Promise<string> {
    return this.#nth('partial', n);
  }

  async #nth(type: TranscriptEvent['type'], n: number): Promise<string> {
    for (;;) {
      const matching = this.events.filter((event) => event.type === type);
      if (matching.length >= n) return matching[n - 1].text;
      const ended = await Promise.race([new Promise<false>((resolve) => (this.#wake = () => resolve(false))), this.done.then(() => true)]);
      if (ended && this.events.filter((event) => event.type === type).length < n) throw new Error(`stream ended after ${matching.length} ${type}s`);
    }
  }
}

function push(stream: SttStream, samples: Int16Array): void {
  for (const frame of frames20ms(samples)) stream.pushAudio({ samples: frame, sampleRate: 16000 });
}

function open(stt: PocketsphinxStt, signal = new AbortController().signal): { stream: SttStream; transcript: Transcript } {
  const stream = stt.stream({ sampleRate: 16000, language: 'en-US', signal });
  return { stream, transcript: new Transcript(stream) };
}

describe('PocketsphinxStt', () => {
  const speech = new Map<string, Int16Array>();
  const stt = new PocketsphinxStt({ decoders: 1 });

  before(async () => {
    for (const text of [...SENTENCES, LONG]) speech.set(text, await fliteSpeech(text));
  });
  after(() => stt.close());

  test('recognises short flite sentences (mean WER bound)', TIMEOUT, async () => {
    const { stream, transcript } = open(stt);
    let total = 0;
    for (const [i, text] of SENTENCES.entries()) {
      push(stream, speech.get(text) as Int16Array);
      stream.flush();
      const heard = await transcript.final(i + 1);
      const wer = wordErrorRate(text, heard);
      console.log(`  "${text}" -> "${heard}" (WER ${wer.toFixed(2)})`);
      total += wer;
    }
    const mean = total / SENTENCES.length;
    console.log(`  mean WER ${mean.toFixed(3)} over ${SENTENCES.length} sentences (bound ${MAX_MEAN_WER})`);
    assert.ok(mean <= MAX_MEAN_WER, `mean WER ${mean} > ${MAX_MEAN_WER}`);
    stream.close();
  });

  test('partials arrive before the final of a long utterance', TIMEOUT, async () => {
    const { stream, transcript } = open(stt);
    push(stream, speech.get(LONG) as Int16Array);
    // Not flushed yet: the decoder works through the audio and reports what it has heard so far.
    assert.ok((await transcript.partial(1)).length > 0);
    await transcript.partial(3);
    stream.flush();
    const heard = await transcript.final();
    const firstFinal = transcript.events.findIndex((event) => event.type === 'final');
    const partials = transcript.events.filter((event) => event.type === 'partial');
    assert.equal(transcript.events.slice(0, firstFinal).filter((event) => event.type === 'partial').length, partials.length);
    const audioMs = ((speech.get(LONG) as Int16Array).length / 16000) * 1000;
    assert.ok(partials.length <= audioMs / 200, `${partials.length} partials for ${audioMs} ms: at most one per 200 ms`);
    assert.ok(wordErrorRate(LONG, heard) <= 0.5, heard);
    stream.close();
  });

  test('flush without audio gives an empty final', TIMEOUT, async () => {
    const { stream, transcript } = open(stt);
    stream.flush();
    assert.equal(await transcript.final(), '');
    stream.close();
  });

  test('discard drops the utterance without a final and frees the decoder', TIMEOUT, async () => {
    const first = open(stt);
    push(first.stream, speech.get('what time is it') as Int16Array);
    first.stream.discard();
    push(first.stream, speech.get('goodbye') as Int16Array);
    first.stream.flush();
    assert.equal(await first.transcript.final(), 'goodbye');
    // The only decoder is free again: another stream is served.
    const second = open(stt);
    push(second.stream, speech.get('hello there') as Int16Array);
    second.stream.flush();
    assert.equal(await second.transcript.final(), 'hello there');
    assert.equal(first.transcript.events.filter((event) => event.type === 'final').length, 1);
    first.stream.close();
    second.stream.close();
  });

  test('with one decoder, a second stream waits and still gets its final', TIMEOUT, async () => {
    const a = open(stt);
    const b = open(stt);
    const order: string[] = [];
    push(a.stream, speech.get(LONG) as Int16Array);
    push(b.stream, speech.get('say that again') as Int16Array);
    b.stream.flush();
    a.stream.flush();
    const [heardA, heardB] = await Promise.all([
      a.transcript.final().then((text) => (order.push('a'), text)),
      b.transcript.final().then((text) => (order.push('b'), text)),
    ]);
    assert.deepEqual(order, ['a', 'b'], 'b waited for the decoder a was using');
    assert.ok(wordErrorRate(LONG, heardA) <= 0.5, heardA);
    assert.equal(heardB, 'say that again');
    a.stream.close();
    b.stream.close();
  });

  test('abort ends the stream quietly and releases the decoder', TIMEOUT, async () => {
    const controller = new AbortController();
    const aborted = open(stt, controller.signal);
    push(aborted.stream, speech.get(LONG) as Int16Array);
    await aborted.transcript.partial(); // the decoder is busy with it
    controller.abort();
    await aborted.transcript.done; // resolves: no ProviderError
    assert.equal(aborted.transcript.events.filter((event) => event.type === 'final').length, 0);
    aborted.stream.pushAudio({ samples: new Int16Array(320), sampleRate: 16000 }); // ignored after abort
    const next = open(stt);
    push(next.stream, speech.get('what can you do') as Int16Array);
    next.stream.flush();
    assert.equal(await next.transcript.final(), 'what can you do');
    next.stream.close();
  });

  test('another rate or language fails the stream with a ProviderError', TIMEOUT, async () => {
    const signal = new AbortController().signal;
    for (const [options, code] of [
      [{ sampleRate: 48000, language: 'en-US' }, 'PROVIDER_ERR_SAMPLE_RATE'],
      [{ sampleRate: 16000, language: 'de-DE' }, 'PROVIDER_ERR_LANGUAGE'],
    ] as const) {
      const stream = stt.stream({ ...options, signal });
      await assert.rejects(
        (async () => {
          for await (const _ of stream) await nextTurn();
        })(),
        (error: unknown) => error instanceof ProviderError && error.code === code && !error.retryable,
      );
    }
  });
});
