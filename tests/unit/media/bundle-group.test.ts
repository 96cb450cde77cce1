import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { withoutRejectedFromBundle } from '../../../media/bundle-group.ts';

const sdp = (sections: [mid: string, port: number][]) =>
  ['v=0', 's=-', `a=group:BUNDLE ${sections.map(([mid]) => mid).join(' ')}`, ...sections.flatMap(([mid, port]) => [`m=audio ${port} UDP/TLS/RTP/SAVPF 111`, `a=mid:${mid}`]), ''].join('\r\n');

describe('withoutRejectedFromBundle', () => {
  it('drops the mids of port-0 m-lines from the BUNDLE group, and nothing else', () => {
    const out = withoutRejectedFromBundle(sdp([['0', 9], ['1', 9], ['2', 0], ['3', 9]]));
    assert.match(out, /\r\na=group:BUNDLE 0 1 3\r\n/);
    assert.match(out, /m=audio 0 UDP\/TLS\/RTP\/SAVPF 111\r\na=mid:2/, 'the rejected m-line itself stays');
  });
  it('leaves an SDP without rejected m-lines as it is', () => {
    const text = sdp([['0', 9], ['1', 9]]);
    assert.equal(withoutRejectedFromBundle(text), text);
  });
});
