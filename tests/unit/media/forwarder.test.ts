import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Forwarder, type OutboundTrack, type ForwardedPacket } from '../../../media/forwarder.ts';
import { RtpRewriter, type RewrittenHeader } from '../../../media/rtp-rewriter.ts';

class FakeTrack implements OutboundTrack {
  mid: string | null = '1';
  readonly sent: { header: RewrittenHeader; payload: Uint8Array }[] = [];
  closed = false;
  send(header: RewrittenHeader, payload: Uint8Array): void {
    this.sent.push({ header, payload });
  }
  close(): void {
    this.closed = true;
  }
}

const packet = (i: number): ForwardedPacket => ({
  ssrc: 42,
  sequenceNumber: 1000 + i,
  timestamp: 96_000 + i * 960,
  marker: false,
  payload: Uint8Array.of(i),
});

describe('Forwarder', () => {
  it('sends each packet with its own header; the publisher packet is not touched', () => {
    const a = new FakeTrack();
    const b = new FakeTrack();
    const toA = new Forwarder('pub', a, new RtpRewriter({ initialSequenceNumber: 1, initialTimestamp: 10 }));
    const toB = new Forwarder('pub', b, new RtpRewriter({ initialSequenceNumber: 5000, initialTimestamp: 70_000 }));
    const p = packet(0);
    toA.push(p, 0);
    toB.push(p, 0);
    assert.deepEqual(p, packet(0), 'the inbound packet is unchanged');
    assert.equal(a.sent[0]!.header.sequenceNumber, 1);
    assert.equal(b.sent[0]!.header.sequenceNumber, 5000);
    assert.notEqual(a.sent[0]!.header, b.sent[0]!.header, 'one header object per subscriber');
    assert.equal(a.sent[0]!.payload, p.payload, 'the payload is forwarded as is (no re-encoding)');
  });

  it('muting stops forwarding; unmuting resumes without a sequence gap', () => {
    const track = new FakeTrack();
    const f = new Forwarder('pub', track, new RtpRewriter({ initialSequenceNumber: 0, initialTimestamp: 0 }));
    for (let i = 0; i < 3; i++) assert.equal(f.push(packet(i), i * 20), true);
    f.setMuted(true);
    for (let i = 3; i < 10; i++) assert.equal(f.push(packet(i), i * 20), false);
    assert.equal(track.sent.length, 3);
    f.setMuted(false);
    f.push(packet(10), 200);
    assert.equal(track.sent.length, 4);
    const resumed = track.sent[3]!.header;
    assert.equal(resumed.sequenceNumber, 3, 'continues at last + 1');
    assert.equal(resumed.marker, true);
    assert.equal(resumed.timestamp, 2 * 960 + 160 * 48, 'timestamp advanced by the 160 ms the track was silent');
    assert.deepEqual(f.toJSON(), { forwarded: 4, dropped: 7, segments: 2 });
  });

  it('close stops the track', () => {
    const track = new FakeTrack();
    new Forwarder('pub', track).close();
    assert.equal(track.closed, true);
  });
});
