// Our werift patch replaces getBit's string manipulation (run several times per RTP packet) with
// bit arithmetic; this checks the two agree on every input the callers can pass (one byte).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// getBit is internal (not in werift's exports map): load the file the patch changed by path.
const require = createRequire(import.meta.url);
const file = fileURLToPath(new URL('../../../node_modules/werift/lib/common/src/binary.js', import.meta.url));
const { getBit } = require(file) as { getBit: (bits: number, start: number, length?: number) => number };

function reference(bits: number, startIndex: number, length = 1): number {
  const bin = bits.toString(2).padStart(8, '0');
  return Number.parseInt(bin.slice(startIndex, startIndex + length), 2);
}

describe('werift getBit (patched)', () => {
  it('matches the string-based original for every byte, start and length', () => {
    for (let byte = 0; byte < 256; byte++) {
      for (let start = 0; start < 8; start++) {
        for (let length = 1; start + length <= 8; length++) assert.equal(getBit(byte, start, length), reference(byte, start, length));
      }
    }
  });
  it('is the patched version (no string conversion)', () => {
    assert.match(getBit.toString(), />>/);
  });
});
