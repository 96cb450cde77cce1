import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Room, type RoomMedia } from '../../../media/room.ts';
import { TypedEmitter } from '../../../media/typed-emitter.ts';
import type { MediaSessionEvents } from '../../../media/media-session.ts';
import type { OutboundTrack } from '../../../media/forwarder.ts';
import type { RewrittenHeader } from '../../../media/rtp-rewriter.ts';
import type { InboundRtp } from '../../../media/peer.ts';

class FakeTrack implements OutboundTrack {
  mid: string | null;
  closed = false;
  readonly sent: { header: RewrittenHeader; payload: Uint8Array }[] = [];
  constructor(mid: string) {
    this.mid = mid;
  }
  send(header: RewrittenHeader, payload: Uint8Array): void {
    this.sent.push({ header, payload });
  }
  close(): void {
    this.closed = true;
  }
}

/** A participant's media session as the room sees it. */
class FakeMedia extends TypedEmitter<MediaSessionEvents> implements RoomMedia {
  readonly tracks = new Map<string, FakeTrack>();
  readonly agentAudio: Uint8Array[] = [];
  #mids = 1;
  addOutboundTrack(participantId: string): OutboundTrack {
    const track = new FakeTrack(String(this.#mids++));
    this.tracks.set(participantId, track);
    return track;
  }
  sendAgentAudio(payload: Uint8Array): void {
    this.agentAudio.push(payload);
  }
  emitRtp(packet: InboundRtp): void {
    this.safeEmit('rtp', packet);
  }
  emitLevel(db: number): void {
    this.safeEmit('level', db);
  }
  emitOutbound(payload: Uint8Array): void {
    this.safeEmit('outbound', payload, 0, false);
  }
  replacePeer(): void {
    this.tracks.clear();
    this.safeEmit('peerreplaced');
  }
}

let clock = 0;
const rtp = (seq: number, tag: number, ssrc = 7): InboundRtp => ({ sequenceNumber: seq, timestamp: seq * 960, marker: false, ssrc, payload: Uint8Array.of(tag) });

function trio(): { room: Room; a: FakeMedia; b: FakeMedia; c: FakeMedia } {
  const room = new Room('r', () => clock);
  const [a, b, c] = [new FakeMedia(), new FakeMedia(), new FakeMedia()];
  room.add('a', a);
  room.add('b', b);
  room.add('c', c);
  return { room, a, b, c };
}

describe('Room', () => {
  it('gives each participant one track per other participant, and forwards to all but the sender', () => {
    const { room, a, b, c } = trio();
    assert.deepEqual([...a.tracks.keys()].sort(), ['b', 'c']);
    assert.deepEqual([...b.tracks.keys()].sort(), ['a', 'c']);
    assert.deepEqual([...c.tracks.keys()].sort(), ['a', 'b']);
    a.emitRtp(rtp(1, 0xaa));
    assert.equal(b.tracks.get('a')!.sent.length, 1);
    assert.equal(c.tracks.get('a')!.sent.length, 1);
    assert.equal(b.tracks.get('a')!.sent[0]!.payload[0], 0xaa);
    assert.equal(b.tracks.get('c')!.sent.length + c.tracks.get('b')!.sent.length, 0, 'nothing on the other tracks');
    assert.deepEqual(room.tracksOf('b').sort((x, y) => x.participantId.localeCompare(y.participantId)), [
      { mid: '1', participantId: 'a' },
      { mid: '2', participantId: 'c' },
    ]);
    assert.equal(room.toJSON().forwarded, 2);
  });

  it('mutes one subscription only; the mute survives a resubscription', () => {
    const { room, a, b, c } = trio();
    room.setSubscriptionMuted('b', 'a', true);
    a.emitRtp(rtp(1, 1));
    assert.equal(b.tracks.get('a')!.sent.length, 0);
    assert.equal(c.tracks.get('a')!.sent.length, 1);
    room.setSubscriptionMuted('b', 'a', false);
    a.emitRtp(rtp(2, 2));
    assert.equal(b.tracks.get('a')!.sent.length, 1);
    assert.equal(b.tracks.get('a')!.sent[0]!.header.marker, true, 'resumes as a new talkspurt');
    room.setSubscriptionMuted('b', 'a', true);
    room.subscribe('b', ['c']);
    room.subscribe('b', null);
    a.emitRtp(rtp(3, 3));
    assert.equal(b.tracks.get('a')!.sent.length, 0, 'still muted on the new track');
  });

  it('subscribing to a subset removes the other tracks; newcomers are not added to a subset', () => {
    const { room, a, b } = trio();
    const trackOfC = b.tracks.get('c')!;
    room.subscribe('b', ['a']);
    assert.equal(trackOfC.closed, true);
    assert.deepEqual(room.tracksOf('b').map((t) => t.participantId), ['a']);
    const d = new FakeMedia();
    room.add('d', d);
    assert.deepEqual(room.tracksOf('b').map((t) => t.participantId), ['a']);
    assert.ok(a.tracks.has('d'), 'a subscribes to everyone, newcomers included');
    room.subscribe('b', null);
    assert.deepEqual(room.tracksOf('b').map((t) => t.participantId).sort(), ['a', 'c', 'd']);
  });

  it('a participant who leaves has its tracks closed on the others; nothing more is forwarded to it', () => {
    const { room, a, b, c } = trio();
    const onB = b.tracks.get('c')!;
    room.remove('c');
    assert.equal(onB.closed, true);
    assert.equal(a.tracks.get('c')!.closed, true);
    c.emitRtp(rtp(1, 1));
    assert.equal(onB.sent.length, 0, 'its media is detached');
    b.emitRtp(rtp(1, 1));
    assert.equal(c.tracks.get('b')!.sent.length, 0);
    assert.equal(room.size, 2);
  });

  it('a replaced peer gets new tracks; the agent audio reaches everyone else', () => {
    const { room, a, b, c } = trio();
    b.replacePeer();
    assert.deepEqual([...b.tracks.keys()].sort(), ['a', 'c']);
    a.emitRtp(rtp(1, 1));
    assert.equal(b.tracks.get('a')!.sent.length, 1);
    a.emitOutbound(Uint8Array.of(9));
    assert.equal(a.agentAudio.length, 0);
    assert.equal(b.agentAudio.length, 1);
    assert.equal(c.agentAudio.length, 1);
    assert.equal(room.size, 3);
  });

  it('announces the active speaker from the levels', () => {
    const { room, a, b } = trio();
    const speakers: (string | null)[] = [];
    room.on('activespeaker', (id) => speakers.push(id));
    for (let i = 0; i < 30; i++) {
      clock += 20;
      a.emitLevel(-90);
      b.emitLevel(-20);
    }
    assert.deepEqual(speakers, ['b']);
    room.remove('b');
    assert.deepEqual(speakers, ['b', null]);
  });
});
