import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canTransition } from '../../../server/session-state.ts';
import { Session, InvalidStateError } from '../../../server/session.ts';
import { SESSION_STATES } from '../../../server/session-types.ts';
import type { ServerMessage } from '../../../signaling/protocol.ts';

describe('session state machine', () => {
  it('follows the conversation cycle', () => {
    const path = ['connecting', 'connected', 'listening', 'processing', 'responding', 'listening'] as const;
    for (let i = 1; i < path.length; i++) assert.ok(canTransition(path[i - 1], path[i]), `${path[i - 1]} -> ${path[i]}`);
  });
  it('lets every live state drop to reconnecting and come back', () => {
    for (const s of ['connecting', 'connected', 'listening', 'processing', 'responding'] as const) {
      assert.ok(canTransition(s, 'reconnecting'));
      assert.ok(canTransition(s, 'disconnected'));
      assert.ok(canTransition(s, 'error'));
    }
    for (const s of ['connected', 'listening', 'processing', 'responding'] as const) assert.ok(canTransition('reconnecting', s));
  });
  it('never leaves disconnected, and error only goes to disconnected', () => {
    for (const s of SESSION_STATES) {
      assert.equal(canTransition('disconnected', s), false);
      assert.equal(canTransition('error', s), s === 'disconnected');
    }
  });
  it('refuses shortcuts', () => {
    assert.equal(canTransition('connecting', 'listening'), false);
    assert.equal(canTransition('listening', 'responding'), false);
    assert.equal(canTransition('connected', 'processing'), false);
  });
});

describe('Session', () => {
  it('announces each state change to the client and as a typed event', () => {
    const session = new Session(undefined, 'echo');
    const sent: ServerMessage[] = [];
    const events: string[] = [];
    session.attach((m) => sent.push(m));
    session.on('statechange', (state, previous) => events.push(`${previous}->${state}`));
    session.setState('connected');
    session.setState('listening');
    assert.deepEqual(events, ['connecting->connected', 'connected->listening']);
    assert.deepEqual(sent, [
      { type: 'state', state: 'connected', previous: 'connecting' },
      { type: 'state', state: 'listening', previous: 'connected' },
    ]);
    assert.throws(() => session.setState('responding'), InvalidStateError);
    assert.equal(session.state, 'listening');
  });

  it('records turns in order from media events, and ends with disconnected once', () => {
    const session = new Session('r1', 'echo');
    const sent: ServerMessage[] = [];
    session.attach((m) => sent.push(m));
    session.setState('connected');
    session.setState('listening');
    for (let i = 0; i < 3; i++) {
      session.onUtterance({ speechStartAt: 1000 * i, speechEndAt: 1000 * i + 500, endOfTurnAt: 1000 * i + 900, audioMs: 500 });
      assert.equal(session.state, 'processing');
      session.onResponseStart(1000 * i + 910);
      assert.equal(session.state, 'responding');
      session.onResponseEnd(1000 * i + 1410, 500, 500, false);
      assert.equal(session.state, 'listening');
    }
    assert.deepEqual(session.history.map((t) => t.index), [0, 1, 2]);
    assert.equal(new Set(session.history.map((t) => t.turnId)).size, 3);
    assert.equal(session.history[1]!.timings.firstPacketOutAt, 1910);
    assert.equal(sent.filter((m) => m.type === 'turn').length, 3);
    let closes = 0;
    session.on('@close', () => closes++);
    session.close('test');
    session.close('again');
    assert.equal(closes, 1);
    assert.equal(session.state, 'disconnected');
  });

  it('knows where the conversation stands, so a recovered session returns there', () => {
    const session = new Session(undefined, 'echo');
    session.setState('connected');
    session.setState('listening');
    assert.equal(session.conversationState(), 'listening');
    session.onUtterance({ speechStartAt: 0, speechEndAt: 500, endOfTurnAt: 900, audioMs: 500 });
    session.setState('reconnecting', 'media_lost');
    assert.equal(session.conversationState(), 'processing');
    session.onResponseStart(950); // playback began while the link was down
    assert.equal(session.state, 'reconnecting', 'media events do not move a reconnecting session');
    assert.equal(session.conversationState(), 'responding');
    session.setState(session.conversationState(), 'recovered');
    session.onResponseEnd(1500, 500, 500, false);
    assert.equal(session.state, 'listening');
    assert.equal(session.conversationState(), 'listening');
  });

  it('makes unguessable ids and tokens', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => new Session(undefined, 'echo').id));
    assert.equal(ids.size, 1000);
    const s = new Session(undefined, 'echo');
    assert.ok(Buffer.from(s.id, 'base64url').length >= 16);
    const token = s.rotateResumeToken();
    assert.ok(Buffer.from(token, 'base64url').length >= 32);
  });

  it('accepts only the latest resume token', () => {
    const s = new Session(undefined, 'echo');
    assert.equal(s.resumeTokenMatches('anything'), false, 'no token issued yet');
    const first = s.rotateResumeToken();
    assert.ok(s.resumeTokenMatches(first));
    const second = s.rotateResumeToken();
    assert.equal(s.resumeTokenMatches(first), false, 'a used token is dead');
    assert.ok(s.resumeTokenMatches(second));
    assert.equal(s.resumeTokenMatches(second.slice(0, -1) + (second.endsWith('A') ? 'B' : 'A')), false);
    assert.equal(s.resumeTokenHash.includes(second), false, 'only a hash is kept');
  });
});
