import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from '../../../signaling/token-bucket.ts';

describe('TokenBucket', () => {
  it('allows a burst, then the sustained rate', () => {
    const bucket = new TokenBucket({ perSecond: 10, burst: 3 });
    assert.deepEqual([0, 0, 0, 0].map(() => bucket.take(1000)), [true, true, true, false]);
    assert.equal(bucket.take(1050), false, 'half a token after 50 ms');
    assert.equal(bucket.take(1100), true, 'one token after 100 ms');
    assert.equal(bucket.take(1100), false);
  });

  it('refills up to the burst only', () => {
    const bucket = new TokenBucket({ perSecond: 100, burst: 2 });
    bucket.take(0);
    const later = [0, 0, 0].map(() => bucket.take(60_000));
    assert.deepEqual(later, [true, true, false]);
  });

  it('does not refill when the clock goes backwards', () => {
    const bucket = new TokenBucket({ perSecond: 1, burst: 1 });
    assert.equal(bucket.take(5000), true);
    assert.equal(bucket.take(1000), false);
  });
});
