import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PcmResampler } from '../../../media/pcm-resampler.ts';
import { concatPcm } from '../../helpers/audio.ts';

const tone = (rate: number, hz: number, seconds: number, amplitude = 10_000): Int16Array =>
  Int16Array.from({ length: Math.round(rate * seconds) }, (_, i) => Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / rate)));

/** Amplitude of `hz` in `x` (a single-bin DFT), so a tone's level can be read after resampling. */
function amplitudeAt(x: Int16Array, rate: number, hz: number): number {
  let re = 0;
  let im = 0;
  for (let i = 0; i < x.length; i++) {
    re += x[i]! * Math.cos((2 * Math.PI * hz * i) / rate);
    im -= x[i]! * Math.sin((2 * Math.PI * hz * i) / rate);
  }
  return (2 * Math.hypot(re, im)) / x.length;
}

function inChunks(resampler: PcmResampler, input: Int16Array, sizes: number[]): Int16Array {
  const parts: Int16Array[] = [];
  for (let offset = 0, k = 0; offset < input.length; k++) {
    const n = sizes[k % sizes.length]!;
    parts.push(resampler.push(input.subarray(offset, offset + n)));
    offset += n;
  }
  return concatPcm(parts);
}

describe('PcmResampler', () => {
  for (const [from, to] of [[16000, 24000], [24000, 16000], [22050, 16000]] as const) {
    it(`${from} -> ${to} Hz: the output rate is right, and chunk boundaries change nothing but rounding`, () => {
      const input = tone(from, 440, 1);
      const whole = new PcmResampler(from, to).push(input);
      assert.ok(Math.abs(whole.length - to) <= 1, `${whole.length} samples for 1 s`);
      // Same samples, but for rounding: the read position is carried from chunk to chunk in floating point.
      const chunked = inChunks(new PcmResampler(from, to), input, [320, 7, 1, 500, 33]);
      assert.equal(chunked.length, whole.length);
      assert.ok(chunked.every((v, i) => Math.abs(v - whole[i]!) <= 1), 'within 1 LSB of the one-shot result');
      // A 440 Hz tone stays a 440 Hz tone at its level (linear interpolation loses little this far below Nyquist).
      const level = amplitudeAt(whole.subarray(100), to, 440);
      assert.ok(Math.abs(level - 10_000) < 300, `440 Hz at ${level.toFixed(0)}`);
    });
  }

  it('downsampling filters what lies above the new Nyquist instead of folding it back at full level', () => {
    // 9 kHz lies above the 8 kHz Nyquist of 16 kHz: plain interpolation would fold it back to 7 kHz.
    const out = new PcmResampler(24000, 16000).push(tone(24000, 9000, 1));
    const alias = amplitudeAt(out, 16000, 7000);
    assert.ok(alias < 0.5 * 10_000, `alias at 7 kHz: ${alias.toFixed(0)} of 10000`);
  });

  it('returns a copy at the same rate, and refuses rates that are not positive', () => {
    const input = tone(16000, 440, 0.01);
    const out = new PcmResampler(16000, 16000).push(input);
    assert.deepEqual(out, input);
    assert.notEqual(out.buffer, input.buffer);
    assert.throws(() => new PcmResampler(0, 16000), RangeError);
    assert.throws(() => new PcmResampler(16000, -1), RangeError);
  });
});
