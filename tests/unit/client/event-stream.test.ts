import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readEventStream } from '../../../client/whip/event-stream.ts';

/** A Response whose body arrives in the given chunks (split anywhere, as TCP may). */
function streamed(chunks: string[]): Response {
  const encoder = new TextEncoder();
  return new Response(new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  }));
}

describe('readEventStream (text/event-stream)', () => {
  it('yields events split across chunks, skips comments, parses JSON data', async () => {
    const text = ': keepalive\n\nid: 1\nevent: state\ndata: {"state":"listening"}\n\nid: 2\r\nevent: turn\r\ndata: {"turn":\r\ndata: {"index":0}}\r\n\r\n';
    const cuts = [3, 17, 40, 41, 70, text.length];
    const chunks = cuts.map((end, i) => text.slice(i === 0 ? 0 : cuts[i - 1], end));
    const events = [];
    for await (const event of readEventStream(streamed(chunks))) events.push(event);
    assert.deepEqual(events, [
      { event: 'state', data: { state: 'listening' }, id: '1' },
      { event: 'turn', data: { turn: { index: 0 } }, id: '2' },
    ]);
  });

  it('ignores an event cut off by the end of the stream', async () => {
    const events = [];
    for await (const event of readEventStream(streamed(['event: state\ndata: {"a":1}\n']))) events.push(event);
    assert.deepEqual(events, []);
  });
});
