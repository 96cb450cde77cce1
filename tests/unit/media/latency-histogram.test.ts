import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LatencyHistogram } from '../../../media/latency-histogram.ts';

describe('LatencyHistogram', () => {
  it('gives percentiles at bucket resolution', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) h.record(i / 100); // 0.01 .. 1.00 ms
    assert.equal(h.count, 100);
    assert.ok(Math.abs(h.percentile(0.5)! - 0.5) <= 0.011);
    assert.ok(Math.abs(h.percentile(0.99)! - 0.99) <= 0.011);
    h.record(250);
    assert.equal(h.percentile(1), 251);
    assert.equal(new LatencyHistogram().percentile(0.5), null);
  });
  it('merges counts from other threads', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    a.record(1);
    b.record(3);
    b.record(3);
    a.merge(new LatencyHistogram(b.counts));
    assert.equal(a.count, 3);
    assert.ok(Math.abs(a.percentile(0.5)! - 3.01) < 0.001);
  });
});
