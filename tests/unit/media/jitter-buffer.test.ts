import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JitterBuffer, type JitterOutput, type RtpAudioPacket } from '../../../media/jitter-buffer.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const FRAME_TS = 960;
const FRAME_MS = 20;

/** Packet `i` of a stream starting at seq0/ts0, payload tagged with i so outputs can be traced. */
function pkt(i: number, seq0 = 1000, ts0 = 50_000, marker = false): RtpAudioPacket {
  return {
    sequenceNumber: (seq0 + i) & 0xffff,
    timestamp: (ts0 + i * FRAME_TS) >>> 0,
    payload: Uint8Array.of(i & 0xff, (i >> 8) & 0xff),
    marker,
  };
}

const tag = (o: JitterOutput): number => ('payload' in o ? o.payload[0]! | (o.payload[1]! << 8) : -1);
const kinds = (outs: JitterOutput[]): string[] => outs.map((o) => `${o.kind}:${o.sequenceNumber}`);

const rng = mulberry32;

describe('JitterBuffer', () => {
  it('releases in-order, jitter-free packets inside push with zero hold', () => {
    const jb = new JitterBuffer();
    for (let i = 0; i < 50; i++) {
      const out = jb.push(pkt(i), 7 + i * FRAME_MS);
      assert.equal(out.length, 1);
      const o = out[0]!;
      assert.equal(o.kind, 'packet');
      if (o.kind !== 'packet') continue;
      assert.equal(o.sequenceNumber, 1000 + i);
      assert.equal(o.timestamp, 50_000 + i * FRAME_TS);
      assert.equal(o.holdMs, 0);
    }
    const s = jb.toJSON();
    assert.equal(s.targetDelayMs, 0);
    assert.equal(s.lost + s.concealed + s.late + s.reordered, 0);
    assert.equal(s.jitterMs, 0);
    assert.equal(s.buffered, 0);
  });

  it('holds a packet for the target delay, reports holdMs and the deadline', () => {
    const jb = new JitterBuffer({ minDelayMs: 30 });
    assert.equal(jb.nextDeadlineMs(), null);
    assert.deepEqual(jb.push(pkt(0), 100), []);
    assert.equal(jb.nextDeadlineMs(), 130);
    assert.deepEqual(jb.poll(129), []);
    const out = jb.poll(135);
    assert.equal(out.length, 1);
    // The deliberate hold is 30 ms (to its playout time); the 5 ms the poll came late is not part of
    // it, so the server-added latency figure counts it.
    assert.equal(out[0]!.kind === 'packet' && out[0]!.holdMs, 30);
  });

  it('plays reordered packets in sequence order and counts them', () => {
    const jb = new JitterBuffer({ minDelayMs: 40 });
    const played: JitterOutput[] = [];
    jb.push(pkt(1), 0, played);
    jb.push(pkt(3), 40, played); // releases 1 (due at 40)
    jb.push(pkt(2), 45, played); // 25 ms late but within the 40 ms target
    jb.poll(60, played);
    jb.poll(80, played);
    assert.deepEqual(kinds(played), ['packet:1001', 'packet:1002', 'packet:1003']);
    assert.deepEqual(played.map(tag), [1, 2, 3]);
    const s = jb.toJSON();
    assert.equal(s.reordered, 1);
    assert.equal(s.lost, 0);
    assert.equal(s.late, 0);
  });

  it('conceals loss: plc without a next packet, fec carrying the next payload', () => {
    const jb = new JitterBuffer();
    const out: JitterOutput[] = [];
    jb.push(pkt(0), 0, out);
    jb.push(pkt(1), 20, out);
    jb.push(pkt(4), 80, out); // 2 and 3 never arrive
    assert.deepEqual(kinds(out), ['packet:1000', 'packet:1001', 'plc:1002', 'fec:1003', 'packet:1004']);
    assert.equal(out[2]!.timestamp, 50_000 + 2 * FRAME_TS);
    const fec = out[3]!;
    assert.equal(fec.timestamp, 50_000 + 3 * FRAME_TS);
    assert.equal(tag(fec), 4, 'fec must carry the following packet');
    const s = jb.toJSON();
    assert.equal(s.lost, 2);
    assert.equal(s.concealed, 1);
    assert.equal(s.fecRecovered, 1);

    // Once a frame has been concealed, its packet is late; replays of played packets are duplicates.
    assert.deepEqual(jb.push(pkt(2), 85), []);
    assert.deepEqual(jb.push(pkt(1), 86), []);
    assert.deepEqual(jb.push(pkt(4), 87), []);
    const after = jb.toJSON();
    assert.equal(after.late, 1);
    assert.equal(after.duplicates, 2);
    assert.equal(after.released, 3);
  });

  it('drops a duplicate of a packet still buffered', () => {
    const jb = new JitterBuffer({ minDelayMs: 50 });
    jb.push(pkt(0), 0);
    jb.push(pkt(0), 5);
    assert.equal(jb.toJSON().duplicates, 1);
    assert.equal(jb.toJSON().buffered, 1);
    assert.equal(jb.poll(60).length, 1);
  });

  it('crosses the 16-bit sequence and 32-bit timestamp wrap without spurious loss', () => {
    const jb = new JitterBuffer();
    const seq0 = 65530;
    const ts0 = 2 ** 32 - 3 * FRAME_TS;
    const out: JitterOutput[] = [];
    for (let i = 0; i < 12; i++) jb.push(pkt(i, seq0, ts0), i * FRAME_MS, out);
    assert.deepEqual(
      out.map((o) => o.sequenceNumber),
      [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4, 5],
    );
    assert.deepEqual(out.map((o) => o.timestamp), Array.from({ length: 12 }, (_, i) => (ts0 + i * FRAME_TS) >>> 0));
    assert.ok(out.every((o) => o.kind === 'packet' && o.holdMs === 0));
    const s = jb.toJSON();
    assert.equal(s.lost + s.late + s.concealed + s.resyncs, 0);
  });

  it('treats a DTX pause (seq + 1, timestamp + 10 s) as no loss', () => {
    const jb = new JitterBuffer();
    for (let i = 0; i < 5; i++) jb.push(pkt(i), i * FRAME_MS);
    let now = 4 * FRAME_MS;
    const during: JitterOutput[] = [];
    while ((now += 20) < 10_080) jb.poll(now, during);
    assert.ok(during.every((o) => o.kind === 'plc'));
    const resumed: RtpAudioPacket = { ...pkt(5), timestamp: 50_000 + 4 * FRAME_TS + 480_000, marker: true };
    const out = jb.push(resumed, 10_080);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.kind, 'packet');
    assert.equal(out[0]!.sequenceNumber, 1005);
    assert.equal(jb.toJSON().lost, 0);
    assert.equal(jb.toJSON().frameMs, 20, 'the pause must not be learned as a frame size');
    // The schedule continues from the new timestamps.
    const next = { ...resumed, sequenceNumber: 1006, timestamp: resumed.timestamp + FRAME_TS };
    assert.equal(jb.push(next, 10_100)[0]?.kind, 'packet');
  });

  it('does not conceal a packet that is exactly on time when the tick comes first', () => {
    const jb = new JitterBuffer();
    jb.push(pkt(0), 0);
    assert.deepEqual(jb.poll(20), []);
    assert.deepEqual(kinds(jb.push(pkt(1), 20)), ['packet:1001']);
    assert.equal(jb.toJSON().concealed, 0);
  });

  it('schedules a loss at the start of a talkspurt from the packet after it', () => {
    const jb = new JitterBuffer({ minDelayMs: 40 });
    for (let i = 0; i < 3; i++) jb.push(pkt(i), i * FRAME_MS);
    jb.poll(2 * FRAME_MS + 40);
    // After a 10 s pause the first packet (seq 3) is lost; seq 4 arrives on time.
    const ts4 = 50_000 + 2 * FRAME_TS + 480_000 + FRAME_TS;
    assert.deepEqual(jb.push({ ...pkt(4), timestamp: ts4 }, 10_060), []);
    assert.equal(jb.nextDeadlineMs(), 10_040 + 40);
    assert.deepEqual(kinds(jb.poll(10_080)), ['fec:1003']);
    assert.deepEqual(kinds(jb.poll(10_100)), ['packet:1004']);
  });

  it('re-anchors a talkspurt whose timestamps did not follow the pause', () => {
    const jb = new JitterBuffer();
    for (let i = 0; i < 5; i++) jb.push(pkt(i), i * FRAME_MS);
    // The next packet is contiguous in RTP time but arrives 5 s later.
    jb.push(pkt(5, 1000, 50_000, true), 5_000);
    for (let i = 6; i < 20; i++) {
      const out = jb.push(pkt(i), 5_000 + (i - 5) * FRAME_MS);
      assert.equal(out[0]?.kind === 'packet' && out[0].holdMs, 0);
    }
    assert.equal(jb.toJSON().targetDelayMs, 0);
  });

  it('adapts the target delay to jitter and comes back down when it stops', () => {
    const jb = new JitterBuffer();
    const random = rng(42);
    const arrivals: { i: number; at: number }[] = [];
    for (let i = 0; i < 500; i++) arrivals.push({ i, at: i * FRAME_MS + random() * 60 });
    arrivals.sort((a, b) => a.at - b.at);
    const out: JitterOutput[] = [];
    for (const a of arrivals) jb.push(pkt(a.i), a.at, out);
    const jittery = jb.toJSON();
    assert.ok(jittery.targetDelayMs >= 30 && jittery.targetDelayMs <= 70, `target ${jittery.targetDelayMs}`);
    assert.ok(jittery.jitterMs > 5, `jitter ${jittery.jitterMs}`);
    assert.ok(jittery.reordered > 0);
    // With a ~p95 target, only a few percent of frames may be concealed.
    assert.ok(jittery.lost < 0.1 * 500, `lost ${jittery.lost}`);

    for (let i = 500; i < 800; i++) jb.push(pkt(i), i * FRAME_MS + 0.5, out);
    const calm = jb.toJSON();
    assert.ok(calm.targetDelayMs <= 5, `target ${calm.targetDelayMs}`);
    while (jb.toJSON().buffered > 0) jb.poll(jb.nextDeadlineMs()!, out);
    // Everything came out once, in order.
    const seqs = out.map((o) => o.sequenceNumber);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, k) => 1000 + k));
    assert.equal(seqs.length, 800);
  });

  it('does not let receiver clock skew grow the delay forever', () => {
    const jb = new JitterBuffer();
    const skew = 1.0005; // receiver clock 500 ppm fast: 30 ms of drift over the minute
    for (let i = 0; i < 3000; i++) jb.push(pkt(i), i * FRAME_MS * skew);
    assert.ok(jb.toJSON().targetDelayMs <= 2, `target ${jb.toJSON().targetDelayMs}`);
  });

  it('never holds more than maxPackets, dropping the oldest', () => {
    const jb = new JitterBuffer({ maxPackets: 8, minDelayMs: 1000, maxDelayMs: 1000 });
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(jb.push(pkt(i), i * FRAME_MS), []);
      assert.ok(jb.toJSON().buffered <= 8);
    }
    const s = jb.toJSON();
    assert.equal(s.overflowDrops, 12);
    assert.equal(s.buffered, 8);
    const out = jb.poll(19 * FRAME_MS + 1000);
    assert.deepEqual(out.map(tag), [12, 13, 14, 15, 16, 17, 18, 19]);
    assert.equal(jb.toJSON().lost, 0);
  });

  it('stops concealing after maxConsecutivePlc frames and resumes when packets return', () => {
    const jb = new JitterBuffer();
    for (let i = 0; i < 3; i++) jb.push(pkt(i), i * FRAME_MS);
    const plc: JitterOutput[] = [];
    for (let now = 60; now <= 2_040; now += 20) jb.poll(now, plc);
    assert.equal(plc.length, 10);
    assert.ok(plc.every((o) => o.kind === 'plc'));
    assert.deepEqual(plc.map((o) => o.sequenceNumber), Array.from({ length: 10 }, (_, k) => 1003 + k));
    assert.equal(jb.nextDeadlineMs(), null);

    const out = jb.push(pkt(103), 103 * FRAME_MS);
    assert.deepEqual(kinds(out), ['packet:1103']);
    const s = jb.toJSON();
    assert.equal(s.lost, 100);
    assert.equal(s.concealed, 10);
  });

  it('resets on a huge sequence jump instead of concealing the gap', () => {
    const jb = new JitterBuffer();
    for (let i = 0; i < 3; i++) jb.push(pkt(i), i * FRAME_MS);
    const out = jb.push(pkt(0, 40_000, 7), 60);
    assert.deepEqual(kinds(out), ['packet:40000']);
    const s = jb.toJSON();
    assert.equal(s.resyncs, 1);
    assert.equal(s.lost + s.concealed + s.late, 0);
    assert.equal(jb.push(pkt(1, 40_000, 7), 80)[0]?.sequenceNumber, 40_001);
  });
});
