import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TurnDetector, endsMidPhrase, type TurnEvent } from '../../../media/turn-detector.ts';

// Feeds `ms` of frames with the same VAD state; returns the events with the frame time they came at.
function feed(detector: TurnDetector, ms: number, speaking: boolean): TurnEvent[] {
  const events: TurnEvent[] = [];
  for (let t = 0; t < ms; t += 20) events.push(...detector.push(speaking, speaking));
  return events;
}

describe('TurnDetector', () => {
  it('ends the turn after endSilenceMs of silence following enough speech', () => {
    const d = new TurnDetector({ endSilenceMs: 500, minSpeechMs: 200 });
    const start = feed(d, 1000, true);
    assert.deepEqual(start.map((e) => e.type), ['speech_start']);
    const before = feed(d, 480, false);
    assert.deepEqual(before.map((e) => e.type), ['speech_end'], 'not yet: 480 ms of silence');
    const end = feed(d, 20, false);
    assert.equal(end.length, 1);
    const e = end[0];
    assert.equal(e.type, 'end_of_turn');
    if (e.type !== 'end_of_turn') return;
    assert.equal(e.speechStartAtMs, 0);
    assert.equal(e.speechEndAtMs, 1000);
    assert.equal(e.atMs, 1500);
    assert.equal(e.voicedMs, 1000);
    assert.equal(e.cut, false);
  });

  it('discards a burst shorter than minSpeechMs (a cough) instead of ending a turn', () => {
    const d = new TurnDetector({ endSilenceMs: 300, minSpeechMs: 250 });
    feed(d, 100, true);
    const events = feed(d, 400, false);
    assert.deepEqual(events.map((e) => e.type), ['speech_end', 'discarded']);
    assert.equal(d.inTurn, false);
  });

  it('a pause shorter than endSilenceMs keeps the turn going', () => {
    const d = new TurnDetector({ endSilenceMs: 500, minSpeechMs: 100 });
    feed(d, 400, true);
    feed(d, 300, false);
    const resumed = feed(d, 400, true);
    assert.deepEqual(resumed.map((e) => e.type), ['speech_start']);
    const end = feed(d, 500, false).find((e) => e.type === 'end_of_turn');
    assert.ok(end && end.type === 'end_of_turn');
    assert.equal(end.voicedMs, 800);
    assert.equal(end.speechStartAtMs, 0);
  });

  it('waits longer when the partial transcript ends mid-phrase, up to the cap', () => {
    const d = new TurnDetector({ endSilenceMs: 500, minSpeechMs: 100, midPhraseExtensionMs: 400 });
    feed(d, 600, true);
    d.setPartialTranscript('I would like a coffee and');
    const during = feed(d, 880, false);
    assert.ok(!during.some((e) => e.type === 'end_of_turn'), 'no end within silence + extension');
    const end = feed(d, 20, false).find((e) => e.type === 'end_of_turn');
    assert.ok(end && end.type === 'end_of_turn');
    assert.equal(end.extendedMs, 400);
    assert.equal(end.atMs - 600, 900);
  });

  it('does not extend after a complete phrase', () => {
    const d = new TurnDetector({ endSilenceMs: 500, minSpeechMs: 100, midPhraseExtensionMs: 400 });
    feed(d, 600, true);
    d.setPartialTranscript('what time is it');
    const end = feed(d, 500, false).find((e) => e.type === 'end_of_turn');
    assert.ok(end && end.type === 'end_of_turn');
    assert.equal(end.extendedMs, 0);
  });

  it('cuts a turn that reaches maxTurnMs', () => {
    const d = new TurnDetector({ maxTurnMs: 2000 });
    const events = feed(d, 2000, true);
    const end = events.find((e) => e.type === 'end_of_turn');
    assert.ok(end && end.type === 'end_of_turn');
    assert.equal(end.cut, true);
    assert.equal(end.atMs, 2000);
  });

  it('knows mid-phrase endings', () => {
    for (const text of ['and', 'the weather in', 'um', 'I was thinking about the']) assert.equal(endsMidPhrase(text), true, text);
    for (const text of ['', 'what time is it', 'goodbye.', 'thank you']) assert.equal(endsMidPhrase(text), false, text);
  });
});
