import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SileroVadPool } from '../../../media/vad/silero-vad.ts';
import { VoiceActivity, type VoiceActivityDecision, type VoiceActivityOptions } from '../../../media/vad/voice-activity.ts';
import type { FrameDenoiser } from '../../../media/denoise/rnnoise-denoiser.ts';
import { frameLevelDb } from '../../../media/speech-detector.ts';
import { readWav, SPEECH_WAV } from '../../helpers/audio.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const FRAME = 320;
const speech = readWav(SPEECH_WAV).samples;

// Real Silero instances (~80 ms each to create), shared by the tests of this file.
const pool = new SileroVadPool({ maxInstances: 2, preloadInstances: 1 });
after(() => pool.close());
/** A pool with no instances: every open frame is judged by energy alone. */
const energyOnly = () => new SileroVadPool({ maxInstances: 0, preloadInstances: 0 });

function toFrames(pcm: Int16Array): Int16Array[] {
  return Array.from({ length: Math.floor(pcm.length / FRAME) }, (_, i) => pcm.slice(i * FRAME, (i + 1) * FRAME));
}
const silence = (frames: number) => toFrames(new Int16Array(frames * FRAME));
function whiteNoise(frames: number, amplitude: number, seed: number): Int16Array[] {
  const random = mulberry32(seed);
  return toFrames(Int16Array.from({ length: frames * FRAME }, () => Math.round((random() * 2 - 1) * amplitude)));
}
function tone(frames: number, amplitude: number, hz: number): Int16Array[] {
  return toFrames(Int16Array.from({ length: frames * FRAME }, (_, i) => Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / 16000))));
}
function run(va: VoiceActivity, frames: Int16Array[]): VoiceActivityDecision[] {
  return frames.map((f) => va.push(f));
}
const session = (options: Partial<VoiceActivityOptions> = {}, p = pool) => new VoiceActivity(p, options);
/** A whole session over `frames`, closed afterwards so its Silero lease goes back. */
function runOnce(options: Partial<VoiceActivityOptions>, frames: Int16Array[], p = pool): VoiceActivityDecision[] {
  const va = new VoiceActivity(p, options);
  const ds = run(va, frames);
  va.close();
  return ds;
}
const indexes = (ds: VoiceActivityDecision[], pick: (d: VoiceActivityDecision) => boolean) =>
  ds.flatMap((d, i) => (pick(d) ? [i] : []));

// Where the fixture is actually loud (frames above -45 dBFS): the spoken segment.
const speechFrames = toFrames(speech);
const loud = indexes(
  speechFrames.map((f) => ({ levelDb: frameLevelDb(f) }) as VoiceActivityDecision),
  (d) => d.levelDb > -45,
);
const firstLoud = loud[0]!;
const lastLoud = loud.at(-1)!;

