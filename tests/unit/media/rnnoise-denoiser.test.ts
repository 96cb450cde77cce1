import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RnnoiseDenoiser, loadRnnoiseRuntime } from '../../../media/denoise/rnnoise-denoiser.ts';
import { NoiseGatePolicy } from '../../../media/denoise/noise-gate-policy.ts';
import { SileroVad } from '../../../media/vad/silero-vad.ts';
import { VoiceActivity } from '../../../media/vad/voice-activity.ts';
import { readWav, SPEECH_WAV } from '../../helpers/audio.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const FRAME = 320;
const clean = readWav(SPEECH_WAV).samples.subarray(0, Math.floor(readWav(SPEECH_WAV).samples.length / FRAME) * FRAME);

function whiteNoise(samples: number, amplitude: number, seed: number): Int16Array {
  const random = mulberry32(seed);
  return Int16Array.from({ length: samples }, () => Math.round((random() * 2 - 1) * amplitude));
}
function mix(a: Int16Array, b: Int16Array): Int16Array {
  return a.map((v, i) => Math.max(-32768, Math.min(32767, v + b[i]!)));
}
function processAll(denoiser: RnnoiseDenoiser, pcm: Int16Array): Int16Array {
  const out = new Int16Array(pcm.length);
  for (let i = 0; i + FRAME <= pcm.length; i += FRAME) out.set(denoiser.process(pcm.subarray(i, i + FRAME)), i);
  return out;
}
/** The delay (samples) at which `x` best matches `reference`: RNNoise and the resamplers add one. */
function delayOf(reference: Int16Array, x: Int16Array): number {
  let best = 0;
  let bestScore = -Infinity;
  for (let lag = 0; lag < 1200; lag++) {
    let score = 0;
    for (let i = 0; i + lag < x.length; i += 2) score += reference[i]! * x[i + lag]!;
    if (score > bestScore) [best, bestScore] = [lag, score];
  }
  return best;
}
/** dB of signal over error, over [from, to) of the reference, with `x` delayed by `lag`. */
function snrDb(reference: Int16Array, x: Int16Array, lag: number, from = 0, to = reference.length - lag): number {
  let signal = 0;
  let error = 0;
  for (let i = from; i < to; i++) {
    signal += reference[i]! ** 2;
    error += (x[i + lag]! - reference[i]!) ** 2;
  }
  return 10 * Math.log10(signal / error);
}
const powerDb = (x: Int16Array) => 10 * Math.log10(x.reduce((s, v) => s + v * v, 0) / x.length / 32768 ** 2);

