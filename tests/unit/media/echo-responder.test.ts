import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EchoResponder, type EchoEvent } from '../../../media/echo-responder.ts';
import { mulberry32 } from '../../helpers/prng.ts';

const random = mulberry32(3);
const noise = (amplitude: number) => Int16Array.from({ length: 320 }, () => Math.round(amplitude * (random() * 2 - 1)));
const tone = (i: number) => Int16Array.from({ length: 320 }, (_, n) => Math.round(8000 * Math.sin((2 * Math.PI * 300 * (i * 320 + n)) / 16000)));
const repeat = (n: number, make: (i: number) => Int16Array) => Array.from({ length: n }, (_, i) => make(i));
const OPTIONS = { endSilenceMs: 400, minSpeechMs: 200, maxUtteranceMs: 10_000 };

/** The wall clock the responder reads: each test sets it to the time of the frame it pushes. */
let wallNow = 0;
const responder = () => new EchoResponder(16000, OPTIONS, () => wallNow);

/** Pushes frames 20 ms apart on the wall clock from `t0`; the events with the wall time of their frame. */
function feed(echo: EchoResponder, frames: Int16Array[], t0 = 1_000_000): { event: EchoEvent; at: number }[] {
  const out: { event: EchoEvent; at: number }[] = [];
  frames.forEach((frame, i) => {
    wallNow = t0 + i * 20;
    const event = echo.push(frame);
    if (event) out.push({ event, at: t0 + i * 20 });
  });
  return out;
}

describe('EchoResponder', () => {
  it('reports the start, then an accepted utterance with its audio and the wall-clock times of the turn', () => {
    const echo = responder();
    const events = feed(echo, [...repeat(50, () => noise(30)), ...repeat(40, tone), ...repeat(30, () => noise(30))]);
    assert.deepEqual(events.map((e) => e.event.type), ['speechstart', 'utterance']);
    const start = events[0]!;
    const end = events[1]!.event;
    assert.ok(start.event.type === 'speechstart' && start.event.at === start.at);
    assert.ok(end.type === 'utterance' && end.accepted && end.audio);
    assert.equal(end.speechStartAt, start.at);
    assert.equal(end.endOfTurnAt, events[1]!.at);
    assert.equal(end.speechEndAt, end.endOfTurnAt - OPTIONS.endSilenceMs, 'speech ended one endpointing silence before the turn did');
    assert.equal(end.audioMs, Math.round((end.audio.length / 16000) * 1000));
    assert.ok(end.audioMs >= 800, `${end.audioMs} ms of audio for 800 ms of speech`);
  });

  it('reports a blip shorter than minSpeechMs as an utterance that is not accepted, without audio', () => {
    const echo = responder();
    const events = feed(echo, [...repeat(50, () => noise(30)), ...repeat(4, tone), ...repeat(30, () => noise(30))]);
    const last = events.at(-1)!.event;
    assert.ok(last.type === 'utterance');
    assert.equal(last.accepted, false);
    assert.equal(last.audio, undefined);
  });

  it('reset() forgets speech in progress: no utterance comes of it', () => {
    const echo = responder();
    feed(echo, [...repeat(50, () => noise(30)), ...repeat(20, tone)]);
    echo.reset();
    const after = feed(echo, repeat(30, () => noise(30)));
    assert.deepEqual(after, []);
  });
});
