import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LinkOutage } from '../../../client/sdk/link-outage.ts';
import type { LinkCause } from '../../../client/sdk/voice-client-events.ts';

function tracker() {
  const reports: string[] = [];
  const ended: { durationMs: number; causes: LinkCause[] }[] = [];
  const outage = new LinkOutage({
    reconnecting: (cause) => reports.push(`reconnecting ${cause}`),
    reconnected: (info) => {
      reports.push('reconnected');
      ended.push(info);
    },
  });
  return { outage, reports, ended };
}

describe('LinkOutage', () => {
  it('is one outage from the first path down until every path that went down is back', () => {
    const { outage, reports, ended } = tracker();
    outage.down('media');
    outage.down('signaling');
    outage.down('media');
    assert.equal(outage.active, true);
    outage.up('media');
    assert.equal(outage.active, true, 'signaling is still down');
    outage.up('signaling');
    assert.equal(outage.active, false);
    assert.deepEqual(reports, ['reconnecting media', 'reconnected']);
    assert.deepEqual(ended[0]!.causes.sort(), ['media', 'signaling']);
    assert.ok(ended[0]!.durationMs >= 0);
  });

  it('ignores a path coming back that was not down, and reports nothing when there is no outage', () => {
    const { outage, reports } = tracker();
    outage.up('media');
    outage.down('signaling');
    outage.up('media');
    assert.equal(outage.active, true);
    assert.deepEqual(reports, ['reconnecting signaling']);
  });

  it('clear() ends an outage without reporting its end', () => {
    const { outage, reports } = tracker();
    outage.down('media');
    outage.clear();
    outage.up('media');
    assert.equal(outage.active, false);
    assert.deepEqual(reports, ['reconnecting media']);
  });
});
