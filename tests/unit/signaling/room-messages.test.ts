// The room messages of the wire protocol, and the SDP rule for a room's extra m-lines.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseClientMessage, MAX_SUBSCRIBE_IDS } from '../../../signaling/protocol.ts';
import { checkAudioSdp } from '../../../signaling/sdp-check.ts';

const parse = (value: unknown) => parseClientMessage(JSON.stringify(value));

const section = (mid: number) =>
  [`m=audio 9 UDP/TLS/RTP/SAVPF 111`, 'c=IN IP4 0.0.0.0', `a=mid:${mid}`, 'a=rtpmap:111 opus/48000/2'].join('\r\n');
const sdp = (sections: number) =>
  ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx', 'a=fingerprint:sha-256 AA:BB',
    ...Array.from({ length: sections }, (_, i) => section(i)), ''].join('\r\n');

describe('room messages', () => {
  it('accepts subscription mutes and subscriptions to a subset or to everyone', () => {
    assert.equal(parse({ type: 'subscription', participantId: 'p-abc_DEF-1', muted: true }).ok, true);
    assert.equal(parse({ type: 'subscribe', participantIds: ['p-a', 'p-b'] }).ok, true);
    assert.equal(parse({ type: 'subscribe', participantIds: [] }).ok, true, 'nobody: only the agent');
    assert.equal(parse({ type: 'subscribe', participantIds: null }).ok, true);
  });

  it('refuses malformed ones', () => {
    const bad = [
      { type: 'subscription', participantId: 'p-a' },
      { type: 'subscription', participantId: 'p a', muted: true },
      { type: 'subscription', participantId: 'p-a', muted: 'yes' },
      { type: 'subscription', participantId: 'p-a', muted: true, extra: 1 },
      { type: 'subscribe' },
      { type: 'subscribe', participantIds: ['p-a', 'p-a'] },
      { type: 'subscribe', participantIds: Array.from({ length: MAX_SUBSCRIBE_IDS + 1 }, (_, i) => `p-${i}`) },
      { type: 'subscribe', participantIds: 'p-a' },
    ];
    for (const message of bad) {
      const result = parse(message);
      assert.equal(result.ok, false, JSON.stringify(message));
      if (!result.ok) assert.equal(result.code, 'SIG_ERR_BAD_MESSAGE');
    }
  });

  it('SDP: one m-line by default; as many audio m-lines as the server offered in a room', () => {
    assert.doesNotThrow(() => checkAudioSdp(sdp(1)));
    assert.throws(() => checkAudioSdp(sdp(2)), { code: 'SIG_ERR_BAD_SDP' });
    assert.doesNotThrow(() => checkAudioSdp(sdp(3), 3));
    assert.throws(() => checkAudioSdp(sdp(4), 3), { code: 'SIG_ERR_BAD_SDP' });
    assert.throws(() => checkAudioSdp(sdp(2).replace(/m=audio(?![\s\S]*m=audio)/, 'm=video'), 3), { code: 'SIG_ERR_BAD_SDP' });
  });
});
