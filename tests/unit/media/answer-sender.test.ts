import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AnswerSender } from '../../../media/answer-sender.ts';

const frame = () => Int16Array.from({ length: 320 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)));

describe('AnswerSender', () => {
  it('marks each talkspurt and keeps the RTP clock true: +960 within one, the real pause across one', () => {
    const sender = new AnswerSender();
    const a = sender.encode(frame(), 1000);
    const b = sender.encode(frame(), 1020);
    assert.equal(a.marker, true, 'the first packet starts a talkspurt');
    assert.equal(b.marker, false);
    assert.equal((b.timestamp - a.timestamp) >>> 0, 960);
    assert.ok(a.payload.length > 0 && b.payload.length > 0);
    sender.pause(); // 500 ms without audio
    const c = sender.encode(frame(), 1520);
    assert.equal(c.marker, true);
    assert.equal((c.timestamp - b.timestamp) >>> 0, 500 * 48);
    sender.pause(); // a pause shorter than a frame still advances by one frame
    const d = sender.encode(frame(), 1525);
    assert.equal((d.timestamp - c.timestamp) >>> 0, 960);
    sender.free();
  });

  it('steps the bitrate down when the client reports heavy loss', () => {
    const sender = new AnswerSender();
    sender.encode(frame(), 0);
    const before = sender.onReceiverReport({ fractionLost: 0, jitterMs: 5, rttMs: 20 }, 0).bitrate;
    let after = before;
    for (let t = 1000; t <= 20_000; t += 1000) after = sender.onReceiverReport({ fractionLost: 0.2, jitterMs: 5, rttMs: 20 }, t).bitrate;
    assert.ok(after < before, `${before} -> ${after}`);
    sender.free();
  });
});
