import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InboundAudio } from '../../../media/inbound-audio.ts';
import type { JitterOutput } from '../../../media/jitter-buffer.ts';
import { decodePackets, speechPackets } from '../../helpers/audio.ts';

const { packets } = speechPackets();
const packet = (i: number, arrivalMs = 0): JitterOutput => ({ kind: 'packet', sequenceNumber: i, timestamp: i * 960, payload: packets[i]!, arrivalMs, holdMs: 0 });

function collect(frameMs: number): { inbound: InboundAudio; frames: { samples: Int16Array; atMs: number }[] } {
  const frames: { samples: Int16Array; atMs: number }[] = [];
  const inbound = new InboundAudio(16000, (frame, atMs) => frames.push({ samples: frame.slice(), atMs }), frameMs);
  return { inbound, frames };
}

describe('InboundAudio', () => {
  it('slices a packet into frames shorter than it, each stamped with its first sample', () => {
    const { inbound, frames } = collect(10);
    inbound.push(packet(40), 1000);
    assert.deepEqual(frames.map((f) => f.atMs), [1000, 1010]);
    const decoded = decodePackets([packets[40]!]);
    assert.deepEqual(frames[0]!.samples, decoded.subarray(0, 160));
    assert.deepEqual(frames[1]!.samples, decoded.subarray(160, 320));
    inbound.free();
  });

  it('joins packets into longer frames, stamped with the capture time of their first sample', () => {
    const { inbound, frames } = collect(30);
    for (let i = 0; i < 3; i++) inbound.push(packet(40 + i), 1000 + 20 * i);
    // 60 ms in 30 ms frames: the second starts halfway through the second packet.
    assert.deepEqual(frames.map((f) => f.atMs), [1000, 1030]);
    const decoded = decodePackets(packets.slice(40, 43));
    assert.deepEqual(frames[0]!.samples, decoded.subarray(0, 480));
    assert.deepEqual(frames[1]!.samples, decoded.subarray(480, 960));
    inbound.free();
  });

  it('conceals a gap, decodes FEC, and conceals a payload that will not decode instead of throwing', () => {
    const { inbound, frames } = collect(20);
    inbound.push(packet(40), 0);
    inbound.push({ kind: 'plc', sequenceNumber: 41, timestamp: 41 * 960 }, 20);
    inbound.push({ kind: 'fec', sequenceNumber: 42, timestamp: 42 * 960, payload: packets[43]! }, 40);
    inbound.push({ kind: 'packet', sequenceNumber: 43, timestamp: 43 * 960, payload: new Uint8Array([0xff, 0xff, 0xff]), arrivalMs: 0, holdMs: 0 }, 60);
    assert.deepEqual(frames.map((f) => [f.atMs, f.samples.length]), [[0, 320], [20, 320], [40, 320], [60, 320]]);
    inbound.free();
  });

  it('drops a partly filled frame on reset', () => {
    const { inbound, frames } = collect(30);
    inbound.push(packet(40), 1000);
    inbound.reset();
    inbound.push(packet(41), 2000);
    inbound.push(packet(42), 2020);
    assert.deepEqual(frames.map((f) => f.atMs), [2000]);
    inbound.free();
  });

  it('refuses a frame length that is not a whole number of samples', () => {
    assert.throws(() => new InboundAudio(16000, () => undefined, 0.01), RangeError);
  });
});
