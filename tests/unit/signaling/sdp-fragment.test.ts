import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { iceCredentials, iceFragmentOf, MAX_FRAGMENT_LINES, parseSdpFragment, withIceCredentials } from '../../../signaling/sdp-fragment.ts';
import { SignalingError } from '../../../signaling/errors.ts';

const OFFER = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:oldU', 'a=ice-pwd:oldpasswordoldpassword12', 'a=fingerprint:sha-256 AA:BB', 'a=setup:actpass', 'a=mid:0',
  'a=rtpmap:111 opus/48000/2', 'a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host', 'a=end-of-candidates', '',
].join('\r\n');

const codeOf = (text: string): string => {
  try {
    parseSdpFragment(text);
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof SignalingError);
    return error.code;
  }
};

describe('trickle ICE SDP fragments (RFC 8840)', () => {
  it('reads credentials, candidates with their mid, and end-of-candidates', () => {
    const fragment = parseSdpFragment('a=ice-ufrag:newU\r\na=ice-pwd:newpasswordnewpassword12\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:2 1 udp 2130706431 127.0.0.1 41000 typ host generation 0\r\na=end-of-candidates\r\n');
    assert.equal(fragment.ufrag, 'newU');
    assert.equal(fragment.pwd, 'newpasswordnewpassword12');
    assert.deepEqual(fragment.candidates, [{ candidate: 'candidate:2 1 udp 2130706431 127.0.0.1 41000 typ host generation 0', mid: '0' }]);
    assert.equal(fragment.endOfCandidates, true);
    assert.deepEqual(parseSdpFragment('a=candidate:3 1 udp 1 10.0.0.1 5000 typ srflx raddr 0.0.0.0 rport 0\n').candidates[0]?.mid, null);
  });

  it('refuses what is not a fragment, bad candidates and credentials, and oversize bodies', () => {
    assert.equal(codeOf('v=0\r\n'), 'SIG_ERR_BAD_SDP');
    assert.equal(codeOf('a=candidate:not a candidate\r\n'), 'SIG_ERR_BAD_SDP');
    assert.equal(codeOf('a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n\u0000'), 'SIG_ERR_BAD_SDP');
    assert.equal(codeOf('a=ice-ufrag:ab\r\na=ice-pwd:newpasswordnewpassword12\r\n'), 'SIG_ERR_BAD_SDP', 'ufrag too short');
    assert.equal(codeOf('a=ice-ufrag:abcd\r\n'), 'SIG_ERR_BAD_SDP', 'ufrag without pwd');
    assert.equal(codeOf('m=audio 9 X 111\r\nm=audio 9 X 111\r\n'), 'SIG_ERR_BAD_SDP', 'two media sections');
    assert.equal(codeOf('a=mid:0\r\n'.repeat(MAX_FRAGMENT_LINES + 1)), 'SIG_ERR_SDP_TOO_LARGE');
    assert.equal(codeOf(`a=x:${'y'.repeat(20_000)}`), 'SIG_ERR_SDP_TOO_LARGE');
  });

  it('rewrites a description for an ICE restart: new credentials and candidates, the rest unchanged', () => {
    const fragment = parseSdpFragment('a=ice-ufrag:newU\r\na=ice-pwd:newpasswordnewpassword12\r\na=candidate:2 1 udp 2130706431 127.0.0.1 41000 typ host\r\n');
    const restarted = withIceCredentials(OFFER, fragment);
    assert.deepEqual(iceCredentials(restarted), { ufrag: 'newU', pwd: 'newpasswordnewpassword12' });
    assert.doesNotMatch(restarted, /oldU|40000|end-of-candidates/);
    assert.match(restarted, /^a=candidate:2 1 udp 2130706431 127\.0\.0\.1 41000 typ host\r$/m);
    assert.match(restarted, /^a=fingerprint:sha-256 AA:BB\r$/m);
    assert.throws(() => withIceCredentials(OFFER, parseSdpFragment('a=mid:0\r\n')), SignalingError);
  });

  it('turns a description into the fragment of its ICE part, which parses back', () => {
    const text = iceFragmentOf(OFFER);
    assert.match(text, /^m=audio 9 UDP\/TLS\/RTP\/SAVPF 111\r$/m);
    const back = parseSdpFragment(text);
    assert.equal(back.ufrag, 'oldU');
    assert.deepEqual(back.candidates, [{ candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host', mid: '0' }]);
    assert.equal(back.endOfCandidates, true);
  });
});
