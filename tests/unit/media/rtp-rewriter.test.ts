import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RtpRewriter, type RtpHeaderFields } from '../../../media/rtp-rewriter.ts';

const FRAME = 960;

/** Packet i of a publisher stream (20 ms frames) starting at seq0/ts0. */
const pkt = (i: number, ssrc = 0x1111, seq0 = 65530, ts0 = 0xfffff000, marker = false): RtpHeaderFields => ({
  ssrc,
  sequenceNumber: (seq0 + i) & 0xffff,
  timestamp: (ts0 + i * FRAME) >>> 0,
  marker,
});

const seqDelta = (a: number, b: number): number => ((((b - a) & 0xffff) + 0x8000) & 0xffff) - 0x8000;
const tsDelta = (a: number, b: number): number => (b - a) | 0;

describe('RtpRewriter', () => {
  it('maps a stream into the track space: same steps, across both wraps, first packet marked', () => {
    const r = new RtpRewriter({ initialSequenceNumber: 100, initialTimestamp: 5000 });
    const out = Array.from({ length: 20 }, (_, i) => r.rewrite(pkt(i), i * 20)!);
    assert.equal(out[0]!.sequenceNumber, 100);
    assert.equal(out[0]!.timestamp, 5000);
    assert.equal(out[0]!.marker, true, 'the first packet of the track starts a talkspurt');
    for (let i = 1; i < out.length; i++) {
      assert.equal(seqDelta(out[i - 1]!.sequenceNumber, out[i]!.sequenceNumber), 1);
      assert.equal(tsDelta(out[i - 1]!.timestamp, out[i]!.timestamp), FRAME);
      assert.equal(out[i]!.marker, false);
    }
  });

  it('passes loss and reordering through within a segment', () => {
    const r = new RtpRewriter({ initialSequenceNumber: 0, initialTimestamp: 0 });
    const a = r.rewrite(pkt(0), 0)!;
    const c = r.rewrite(pkt(3), 60)!; // 1 and 2 lost (for now)
    const b = r.rewrite(pkt(2), 61)!; // 2 arrives late
    assert.equal(seqDelta(a.sequenceNumber, c.sequenceNumber), 3);
    assert.equal(seqDelta(a.sequenceNumber, b.sequenceNumber), 2);
    assert.equal(tsDelta(a.timestamp, b.timestamp), 2 * FRAME);
    // The late packet did not move the stream back: the next one follows 3.
    const d = r.rewrite(pkt(4), 80)!;
    assert.equal(seqDelta(c.sequenceNumber, d.sequenceNumber), 1);
  });

  it('a new publisher SSRC continues the track: seq +1, timestamp advanced by the elapsed time, marker set', () => {
    const r = new RtpRewriter({ initialSequenceNumber: 40000, initialTimestamp: 123 });
    let last = r.rewrite(pkt(0), 0)!;
    for (let i = 1; i < 10; i++) last = r.rewrite(pkt(i), i * 20)!;
    // The publisher's new peer: unrelated SSRC, sequence and timestamp; 500 ms after the last packet.
    const next = r.rewrite(pkt(0, 0x2222, 7, 999), 9 * 20 + 500)!;
    assert.equal(seqDelta(last.sequenceNumber, next.sequenceNumber), 1, 'no phantom loss at the switch');
    assert.equal(tsDelta(last.timestamp, next.timestamp), 500 * 48, 'the pause is kept on the RTP clock');
    assert.equal(next.marker, true);
    const after = r.rewrite(pkt(1, 0x2222, 7, 999), 9 * 20 + 520)!;
    assert.equal(seqDelta(next.sequenceNumber, after.sequenceNumber), 1);
    assert.equal(tsDelta(next.timestamp, after.timestamp), FRAME);
    assert.equal(r.toJSON().segments, 2);
  });

  it('after a pause, resumes seamlessly and drops packets from before the pause', () => {
    const r = new RtpRewriter({ initialSequenceNumber: 0, initialTimestamp: 0 });
    for (let i = 0; i < 5; i++) r.rewrite(pkt(i), i * 20);
    const before = r.rewrite(pkt(5), 100)!;
    r.pause();
    // 50 packets are not forwarded (1 s), then forwarding resumes with packet 56.
    const resumed = r.rewrite(pkt(56), 1120)!;
    assert.equal(seqDelta(before.sequenceNumber, resumed.sequenceNumber), 1, 'the subscriber sees no loss');
    assert.equal(tsDelta(before.timestamp, resumed.timestamp), 1020 * 48);
    assert.equal(resumed.marker, true);
    assert.equal(r.rewrite(pkt(55), 1121), null, 'a packet from before the resume is dropped');
    assert.equal(r.toJSON().dropped, 1);
  });

  it('a break right after the previous packet still advances the timestamp by one frame', () => {
    const r = new RtpRewriter({ initialSequenceNumber: 0, initialTimestamp: 0 });
    const a = r.rewrite(pkt(0), 0)!;
    const b = r.rewrite(pkt(0, 0x9999, 500, 777), 0)!;
    assert.equal(tsDelta(a.timestamp, b.timestamp), FRAME);
  });
});
