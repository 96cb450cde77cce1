import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ActiveSpeakerDetector, levelDb } from '../../../media/active-speaker.ts';

const SILENT = -90;
const LOUD = -20;
const SOFT = -40;

/** Feeds one 20 ms frame per participant per tick; returns the changes with their times. */
function run(d: ActiveSpeakerDetector, ticks: number, levels: (tick: number) => Record<string, number>, start = 0): { at: number; active: string | null }[] {
  const changes: { at: number; active: string | null }[] = [];
  for (let t = start; t < start + ticks; t++) {
    for (const [id, db] of Object.entries(levels(t))) {
      const change = d.push(id, db, t * 20);
      if (change !== undefined) changes.push({ at: t * 20, active: change });
    }
  }
  return changes;
}

describe('ActiveSpeakerDetector', () => {
  it('levelDb: full-scale square wave is 0 dB, silence the floor, half amplitude -6 dB', () => {
    assert.equal(levelDb(new Int16Array(320).fill(-32768)), 0);
    assert.equal(levelDb(new Int16Array(320)), -100);
    assert.ok(Math.abs(levelDb(new Int16Array(320).fill(16384)) + 6.02) < 0.01);
  });

  it('names the one participant who speaks, quickly, and only once', () => {
    const d = new ActiveSpeakerDetector();
    const changes = run(d, 50, () => ({ a: SILENT, b: LOUD, c: SILENT }));
    assert.equal(changes.length, 1);
    assert.equal(changes[0]!.active, 'b');
    assert.ok(changes[0]!.at <= 200, `took ${changes[0]!.at} ms`);
  });

  it('does not flap between two talkers of similar level; a much louder one takes over after the hold', () => {
    const d = new ActiveSpeakerDetector({ minHoldMs: 500 });
    run(d, 25, () => ({ a: LOUD, b: SILENT }));
    assert.equal(d.active, 'a');
    const similar = run(d, 100, (t) => ({ a: LOUD + (t % 2 ? 2 : -2), b: LOUD + (t % 2 ? -2 : 2) }), 25);
    assert.deepEqual(similar, [], 'a keeps the floor against an equal voice');
    const louder = run(d, 50, () => ({ a: SOFT, b: LOUD }), 125);
    assert.equal(louder.length, 1);
    assert.equal(louder[0]!.active, 'b');
  });

  it('hands the floor to the next speaker when the current one stops, and releases it after silence', () => {
    const d = new ActiveSpeakerDetector({ releaseMs: 1000 });
    run(d, 50, () => ({ a: LOUD, b: SILENT }));
    const handover = run(d, 50, () => ({ a: SILENT, b: SOFT }), 50);
    assert.deepEqual(handover.map((c) => c.active), ['b']);
    const release = run(d, 100, () => ({ a: SILENT, b: SILENT }), 100);
    assert.deepEqual(release.map((c) => c.active), [null]);
    assert.ok(release[0]!.at - 100 * 20 >= 1000 - 200, 'not before the release time (minus the smoothing decay)');
  });

  it('a participant who leaves while speaking is no longer the active speaker', () => {
    const d = new ActiveSpeakerDetector();
    run(d, 20, () => ({ a: LOUD }));
    assert.equal(d.remove('a', 1000), null);
    assert.equal(d.remove('b', 1000), undefined);
  });
});
