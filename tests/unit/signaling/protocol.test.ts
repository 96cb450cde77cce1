import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseClientMessage } from '../../../signaling/protocol.ts';

const code = (text: string) => {
  const r = parseClientMessage(text);
  return r.ok ? 'ok' : r.code;
};

describe('client message schemas', () => {
  it('accepts every well-formed message type', () => {
    for (const m of [
      { type: 'join' },
      { type: 'join', room: 'a.b-c_1', mode: 'echo' },
      { type: 'join', token: 'header.payload.signature' },
      { type: 'resume', sessionId: 's', resumeToken: 'r', token: 'header.payload.signature' },
      { type: 'offer', sdp: 'v=0' },
      { type: 'answer', sdp: 'v=0' },
      { type: 'candidate', candidate: null },
      { type: 'candidate', candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 } },
      { type: 'candidate', candidate: { candidate: '', sdpMid: null, sdpMLineIndex: null, usernameFragment: null } },
      { type: 'leave' },
      { type: 'ping' },
      { type: 'ping', id: 3 },
    ]) {
      assert.equal(code(JSON.stringify(m)), 'ok', JSON.stringify(m));
    }
  });

  it('refuses malformed JSON and non-objects', () => {
    assert.equal(code('{'), 'SIG_ERR_BAD_JSON');
    assert.equal(code(''), 'SIG_ERR_BAD_JSON');
    assert.equal(code('null'), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code('[]'), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code('{"type":5}'), 'SIG_ERR_BAD_MESSAGE');
  });

  it('refuses unknown types, including prototype names', () => {
    assert.equal(code('{"type":"hello"}'), 'SIG_ERR_UNKNOWN_TYPE');
    assert.equal(code('{"type":"constructor"}'), 'SIG_ERR_UNKNOWN_TYPE');
    assert.equal(code('{"type":"__proto__"}'), 'SIG_ERR_UNKNOWN_TYPE');
  });

  it('refuses missing, extra and mistyped fields, and values over their limits', () => {
    assert.equal(code('{"type":"offer"}'), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code('{"type":"offer","sdp":""}'), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code('{"type":"leave","now":true}'), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code('{"type":"candidate"}'), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code('{"type":"candidate","candidate":{"sdpMid":"0"}}'), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code('{"type":"candidate","candidate":{"candidate":"x","port":1}}'), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code(JSON.stringify({ type: 'join', room: 'x'.repeat(65) })), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code(JSON.stringify({ type: 'join', room: 'a b' })), 'SIG_ERR_BAD_MESSAGE');
    assert.equal(code(JSON.stringify({ type: 'offer', sdp: 'v'.repeat(33 * 1024) })), 'SIG_ERR_SDP_TOO_LARGE');
  });

  it('names the offending field in the message', () => {
    const r = parseClientMessage('{"type":"leave","now":true}');
    assert.ok(!r.ok && r.message.includes('"now"'));
  });
});
