import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SpeechPlayout, heardPart } from '../../../media/speech-playout.ts';

const tone = (ms: number, rate: number): Int16Array => {
  const out = new Int16Array((rate * ms) / 1000);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(8000 * Math.sin((2 * Math.PI * 300 * i) / rate));
  return out;
};

function drain(p: SpeechPlayout): number {
  let frames = 0;
  while (p.nextFrame()) frames++;
  return frames;
}

describe('SpeechPlayout', () => {
  it('re-frames audio of any rate into 20 ms frames at 16 kHz', () => {
    const p = new SpeechPlayout();
    p.begin();
    p.push({ samples: tone(500, 24000), sampleRate: 24000 });
    p.push({ samples: tone(500, 24000), sampleRate: 24000 });
    p.end();
    assert.equal(drain(p), 50);
    assert.equal(p.drained, true);
    const result = p.finish();
    assert.equal(result.audioMs, 1000);
    assert.equal(result.playedMs, 1000);
  });

  it('holds back a partial frame until the answer ends, then pads it', () => {
    const p = new SpeechPlayout();
    p.begin();
    p.push({ samples: tone(30, 16000), sampleRate: 16000 });
    assert.ok(p.nextFrame());
    assert.equal(p.nextFrame(), null, 'the 10 ms rest waits for more audio');
    p.end();
    const last = p.nextFrame();
    assert.ok(last);
    assert.equal(last.subarray(160).every((v) => v === 0), true, 'padded with silence');
    assert.equal(p.drained, true);
  });

  it('an interrupted answer reports what was played and the words heard', () => {
    const p = new SpeechPlayout();
    p.begin();
    p.addText('one two three four');
    p.push({ samples: tone(1000, 16000), sampleRate: 16000 });
    p.end();
    for (let i = 0; i < 25; i++) p.nextFrame();
    const result = p.finish();
    assert.equal(result.playedMs, 500);
    assert.equal(result.text, 'one two three four');
    assert.equal(result.heardText, 'one two');
    assert.equal(p.active, false);
    assert.equal(p.nextFrame(), null, 'nothing plays after finish');
  });

  it('heardPart is proportional and word-aligned', () => {
    assert.equal(heardPart('hello there friend', 0, 100), '');
    assert.equal(heardPart('hello there friend', 100, 100), 'hello there friend');
    assert.equal(heardPart('hello there friend', 40, 100), 'hello');
  });
});
