import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RoomDirectory } from '../../../server/room-directory.ts';
import type { ServerMessage } from '../../../signaling/protocol.ts';

function directory(options: { maxParticipants?: number; emptyTimeoutMs?: number } = {}) {
  const inbox = new Map<string, ServerMessage[]>();
  const rooms = new RoomDirectory(options, (id, m) => (inbox.get(id) ?? inbox.set(id, []).get(id)!).push(m));
  return { rooms, inbox: (id: string) => inbox.get(id) ?? [] };
}

describe('RoomDirectory', () => {
  it('seats participants, tells the others, and designates the first one for the agent', () => {
    const { rooms, inbox } = directory();
    const a = rooms.admit('r', 's-a', 'alice');
    const b = rooms.admit('r', 's-b', 'bob');
    assert.equal(a.agent, true);
    assert.equal(b.agent, false);
    assert.notEqual(a.participantId, b.participantId);
    assert.deepEqual(inbox('s-a'), [{ type: 'participant', event: 'joined', participant: { participantId: b.participantId, identity: 'bob', muted: false } }]);
    assert.deepEqual(inbox('s-b'), [], 'the newcomer gets the snapshot instead');
    const snapshot = rooms.snapshot('s-b')!;
    assert.equal(snapshot.participantId, b.participantId);
    assert.deepEqual(snapshot.participants.map((p) => p.identity), ['alice', 'bob']);
    assert.equal(snapshot.agentListensTo, a.participantId);
    assert.equal(rooms.isOtherParticipant('s-b', a.participantId), true);
    assert.equal(rooms.isOtherParticipant('s-b', b.participantId), false, 'not oneself');
  });

  it('refuses a participant beyond the limit; a seat frees when someone leaves', () => {
    const { rooms } = directory({ maxParticipants: 2 });
    rooms.admit('r', '1');
    rooms.admit('r', '2');
    assert.throws(() => rooms.admit('r', '3'), { code: 'ROOM_ERR_FULL' });
    rooms.admit('other', '4');
    rooms.leave('1');
    assert.equal(rooms.admit('r', '3').agent, false);
  });

  it('hands the agent to the longest-present participant when its participant leaves', () => {
    const { rooms, inbox } = directory();
    rooms.admit('r', 'a');
    const b = rooms.admit('r', 'b');
    rooms.admit('r', 'c');
    const moved: string[] = [];
    rooms.on('agentmoved', (_room, id) => moved.push(id));
    rooms.leave('a');
    assert.deepEqual(moved, ['b']);
    assert.deepEqual(inbox('c').slice(-2).map((m) => m.type), ['participant', 'agent']);
    assert.deepEqual(inbox('c').at(-1), { type: 'agent', listensTo: b.participantId });
  });

  it('broadcasts mutes and the active speaker, once per change', () => {
    const { rooms, inbox } = directory();
    const a = rooms.admit('r', 'a');
    rooms.admit('r', 'b');
    rooms.setMuted('a', true);
    rooms.setMuted('a', true);
    rooms.setActiveSpeaker('r', a.participantId);
    rooms.setActiveSpeaker('r', a.participantId);
    const seen = inbox('b').map((m) => m.type + (m.type === 'participant' ? `:${m.event}` : ''));
    assert.deepEqual(seen, ['participant:muted', 'active_speaker']);
    assert.equal(rooms.snapshot('b')!.activeSpeaker, a.participantId);
  });

  it('closes a room once it stayed empty for the timeout; a participant back in time keeps it', async () => {
    const { rooms } = directory({ emptyTimeoutMs: 20 });
    const closed: string[] = [];
    rooms.on('roomclosed', (name) => closed.push(name));
    rooms.admit('kept', 'k1');
    rooms.leave('k1');
    rooms.admit('kept', 'k2');
    rooms.admit('gone', 'g1');
    rooms.leave('g1');
    // The directory's timers do not hold the process open; this one keeps the test's loop alive.
    const keepAlive = setTimeout(() => undefined, 5000);
    await new Promise<void>((resolve) => rooms.once('roomclosed', () => resolve()));
    clearTimeout(keepAlive);
    assert.deepEqual(closed, ['gone']);
    assert.equal(rooms.size, 1);
  });
});
