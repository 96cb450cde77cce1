import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkAudioSdp, MAX_SDP_LINES } from '../../../signaling/sdp-check.ts';
import { SignalingError } from '../../../signaling/errors.ts';
import { MAX_SDP_CHARS } from '../../../signaling/protocol.ts';

const VALID = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111 0', 'c=IN IP4 0.0.0.0',
  'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx', 'a=fingerprint:sha-256 AA:BB', 'a=setup:actpass',
  'a=mid:0', 'a=rtpmap:111 opus/48000/2', 'a=rtpmap:0 PCMU/8000', '',
].join('\r\n');

function codeOf(sdp: string): string {
  try {
    checkAudioSdp(sdp);
    return 'ok';
  } catch (error) {
    assert.ok(error instanceof SignalingError);
    return error.code;
  }
}

describe('SDP checks', () => {
  it('accepts one audio m-line with Opus', () => assert.equal(codeOf(VALID), 'ok'));
  it('accepts LF line endings', () => assert.equal(codeOf(VALID.replaceAll('\r\n', '\n')), 'ok'));
  it('refuses text that is not SDP', () => {
    assert.equal(codeOf('hello'), 'SIG_ERR_BAD_SDP');
    assert.equal(codeOf(VALID.replace('s=-\r\n', '')), 'SIG_ERR_BAD_SDP');
    assert.equal(codeOf(VALID.replace('t=0 0', 'garbage line')), 'SIG_ERR_BAD_SDP');
  });
  it('refuses no, several, or non-audio m-lines', () => {
    assert.equal(codeOf(VALID.replace(/m=audio.*\r\n/, '')), 'SIG_ERR_BAD_SDP');
    assert.equal(codeOf(VALID.replace('m=audio', 'm=video')), 'SIG_ERR_BAD_SDP');
    assert.equal(codeOf(VALID + 'm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n'), 'SIG_ERR_BAD_SDP');
  });
  it('refuses SDP without ICE credentials or fingerprint', () => {
    assert.equal(codeOf(VALID.replace(/a=fingerprint.*\r\n/, '')), 'SIG_ERR_BAD_SDP');
    assert.equal(codeOf(VALID.replace(/a=ice-ufrag.*\r\n/, '')), 'SIG_ERR_BAD_SDP');
  });
  it('refuses audio without Opus', () => assert.equal(codeOf(VALID.replace('a=rtpmap:111 opus/48000/2\r\n', '')), 'SIG_ERR_NO_OPUS'));
  it('caps the line count', () => {
    const long = VALID + Array.from({ length: MAX_SDP_LINES }, (_, i) => `a=x-filler:${i}`).join('\r\n');
    assert.equal(codeOf(long), 'SIG_ERR_SDP_TOO_LARGE');
  });
  it('caps the size', () => {
    assert.equal(codeOf(VALID + `a=x-filler:${'x'.repeat(MAX_SDP_CHARS)}\r\n`), 'SIG_ERR_SDP_TOO_LARGE');
  });
});