describe('VoiceActivity', () => {
  it('says speech over the spoken part of the recording and not over the silence around it', () => {
    const va = session();
    const ds = run(va, [...speechFrames, ...silence(50)]);
    const speaking = indexes(ds, (d) => d.speaking);
    const onsets = indexes(ds, (d) => d.onset !== undefined);
    assert.equal(onsets.length, 1, 'one onset');
    // Silero needs a few windows, then minSpeechMs (150) must pass: 150 ms + <= 160 ms of lag.
    assert.ok(onsets[0]! >= firstLoud && onsets[0]! <= firstLoud + 8 + 8, `onset at frame ${onsets[0]}, speech from ${firstLoud}`);
    assert.ok(speaking.every((i) => i >= firstLoud && i <= lastLoud + 10), 'no speech over the silence');
    const covered = speaking.filter((i) => i <= lastLoud).length / (lastLoud - onsets[0]! + 1);
    assert.ok(covered > 0.95, `speaking over ${(covered * 100).toFixed(0)}% of the speech after onset`);
    assert.equal(ds.at(-1)!.speaking, false);
    assert.ok(ds.every((d) => !d.fallback));
    va.close();
  });

  it('rejects white noise and a pure tone that energy alone takes for speech', () => {
    for (const [name, noise] of [
      ['white noise at -35 dBFS', whiteNoise(150, 1000, 1)],
      ['440 Hz tone at -21 dBFS', tone(150, 3000, 440)],
    ] as const) {
      const frames = [...silence(25), ...noise, ...silence(25)];
      const silero = runOnce({}, frames);
      const energy = runOnce({}, frames, energyOnly());
      assert.equal(indexes(silero, (d) => d.voiced).length, 0, `${name}: Silero voiced`);
      assert.equal(indexes(silero, (d) => d.onset !== undefined).length, 0, `${name}: Silero onset`);
      // Energy alone calls it speech until the noise floor catches up (~1.5 s).
      assert.equal(indexes(energy, (d) => d.onset !== undefined).length, 1, `${name}: energy onset`);
      assert.ok(indexes(energy, (d) => d.speaking).length > 50, `${name}: energy speaking`);
      assert.ok(energy.every((d) => d.gated || d.fallback));
    }
  });

  it('returns the pre-roll and the onset frames, oldest first, when speech starts', () => {
    const random = mulberry32(3);
    // Low noise under the speech so every frame is distinct and can be found again.
    const noisy = speech.map((v) => v + Math.round((random() * 2 - 1) * 20));
    const frames = [...whiteNoise(100, 20, 4), ...toFrames(Int16Array.from(noisy))];
    const va = session({ preRollMs: 300, minSpeechMs: 150 });
    const ds = run(va, frames);
    const at = ds.findIndex((d) => d.onset);
    const onset = ds[at]!.onset!;
    // 15 pre-roll frames + 8 voiced frames (150 ms rounded up to whole frames).
    assert.equal(onset.length, 15 + 8);
    onset.forEach((frame, k) => {
      assert.equal(frame.sampleRate, 16000);
      assert.deepEqual(frame.samples, frames[at - onset.length + 1 + k], `onset frame ${k}`);
    });
    // Silero answers late, but the pre-roll reaches back before the first loud frame.
    assert.ok(at - onset.length + 1 <= 100 + firstLoud, 'pre-roll covers the start of speech');
    assert.ok(ds.slice(0, at).every((d) => !d.speaking));
    assert.equal(ds[at]!.speaking, true);
    assert.equal(indexes(ds, (d) => d.onset !== undefined).length, 1);
  });

  it('does not count a click as speech: minSpeechMs suppresses it', () => {
    const click = () => [...silence(50), ...tone(2, 20000, 1000), ...silence(50)];
    // Silero does not call it voiced at all...
    assert.equal(indexes(runOnce({}, click()), (d) => d.speaking).length, 0);
    // ...and energy does, for 40 ms: below minSpeechMs it is no onset, above it is one.
    const strict = runOnce({ minSpeechMs: 150 }, click(), energyOnly());
    const lax = runOnce({ minSpeechMs: 40 }, click(), energyOnly());
    assert.equal(indexes(strict, (d) => d.voiced).length, 2);
    assert.equal(indexes(strict, (d) => d.onset !== undefined).length, 0);
    assert.equal(indexes(lax, (d) => d.onset !== undefined).length, 1);
  });

  it('keeps speaking through a pause shorter than minSilenceMs and stops after a longer one', () => {
    const burst = (frames: number) => tone(frames, 8000, 300);
    const quiet = (frames: number) => silence(frames);
    const ds = runOnce({ minSilenceMs: 100, minSpeechMs: 40 }, [...quiet(10), ...burst(10), ...quiet(4), ...burst(10), ...quiet(10)], energyOnly());
    // The 80 ms pause (frames 20-23) stays speech; 100 ms of the final silence ends it.
    assert.ok([20, 21, 22, 23].every((i) => ds[i]!.speaking));
    assert.deepEqual(indexes(ds, (d) => d.onset !== undefined), [11]);
    assert.equal(ds[37]!.speaking, true);
    assert.equal(ds[38]!.speaking, false);
  });

  it('never runs Silero on gated silence and gives its instance back after releaseAfterMs', () => {
    const va = session({ releaseAfterMs: 1000 });
    const leasedBefore = pool.toJSON().leased;
    const quiet = [...silence(100), ...whiteNoise(200, 10, 5)]; // digital silence, then -70 dBFS
    const gated = run(va, quiet);
    assert.ok(gated.every((d) => d.gated && !d.voiced && !d.speaking));
    assert.equal(va.toJSON().sileroWindows, 0);
    assert.equal(va.toJSON().leases, 0);
    assert.equal(pool.toJSON().leased, leasedBefore);

    run(va, speechFrames);
    const talking = va.toJSON();
    assert.equal(talking.leases, 1);
    assert.ok(talking.sileroWindows > 0);
    assert.equal(talking.sileroFrames, talking.frames - talking.gatedFrames);
    // 1 s of gated frames returns the instance; nothing runs on them.
    const tail = run(va, silence(60));
    const done = va.toJSON();
    assert.ok(tail.every((d) => d.gated));
    assert.equal(done.sileroFrames, talking.sileroFrames);
    assert.equal(done.sileroWindows, talking.sileroWindows);
    assert.equal(done.leased, false);
    assert.equal(pool.toJSON().leased, leasedBefore);
    va.close();
  });

  it('falls back to energy when the pool is exhausted, counts it, and leases once an instance is free', () => {
    const small = new SileroVadPool({ maxInstances: 1, preloadInstances: 1 });
    const alice = session({ releaseAfterMs: 200 }, small);
    const bob = session({ releaseAfterMs: 200 }, small);
    const both = speechFrames.map((f) => [alice.push(f), bob.push(f)] as const);
    assert.ok(both.every(([a]) => !a.fallback));
    assert.ok(both.some(([, b]) => b.fallback));
    assert.equal(indexes(both.map(([, b]) => b), (d) => d.onset !== undefined).length, 1, 'energy still finds the onset');
    assert.ok(bob.toJSON().fallbackFrames > 0);
    assert.ok(small.toJSON().exhausted > 0);
    // Alice goes quiet and returns her instance; Bob gets it on his next open frame.
    run(alice, silence(40));
    assert.equal(small.toJSON().leased, 0);
    const next = run(bob, speechFrames.slice(firstLoud, firstLoud + 20));
    assert.ok(next.every((d) => !d.fallback));
    assert.equal(bob.toJSON().leases, 1);
    alice.close();
    bob.close();
    small.close();
  });

  it('measures the noise floor', () => {
    const va = session({}, energyOnly());
    assert.equal(va.noiseFloorDb, -70);
    run(va, whiteNoise(100, 1000, 6)); // uniform noise: RMS = 1000 / sqrt(3), -35.3 dBFS
    assert.ok(Math.abs(va.noiseFloorDb - -35.3) < 1.5, `floor ${va.noiseFloorDb}`);
    run(va, whiteNoise(100, 30, 7)); // -65.8 dBFS
    assert.ok(Math.abs(va.noiseFloorDb - -65.8) < 1.5, `floor ${va.noiseFloorDb}`);
  });

  it('denoises only the frames that go on to Silero (plus the pre-roll, in order), and hands on the denoised audio', () => {
    const random = mulberry32(8);
    // Quiet noise everywhere, so that every frame differs and can be found again. A click shortly
    // before the speech opens the gate once already, so the ring holds some denoised frames.
    const click = tone(1, 20000, 1000)[0]!.map((v, i) => v + (i % 7));
    const frames = [
      ...whiteNoise(30, 10, 9),
      click,
      ...whiteNoise(12, 10, 10),
      ...toFrames(speech.map((v) => v + Math.round((random() * 2 - 1) * 10))),
    ];
    const seen: number[] = [];
    let observed = 0;
    const halve: FrameDenoiser = {
      engaged: true,
      observe: (floor, ms) => {
        assert.equal(ms, 20);
        assert.ok(Number.isFinite(floor));
        observed++;
      },
      process: (samples) => {
        seen.push(frames.findIndex((f) => f.every((v, i) => v === samples[i])));
        return samples.map((v) => v >> 1);
      },
    };
    const va = new VoiceActivity(pool, {}, halve);
    const ds = run(va, frames);
    const stats = va.toJSON();
    assert.equal(observed, frames.length);
    ds.forEach((d, i) => {
      if (d.gated) assert.equal(d.frame, frames[i]);
      else assert.deepEqual(d.frame, frames[i]!.map((v) => v >> 1));
    });
    // Each frame at most once, oldest first: the open frames, and the gated frames of the
    // pre-roll caught up when the gate opened.
    assert.ok(seen.every((index, k) => index >= 0 && (k === 0 || index > seen[k - 1]!)), `order ${seen.join(',')}`);
    const open = stats.frames - stats.gatedFrames;
    assert.ok(seen.length > open, `${seen.length} denoised, ${open} open`);
    const at = ds.findIndex((d) => d.onset);
    const onset = ds[at]!.onset!;
    onset.forEach((frame, k) => assert.deepEqual(frame.samples, frames[at - onset.length + 1 + k]!.map((v) => v >> 1), `onset frame ${k}`));
    va.close();
  });

  it('refuses frames of the wrong size and use after close', () => {
    const va = session({}, energyOnly());
    assert.throws(() => va.push(new Int16Array(160)), RangeError);
    va.close();
    assert.throws(() => va.push(new Int16Array(FRAME)), /closed/);
  });
});

