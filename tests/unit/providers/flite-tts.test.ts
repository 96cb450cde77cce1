import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FliteTts, splitForSynthesis } from '../../../providers/local/flite-tts.ts';
import { ProviderError, type AudioFrame } from '../../../providers/types.ts';

const TIMEOUT = { timeout: 30_000 };

async function* deltas(text: string): AsyncIterable<string> {
  for (const word of text.split(/(?<= )/)) yield word;
}

async function collect(frames: AsyncIterable<AudioFrame>): Promise<AudioFrame[]> {
  const out: AudioFrame[] = [];
  for await (const frame of frames) out.push(frame);
  return out;
}

function rms(samples: Int16Array): number {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / Math.max(1, samples.length));
}

/**
 * A text stream that yields `first`, then waits for `open()` before yielding `rest` and ending;
 * `onStall` runs when it starts waiting.
 */
function gatedText(first: string, rest: string, onStall = () => {}) {
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  const state = { ended: false, open };
  async function* text(): AsyncIterable<string> {
    yield first;
    onStall();
    await gate;
    yield rest;
    state.ended = true;
  }
  return { text: text(), state };
}

describe('FliteTts', () => {
  const tts = new FliteTts();
  const signal = new AbortController().signal;

  test('speaks audible 16 kHz audio of a plausible length', TIMEOUT, async () => {
    const text = 'Hello there. What time is it right now in the city?';
    const started = performance.now();
    const frames = await collect(tts.synthesize(deltas(text), { signal }));
    const elapsedMs = performance.now() - started;
    assert.equal(frames.length, 2, 'one frame per sentence');
    const seconds = frames.reduce((sum, frame) => sum + frame.samples.length / frame.sampleRate, 0);
    console.log(`  ${text.split(' ').length} words -> ${seconds.toFixed(2)} s of audio in ${elapsedMs.toFixed(1)} ms`);
    for (const frame of frames) {
      assert.equal(frame.sampleRate, 16000);
      assert.ok(rms(frame.samples) > 500, `rms ${rms(frame.samples)}`);
    }
    // Spoken English runs at 2-4 words per second; flite adds a little silence per sentence.
    const words = text.split(' ').length;
    assert.ok(seconds > words / 4 && seconds < words / 2 + 1, `${seconds} s for ${words} words`);
  });

  test('speaks the first sentence before the text stream ends', TIMEOUT, async () => {
    const { text, state } = gatedText('Hello there. ', 'How are you today?');
    const frames: AudioFrame[] = [];
    for await (const frame of tts.synthesize(text, { signal })) {
      if (frames.length === 0) {
        assert.equal(state.ended, false);
        state.open();
      }
      frames.push(frame);
    }
    assert.equal(frames.length, 2);
    assert.equal(state.ended, true);
  });

  test('synthesises a long sentence in pieces', TIMEOUT, async () => {
    const sentence = 'The quick brown fox jumps over the lazy dog, and then it runs far away into the dark forest where nobody can find it.';
    const frames = await collect(new FliteTts({ maxCharsPerCall: 40 }).synthesize(deltas(sentence), { signal }));
    assert.equal(frames.length, splitForSynthesis(sentence, 40).length);
    assert.ok(frames.length >= 3);
    for (const frame of frames) assert.ok(rms(frame.samples) > 500);
  });

  test('cuts at clause boundaries, then at spaces, never above the limit', () => {
    assert.deepEqual(splitForSynthesis('one two three, four five six seven', 20), ['one two three,', 'four five six seven']);
    assert.deepEqual(splitForSynthesis('alpha beta gamma delta epsilon', 12), ['alpha beta', 'gamma delta', 'epsilon']);
    assert.deepEqual(splitForSynthesis('  short  ', 12), ['short']);
    for (const piece of splitForSynthesis('a'.repeat(30), 12)) assert.ok(piece.length <= 12);
  });

  test('an abort while the text stream stalls ends the audio promptly', { timeout: 10_000 }, async () => {
    const controller = new AbortController();
    // The gate never opens: the agent went quiet, and the abort comes while TTS waits for text.
    const { text } = gatedText('Hello there. ', 'This is never said.', () => controller.abort());
    const frames = await collect(tts.synthesize(text, { signal: controller.signal }));
    assert.equal(frames.length, 1);
    assert.ok(controller.signal.aborted);
  });

  test('an abort between sentences stops before the next one', TIMEOUT, async () => {
    const controller = new AbortController();
    const frames: AudioFrame[] = [];
    for await (const frame of tts.synthesize(deltas('One. Two. Three. Four.'), { signal: controller.signal })) {
      frames.push(frame);
      controller.abort();
    }
    assert.equal(frames.length, 1);
  });

  test('the 8 kHz voice and an unknown voice', TIMEOUT, async () => {
    const [frame] = await collect(tts.synthesize(deltas('Hello.'), { signal, voice: 'kal' }));
    assert.equal(frame.sampleRate, 8000);
    await assert.rejects(
      collect(tts.synthesize(deltas('Hello.'), { signal, voice: 'slt' })),
      (error: unknown) => error instanceof ProviderError && error.code === 'PROVIDER_ERR_VOICE' && !error.retryable,
    );
  });
});