describe('RnnoiseDenoiser', () => {
  it('improves the SNR of speech in white noise, measured against the clean recording', async () => {
    const noise = whiteNoise(clean.length, 3000, 11);
    const noisy = mix(clean, noise);
    const denoiser = await RnnoiseDenoiser.create({ policy: { mode: 'on' } });
    const out = processAll(denoiser, noisy);
    denoiser.close();
    const lag = delayOf(clean, out);
    assert.ok(lag > 0 && lag < 400, `delay ${lag} samples`);
    const before = snrDb(clean, noisy, 0);
    const after = snrDb(clean, out, lag);
    assert.ok(after > before + 4, `SNR ${before.toFixed(1)} dB -> ${after.toFixed(1)} dB`);
    // Where nobody speaks (the leading 300 ms), the noise itself drops by far more.
    const lead = 4000;
    const noiseBefore = powerDb(noisy.subarray(800, lead));
    const noiseAfter = powerDb(out.subarray(800 + lag, lead + lag));
    assert.ok(noiseAfter < noiseBefore - 15, `noise ${noiseBefore.toFixed(1)} -> ${noiseAfter.toFixed(1)} dBFS`);
  });

  it('passes frames through untouched when off, and in auto until the room is noisy', async () => {
    const off = await RnnoiseDenoiser.create({ policy: { mode: 'off' } });
    const frame = whiteNoise(FRAME, 3000, 12);
    assert.equal(off.process(frame), frame);
    off.observe(-20, 60_000);
    assert.equal(off.process(frame), frame);
    assert.equal(off.toJSON().allocated, false);
    off.close();
    const auto = await RnnoiseDenoiser.create({ policy: { mode: 'auto' } });
    auto.observe(-70, 20);
    assert.equal(auto.process(frame), frame);
    for (let i = 0; i < 100; i++) auto.observe(-40, 20);
    assert.notEqual(auto.process(frame), frame);
    assert.equal(auto.toJSON().allocated, true);
    auto.close();
  });

  it('auto mode engages in steady noise and lets go in a quiet room (with VoiceActivity measuring the floor)', async () => {
    const denoiser = await RnnoiseDenoiser.create({ policy: { mode: 'auto', engageAfterMs: 2000, releaseAfterMs: 3000 } });
    // No Silero streams: this test is about the floor and the policy.
    const silero = await SileroVad.load({ maxStreams: 0 });
    const va = new VoiceActivity(silero, {}, denoiser);
    const push = (pcm: Int16Array) => {
      const engaged: boolean[] = [];
      for (let i = 0; i + FRAME <= pcm.length; i += FRAME) {
        va.push(pcm.subarray(i, i + FRAME));
        engaged.push(denoiser.engaged);
      }
      return engaged;
    };
    // 2 s of a quiet room (-66 dBFS): stays off.
    assert.ok(push(whiteNoise(32000, 30, 13)).every((e) => !e));
    // A fan at -40 dBFS: on once the floor has been above -50 dBFS for 2 s (the floor itself
    // takes one 1.5 s window to rise).
    const noisy = push(whiteNoise(16000 * 5, 600, 14));
    const on = noisy.indexOf(true);
    assert.ok(on >= 170 && on <= 180, `engaged after ${on} frames`);
    assert.ok(noisy.slice(on).every((e) => e));
    // Quiet again: off after the floor has been below -56 dBFS for 3 s.
    const quiet = push(whiteNoise(16000 * 5, 30, 15));
    const offAt = quiet.indexOf(false);
    assert.ok(offAt >= 145 && offAt <= 155, `released after ${offAt} frames`);
    assert.equal(denoiser.toJSON().switches, 2);
    va.close();
    denoiser.close();
    await silero.close();
  });

  it('runs only on frames that go on to Silero/STT: open frames and the pre-roll before them', async () => {
    const denoiser = await RnnoiseDenoiser.create({ policy: { mode: 'on' } });
    const silero = await SileroVad.load({ maxStreams: 1 });
    const va = new VoiceActivity(silero, {}, denoiser);
    const pcm = new Int16Array(16000 + clean.length);
    pcm.set(mix(clean, whiteNoise(clean.length, 30, 16)), 16000);
    for (let i = 0; i + FRAME <= pcm.length; i += FRAME) {
      va.push(pcm.subarray(i, i + FRAME));
      await silero.idle();
    }
    const vad = va.toJSON();
    assert.ok(vad.gatedFrames > 50);
    // At most a pre-roll ring (15 + 8 frames) of gated frames on top of the open ones.
    const open = vad.frames - vad.gatedFrames;
    const denoised = denoiser.toJSON().denoisedFrames;
    assert.ok(denoised > open && denoised <= open + 23, `${denoised} denoised, ${open} open`);
    assert.equal(denoiser.toJSON().passedFrames, 0);
    va.close();
    denoiser.close();
    await silero.close();
  });

  it('frees its WASM state on close: 500 create/close cycles leave the heaps as they were', async () => {
    const runtime = await loadRnnoiseRuntime();
    const frame = whiteNoise(FRAME, 3000, 17);
    const cycle = () => {
      const d = new RnnoiseDenoiser(runtime, { policy: { mode: 'on' } });
      d.process(frame);
      return d;
    };
    cycle().close(); // the runtime's first allocations
    const live = runtime.liveDenoisers;
    const heaps = runtime.toJSON();
    const watermark = runtime.heapWatermark();
    for (let i = 0; i < 500; i++) cycle().close();
    assert.equal(runtime.liveDenoisers, live);
    assert.deepEqual(runtime.toJSON(), heaps);
    assert.deepEqual(runtime.heapWatermark(), watermark);
    // The check can fail: a few states left open move the watermark in both heaps.
    const open = Array.from({ length: 5 }, cycle);
    const leaked = runtime.heapWatermark();
    assert.ok(leaked.rnnoise > watermark.rnnoise && leaked.speex > watermark.speex, 'open states move the watermark');
    for (const d of open) d.close();
    assert.deepEqual(runtime.heapWatermark(), watermark);
  });

  it('refuses bad frames and use after close; close is idempotent', async () => {
    const d = await RnnoiseDenoiser.create({ policy: { mode: 'on' } });
    assert.throws(() => d.process(new Int16Array(100)), RangeError);
    assert.equal(d.denoise(new Int16Array(160)).length, 160);
    d.close();
    d.close();
    assert.throws(() => d.process(new Int16Array(FRAME)), /closed/);
  });
});

describe('NoiseGatePolicy', () => {
  it('does not flap on a floor that hovers between its two levels', () => {
    const policy = new NoiseGatePolicy({ mode: 'auto', engageAboveDb: -50, releaseBelowDb: -56, engageAfterMs: 1000, releaseAfterMs: 1000 });
    for (let i = 0; i < 60; i++) policy.update(-45, 20);
    assert.equal(policy.engaged, true);
    // Hovering at -53 dBFS (between the levels) and dipping below -56 for short spells: stays on.
    for (let i = 0; i < 500; i++) policy.update(i % 40 < 30 ? -53 : -60, 20);
    assert.equal(policy.engaged, true);
    assert.equal(policy.switches, 1);
    for (let i = 0; i < 49; i++) policy.update(-60, 20);
    assert.equal(policy.engaged, true);
    policy.update(-60, 20);
    assert.equal(policy.engaged, false);
  });

  it('never switches in the fixed modes', () => {
    const on = new NoiseGatePolicy({ mode: 'on' });
    const off = new NoiseGatePolicy({ mode: 'off' });
    for (let i = 0; i < 1000; i++) {
      on.update(-90, 20);
      off.update(-10, 20);
    }
    assert.equal(on.engaged, true);
    assert.equal(off.engaged, false);
    assert.throws(() => new NoiseGatePolicy({ engageAboveDb: -60, releaseBelowDb: -50 }), RangeError);
  });
});