describe('SileroVadPool', () => {
  it('refuses a model that would crash onnxruntime or sherpa, and thresholds sherpa rejects', () => {
    assert.throws(() => new SileroVadPool({ modelSha256: '0'.repeat(64), preloadInstances: 0 }), /sha256/);
    assert.throws(() => new SileroVadPool({ modelPath: '/nonexistent/silero.onnx', preloadInstances: 0 }), /not readable/);
    assert.throws(() => new SileroVadPool({ threshold: 1 }), RangeError);
    assert.throws(() => new SileroVadPool({ maxInstances: 1, preloadInstances: 2 }), RangeError);
  });

  it('hands out at most maxInstances, reset on return', () => {
    const small = new SileroVadPool({ maxInstances: 1, preloadInstances: 0 });
    const vad = small.acquire()!;
    assert.equal(small.acquire(), null);
    assert.deepEqual({ ...small.toJSON(), threshold: undefined }, { instances: 1, leased: 1, peakLeased: 1, exhausted: 1, threshold: undefined });
    // One 20 ms frame completes no 32 ms window; the second does (512 + 64 samples of context).
    assert.equal(vad.accept(speechFrames[firstLoud]!), null);
    assert.equal(typeof vad.accept(speechFrames[firstLoud + 1]!), 'boolean');
    small.release(vad);
    const again = small.acquire()!;
    assert.equal(again, vad);
    assert.equal(again.accept(speechFrames[firstLoud]!), null, 'reset: sherpa buffers nothing from before');
    small.close();
  });
});
