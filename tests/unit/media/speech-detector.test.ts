import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SpeechDetector, frameLevelDb, type SpeechDetectorEvent } from '../../../media/speech-detector.ts';

// Seeded noise so the test is deterministic.
function rng(seed: number) {
  return () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}
const random = rng(42);
const frame = (amplitude: number, toneHz = 0, offset = 0) => {
  const f = new Int16Array(320);
  for (let i = 0; i < 320; i++) {
    const tone = toneHz ? Math.sin((2 * Math.PI * toneHz * (offset + i)) / 16000) : random();
    f[i] = Math.round(amplitude * tone);
  }
  return f;
};
function run(detector: SpeechDetector, frames: Int16Array[]): SpeechDetectorEvent[] {
  return frames.map((f) => detector.push(f)).filter((e): e is SpeechDetectorEvent => e !== null);
}
const repeat = (n: number, make: (i: number) => Int16Array) => Array.from({ length: n }, (_, i) => make(i));

describe('SpeechDetector', () => {
  it('measures levels in dBFS', () => {
    assert.equal(frameLevelDb(new Int16Array(320)), -100);
    assert.ok(Math.abs(frameLevelDb(frame(32767 * 0.5, 440)) - -9) < 0.2);
  });

  it('finds one utterance with pre-roll and ends it after the configured silence', () => {
    const d = new SpeechDetector({ endSilenceMs: 400, preRollMs: 100, tailMs: 60 });
    const quiet = repeat(50, () => frame(30));
    const speech = repeat(50, (i) => frame(8000, 300, i * 320));
    const silence = repeat(30, () => frame(30));
    const events = run(d, [...quiet, ...speech, ...silence]);
    assert.deepEqual(events.map((e) => e.kind), ['speech_start', 'utterance']);
    assert.equal(events[0]!.frameIndex, 50);
    const u = events[1]!;
    assert.ok(u.kind === 'utterance');
    // ends exactly 400 ms (20 frames) after the last loud frame
    assert.equal(u.frameIndex, 100 + 20 - 1);
    assert.equal(u.voicedMs, 1000);
    // pre-roll (5 frames + onset) + speech + tail (3 frames)
    const frames = u.audio.length / 320;
    assert.ok(frames >= 50 + 3 + 5 && frames <= 50 + 3 + 7, `utterance is ${frames} frames`);
    assert.equal(u.cut, false);
  });

  it('ignores clicks shorter than the onset and discards utterances below the minimum', () => {
    const d = new SpeechDetector({ minSpeechMs: 200, endSilenceMs: 200 });
    const quiet = () => frame(30);
    const click = [frame(9000, 500)];
    const short = repeat(5, (i) => frame(9000, 500, i * 320));
    const events = run(d, [...repeat(20, quiet), ...click, ...repeat(20, quiet), ...short, ...repeat(20, quiet)]);
    assert.deepEqual(events.map((e) => e.kind), ['speech_start', 'discarded']);
  });

  it('adapts to steady background noise', () => {
    const d = new SpeechDetector({ endSilenceMs: 300 });
    // Loud steady noise (-30 dBFS) for 3 s must not count as speech after the floor adapts...
    const noisy = run(d, repeat(150, () => frame(1000)));
    const noisyStarts = noisy.filter((e) => e.kind === 'utterance').length;
    assert.ok(d.noiseFloorDb > -40, `noise floor ${d.noiseFloorDb.toFixed(1)}`);
    // ...while speech well above it still does.
    const events = run(d, [...repeat(40, (i) => frame(16000, 250, i * 320)), ...repeat(30, () => frame(1000))]);
    assert.ok(events.some((e) => e.kind === 'utterance'));
    assert.ok(noisyStarts <= 1, `${noisyStarts} utterances in steady noise`);
  });

  it('cuts an utterance at the maximum length', () => {
    const d = new SpeechDetector({ maxUtteranceMs: 1000 });
    const events = run(d, repeat(60, (i) => frame(8000, 300, i * 320)));
    const u = events.find((e) => e.kind === 'utterance');
    assert.ok(u && u.kind === 'utterance' && u.cut);
    assert.equal(u.audio.length / 320, 50);
  });
});
