import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DEFAULT_SILERO_VAD_OPTIONS, SILERO_V5_16K_MODEL, SILERO_V5_MODEL, SILERO_V5_SHA256, SileroVad, type SileroStream } from '../../../media/vad/silero-vad.ts';
import { VoiceActivity, type VoiceActivityDecision, type VoiceActivityOptions } from '../../../media/vad/voice-activity.ts';
import type { FrameDenoiser } from '../../../media/denoise/rnnoise-denoiser.ts';
import { frameLevelDb } from '../../../media/speech-detector.ts';
import { readWav, SPEECH_WAV } from '../../helpers/audio.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const FRAME = 320;
const speech = readWav(SPEECH_WAV).samples;

// The real model, shared by the tests of this file.
const pool = await SileroVad.load({ maxStreams: 2 });
/** No streams to give: every open frame is judged by energy alone. */
const energyVad = await SileroVad.load({ maxStreams: 0 });
const energyOnly = () => energyVad;
after(() => Promise.all([pool.close(), energyVad.close()]));

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
/** Frame by frame, as in a worker: each batch comes back before the next frame. */
async function run(va: VoiceActivity, frames: Int16Array[], p = pool): Promise<VoiceActivityDecision[]> {
  const ds: VoiceActivityDecision[] = [];
  for (const f of frames) {
    ds.push(va.push(f));
    await p.idle();
  }
  return ds;
}
const session = (options: Partial<VoiceActivityOptions> = {}, p = pool) => new VoiceActivity(p, options);
/** A whole session over `frames`, closed afterwards so its Silero stream goes back. */
async function runOnce(options: Partial<VoiceActivityOptions>, frames: Int16Array[], p = pool): Promise<VoiceActivityDecision[]> {
  const va = new VoiceActivity(p, options);
  const ds = await run(va, frames, p);
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
  it('says speech over the spoken part of the recording and not over the silence around it', async () => {
    const va = session();
    const ds = await run(va, [...speechFrames, ...silence(50)]);
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

  it('rejects white noise and a pure tone that energy alone takes for speech', async () => {
    for (const [name, noise] of [
      ['white noise at -35 dBFS', whiteNoise(150, 1000, 1)],
      ['440 Hz tone at -21 dBFS', tone(150, 3000, 440)],
    ] as const) {
      const frames = [...silence(25), ...noise, ...silence(25)];
      const silero = await runOnce({}, frames);
      const energy = await runOnce({}, frames, energyOnly());
      assert.equal(indexes(silero, (d) => d.voiced).length, 0, `${name}: Silero voiced`);
      assert.equal(indexes(silero, (d) => d.onset !== undefined).length, 0, `${name}: Silero onset`);
      // Energy alone calls it speech until the noise floor catches up (~1.5 s).
      assert.equal(indexes(energy, (d) => d.onset !== undefined).length, 1, `${name}: energy onset`);
      assert.ok(indexes(energy, (d) => d.speaking).length > 50, `${name}: energy speaking`);
      assert.ok(energy.every((d) => d.gated || d.fallback));
    }
  });

  it('returns the pre-roll and the onset frames, oldest first, when speech starts', async () => {
    const random = mulberry32(3);
    // Low noise under the speech so every frame is distinct and can be found again.
    const noisy = speech.map((v) => v + Math.round((random() * 2 - 1) * 20));
    const frames = [...whiteNoise(100, 20, 4), ...toFrames(Int16Array.from(noisy))];
    const va = session({ preRollMs: 300, minSpeechMs: 150 });
    const ds = await run(va, frames);
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

  it('does not count a click as speech: minSpeechMs suppresses it', async () => {
    const click = () => [...silence(50), ...tone(2, 20000, 1000), ...silence(50)];
    // Silero does not call it voiced at all...
    assert.equal(indexes(await runOnce({}, click()), (d) => d.speaking).length, 0);
    // ...and energy does, for 40 ms: below minSpeechMs it is no onset, above it is one.
    const strict = await runOnce({ minSpeechMs: 150 }, click(), energyOnly());
    const lax = await runOnce({ minSpeechMs: 40 }, click(), energyOnly());
    assert.equal(indexes(strict, (d) => d.voiced).length, 2);
    assert.equal(indexes(strict, (d) => d.onset !== undefined).length, 0);
    assert.equal(indexes(lax, (d) => d.onset !== undefined).length, 1);
  });

  it('keeps speaking through a pause shorter than minSilenceMs and stops after a longer one', async () => {
    const burst = (frames: number) => tone(frames, 8000, 300);
    const quiet = (frames: number) => silence(frames);
    const ds = await runOnce({ minSilenceMs: 100, minSpeechMs: 40 }, [...quiet(10), ...burst(10), ...quiet(4), ...burst(10), ...quiet(10)], energyOnly());
    // The 80 ms pause (frames 20-23) stays speech; 100 ms of the final silence ends it.
    assert.ok([20, 21, 22, 23].every((i) => ds[i]!.speaking));
    assert.deepEqual(indexes(ds, (d) => d.onset !== undefined), [11]);
    assert.equal(ds[37]!.speaking, true);
    assert.equal(ds[38]!.speaking, false);
  });

  it('never runs Silero on gated silence and gives its stream back after releaseAfterMs', async () => {
    const va = session({ releaseAfterMs: 1000 });
    const streamsBefore = pool.toJSON().streams;
    const quiet = [...silence(100), ...whiteNoise(200, 10, 5)]; // digital silence, then -70 dBFS
    const gated = await run(va, quiet);
    assert.ok(gated.every((d) => d.gated && !d.voiced && !d.speaking));
    assert.equal(va.toJSON().sileroWindows, 0);
    assert.equal(va.toJSON().leases, 0);
    assert.equal(pool.toJSON().streams, streamsBefore);

    await run(va, speechFrames);
    const talking = va.toJSON();
    assert.equal(talking.leases, 1);
    assert.ok(talking.sileroWindows > 0);
    assert.equal(talking.sileroFrames, talking.frames - talking.gatedFrames);
    // 1 s of gated frames returns the stream; nothing runs on them.
    const tail = await run(va, silence(60));
    const done = va.toJSON();
    assert.ok(tail.every((d) => d.gated));
    assert.equal(done.sileroFrames, talking.sileroFrames);
    assert.equal(done.sileroWindows, talking.sileroWindows);
    assert.equal(done.leased, false);
    assert.equal(pool.toJSON().streams, streamsBefore);
    va.close();
  });

  it('falls back to energy when no stream can be had, counts it, and takes one once one is free', async () => {
    const small = await SileroVad.load({ maxStreams: 1 });
    const alice = session({ releaseAfterMs: 200 }, small);
    const bob = session({ releaseAfterMs: 200 }, small);
    const both: (readonly [VoiceActivityDecision, VoiceActivityDecision])[] = [];
    for (const f of speechFrames) {
      both.push([alice.push(f), bob.push(f)]);
      await small.idle();
    }
    assert.ok(both.every(([a]) => !a.fallback));
    assert.ok(both.some(([, b]) => b.fallback));
    assert.equal(indexes(both.map(([, b]) => b), (d) => d.onset !== undefined).length, 1, 'energy still finds the onset');
    assert.ok(bob.toJSON().fallbackFrames > 0);
    assert.ok(small.toJSON().exhausted > 0);
    // Alice goes quiet and gives her stream back; Bob gets one on his next open frame.
    await run(alice, silence(40), small);
    assert.equal(small.toJSON().streams, 0);
    const next = await run(bob, speechFrames.slice(firstLoud, firstLoud + 20), small);
    assert.ok(next.every((d) => !d.fallback));
    assert.equal(bob.toJSON().leases, 1);
    alice.close();
    bob.close();
    await small.close();
  });

  it('measures the noise floor', async () => {
    const va = session({}, energyOnly());
    assert.equal(va.noiseFloorDb, -70);
    await run(va, whiteNoise(100, 1000, 6)); // uniform noise: RMS = 1000 / sqrt(3), -35.3 dBFS
    assert.ok(Math.abs(va.noiseFloorDb - -35.3) < 1.5, `floor ${va.noiseFloorDb}`);
    await run(va, whiteNoise(100, 30, 7)); // -65.8 dBFS
    assert.ok(Math.abs(va.noiseFloorDb - -65.8) < 1.5, `floor ${va.noiseFloorDb}`);
  });

  it('denoises only the frames that go on to Silero (plus the pre-roll, in order), and hands on the denoised audio', async () => {
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
    const ds = await run(va, frames);
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

  it('refuses frames of the wrong size and use after close', async () => {
    const va = session({}, energyOnly());
    assert.throws(() => va.push(new Int16Array(160)), RangeError);
    va.close();
    assert.throws(() => va.push(new Int16Array(FRAME)), /closed/);
  });
});

/** What silero_half_native() should say, read independently: x86-64 (Linux) with F16C, AVX2 and FMA. */
function cpuHasHardwareHalf(): boolean {
  if (process.arch !== 'x64') return false;
  const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? []);
  return flags.has('f16c') && flags.has('avx2') && flags.has('fma');
}

describe('SileroVad', () => {
  it('refuses a model that is not the one expected, a missing one, and thresholds out of range', async () => {
    await assert.rejects(SileroVad.load({ engine: 'onnx', modelSha256: '0'.repeat(64) }), /sha256/);
    await assert.rejects(SileroVad.load({ engine: 'onnx', modelPath: '/nonexistent/silero.onnx' }), /not readable/);
    await assert.rejects(SileroVad.load({ weightsSha256: '0'.repeat(64) }), /sha256/);
    await assert.rejects(SileroVad.load({ weightsPath: '/nonexistent/silero.weights' }), /not readable/);
    await assert.rejects(SileroVad.load({ weightsPath: SILERO_V5_16K_MODEL, weightsSha256: null }), /not a Silero weights file/);
    await assert.rejects(SileroVad.load({ engine: 'tflite' as never }), RangeError);
    await assert.rejects(SileroVad.load({ nativeWeights: 'bf16' as never }), RangeError);
    await assert.rejects(SileroVad.load({ maxBatch: 129 }), /at most 128 with the native engine/);
    await assert.rejects(SileroVad.load({ threshold: 1 }), RangeError);
    await assert.rejects(SileroVad.load({ threshold: 0.1 }), RangeError);
    await assert.rejects(SileroVad.load({ maxBatch: 0 }), RangeError);
    await assert.rejects(SileroVad.load({ batchWindowMs: 33 }), RangeError);
    await assert.rejects(SileroVad.load({ batchWindowMs: -1 }), RangeError);
  });

  it('a batch waits for the next window of each stream that is talking, up to batchWindowMs; a lone window does not wait', async () => {
    const nextTask = () => new Promise((resolve) => setImmediate(resolve));
    // The gathering's clock stands still: every stream that submitted a window is "talking".
    const scenario = async (batchWindowMs: number) => {
      const vad = await SileroVad.load({ batchWindowMs, clock: () => 0 });
      const [a, b] = [vad.acquire()!, vad.acquire()!];
      const fed = new Map([[a, firstLoud], [b, firstLoud]]);
      const completeWindow = (stream: SileroStream) => {
        const before = stream.windows;
        while (stream.windows === before) {
          stream.accept(speechFrames[fed.get(stream)!]!);
          fed.set(stream, fed.get(stream)! + 1);
        }
      };
      const runs = () => vad.toJSON().runs;
      const probabilities: number[] = [];
      const runsAfter: number[] = [];
      completeWindow(a); // nobody else talks: runs in the next task
      await nextTask();
      runsAfter.push(runs());
      probabilities.push(a.probability);
      completeWindow(b); // a talks: b's window waits for a's next one
      await nextTask();
      runsAfter.push(runs());
      completeWindow(a); // everyone is in: runs in the next task, without waiting out batchWindowMs
      await nextTask();
      runsAfter.push(runs());
      probabilities.push(a.probability, b.probability);
      completeWindow(b); // a talks but sends nothing more: the run waits batchWindowMs, then goes
      await nextTask();
      runsAfter.push(runs());
      await vad.idle();
      runsAfter.push(runs());
      probabilities.push(b.probability);
      const { maxBatch, waitMs } = vad.toJSON();
      await vad.close();
      return { runsAfter, maxBatch, waitMs, probabilities };
    };
    const batched = await scenario(30);
    assert.deepEqual(batched.runsAfter, [1, 1, 2, 2, 3]);
    assert.equal(batched.maxBatch, 2);
    assert.ok(batched.waitMs >= 29, `${batched.waitMs} ms waited: the last window waited out batchWindowMs`);
    const apart = await scenario(0);
    assert.deepEqual(apart.runsAfter, [1, 2, 3, 4, 4], 'without a wait, each window runs in the task after its own');
    assert.equal(apart.maxBatch, 1);
    batched.probabilities.forEach((p, i) => assert.ok(Math.abs(p - apart.probabilities[i]!) < 1e-5, `window ${i}: ${p} batched, ${apart.probabilities[i]} alone`));
    assert.ok(batched.probabilities.some((p) => p > 0), 'Silero ran on the speech');
  });

  it('gives at most maxStreams; a verdict comes back after its window ran; a released stream forgets', async () => {
    const small = await SileroVad.load({ maxStreams: 1 });
    const vad = small.acquire()!;
    assert.equal(small.acquire(), null);
    assert.equal(small.toJSON().exhausted, 1);
    // One 20 ms frame completes no 32 ms window; the second does, and its verdict comes with the next call.
    assert.equal(vad.accept(speechFrames[firstLoud]!), null);
    assert.equal(vad.accept(speechFrames[firstLoud + 1]!), null, 'not run yet');
    assert.equal(vad.windows, 1);
    await small.idle();
    assert.equal(typeof vad.accept(new Int16Array(0)), 'boolean');
    assert.equal(vad.accept(new Int16Array(0)), null, 'each verdict once');
    // A window in flight when its stream is released brings no verdict to anyone.
    vad.accept(speechFrames[firstLoud + 2]!);
    vad.accept(speechFrames[firstLoud + 3]!);
    small.release(vad);
    await small.idle();
    assert.equal(vad.accept(new Int16Array(0)), null);
    const again = small.acquire()!;
    assert.notEqual(again, vad);
    assert.equal(again.accept(speechFrames[firstLoud]!), null);
    assert.equal(again.windows, 0, 'a fresh stream buffers nothing from before');
    await small.close();
  });

  it('the native kernel (the default) and the 16 kHz graph give the probabilities of the original two-rate model, window after window', async () => {
    assert.equal(DEFAULT_SILERO_VAD_OPTIONS.engine, 'native');
    assert.equal(DEFAULT_SILERO_VAD_OPTIONS.modelPath, SILERO_V5_16K_MODEL);
    const inputs = [speechFrames, whiteNoise(100, 1000, 5), tone(50, 8000, 440), silence(20)];
    const probabilities = async (vad: SileroVad): Promise<number[]> => {
      const stream = vad.acquire()!;
      const out: number[] = [];
      for (const frames of inputs) {
        for (const f of frames) {
          const windows = stream.windows;
          stream.accept(f);
          await vad.idle();
          if (stream.windows > windows) out.push(stream.probability);
        }
      }
      assert.equal(vad.toJSON().errors, 0);
      await vad.close();
      return out;
    };
    const original = await probabilities(await SileroVad.load({ engine: 'onnx', modelPath: SILERO_V5_MODEL, modelSha256: SILERO_V5_SHA256 }));
    assert.ok(original.length > 200, `${original.length} windows`);
    const compare = (name: string, derived: number[], tolerance: number): void => {
      assert.equal(derived.length, original.length, name);
      const worst = Math.max(...derived.map((p, w) => Math.abs(p - original[w]!)));
      assert.ok(worst < tolerance, `${name}: largest difference ${worst}`);
      const flipped = derived.filter((p, w) => p > 0.5 !== original[w]! > 0.5).length;
      assert.equal(flipped, 0, `${name}: windows on the other side of the 0.5 threshold`);
    };
    compare('onnx', await probabilities(await SileroVad.load({ engine: 'onnx' })), 1e-4);
    compare('native/f32', await probabilities(await SileroVad.load({ engine: 'native', nativeWeights: 'f32' })), 1e-4);
    // Float16 weights (the default where the CPU converts float16 in hardware): 11-bit mantissas,
    // ~2e-4 from the original here.
    const defaultVad = await SileroVad.load();
    if (cpuHasHardwareHalf()) {
      assert.equal(defaultVad.engine, 'native/f16');
      compare('native/f16', await probabilities(defaultVad), 1e-3);
    } else {
      assert.equal(defaultVad.engine, 'native/f32');
      await defaultVad.close();
      await assert.rejects(SileroVad.load({ nativeWeights: 'f16' }), /F16C/);
    }
    assert.ok(Math.max(...original) > 0.9 && Math.min(...original) < 0.1, 'speech and non-speech both present');
  });

  it('runs the windows of one poll as one batch, with the same results as one stream at a time', async () => {
    const inputs = [speechFrames.slice(firstLoud, firstLoud + 40), whiteNoise(40, 1000, 11), speechFrames.slice(lastLoud - 40, lastLoud)];
    const alone: number[][] = [];
    for (const frames of inputs) {
      const vad = await SileroVad.load();
      const stream = vad.acquire()!;
      const probabilities: number[] = [];
      for (const f of frames) {
        const windows = stream.windows;
        stream.accept(f);
        await vad.idle();
        if (stream.windows > windows) probabilities.push(stream.probability);
      }
      alone.push(probabilities);
      await vad.close();
    }
    const vad = await SileroVad.load();
    const streams = inputs.map(() => vad.acquire()!);
    const batched: number[][] = inputs.map(() => []);
    for (let i = 0; i < 40; i++) {
      const before = streams.map((s) => s.windows);
      streams.forEach((s, k) => s.accept(inputs[k]![i]!));
      await vad.idle();
      streams.forEach((s, k) => s.windows > before[k]! && batched[k]!.push(s.probability));
    }
    const stats = vad.toJSON();
    assert.equal(stats.maxBatch, 3, 'the three streams ran together');
    assert.equal(stats.windows, 3 * stats.runs);
    batched.forEach((probabilities, k) => {
      assert.equal(probabilities.length, alone[k]!.length);
      probabilities.forEach((p, w) => assert.ok(Math.abs(p - alone[k]![w]!) < 1e-4, `stream ${k} window ${w}: ${p} batched, ${alone[k]![w]} alone`));
    });
    assert.ok(Math.max(...batched[0]!) > 0.9 && Math.max(...batched[1]!) < 0.5, 'speech and noise told apart');
    await vad.close();
  });
});
