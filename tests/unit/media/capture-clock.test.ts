import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CaptureClock } from '../../../media/capture-clock.ts';

describe('CaptureClock', () => {
  it('keeps frames 20 ms apart when their packets arrive in a burst', () => {
    const clock = new CaptureClock();
    // Five packets on time, then a stall: the next five arrive together 100 ms late.
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const arrival = i < 5 ? 1000 + i * 20 : 1200;
      times.push(clock.map(i * 960, arrival, arrival));
    }
    // (within the drift allowance: the offset may creep by 100 ppm of the arrival span)
    for (let i = 1; i < times.length; i++) assert.ok(Math.abs(times[i] - times[i - 1] - 20) < 0.1, `frame ${i}: ${times[i] - times[i - 1]}`);
    assert.equal(times[0], 1000);
  });

  it('survives 32-bit timestamp wraparound and starts afresh after a reset', () => {
    const clock = new CaptureClock();
    const start = 0xffffffff - 960 + 1;
    const a = clock.map(start, 500, 500);
    const b = clock.map((start + 960) >>> 0, 520, 520);
    assert.equal(b - a, 20);
    clock.reset();
    assert.equal(clock.map(123_456, 9000, 9000), 9000);
  });

  it('uses the fallback time for concealed frames before any packet', () => {
    assert.equal(new CaptureClock().map(960, null, 42), 42);
  });
});
