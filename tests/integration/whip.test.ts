// The HTTP signaling API a SIP bridge uses (WHIP, RFC 9725, plus the session API), driven by the
// example client (client/whip/whip-client.ts: plain fetch + a werift peer) against a real server on
// loopback: a call with turns, trickle ICE, an ICE restart that keeps the conversation, events over
// SSE, `say`, DELETE, and every error status the API defines.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { RTCPeerConnection } from 'werift';
import { startServer, type RunningServer } from '../helpers/server.ts';
import { mintTestToken, testIdentity } from '../helpers/auth.ts';
import { encodePackets } from '../helpers/audio.ts';
import { fliteSpeech } from '../helpers/flite-speech.ts';
import { disablePublicStun, WhipClient, WhipError } from '../../client/whip/whip-client.ts';
import { TestClient } from '../helpers/werift-client.ts';
import type { ServerSentEvent } from '../../client/whip/event-stream.ts';
import { MAX_EVENT_STREAMS } from '../../signaling/session-api-route.ts';
import type { Grant } from '../../signaling/auth.ts';

const BRIDGE_GRANTS: Grant[] = ['join', 'publish', 'subscribe', 'sip', 'agent'];
const LOOPBACK = ['127.0.0.1'];
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Collects a session's SSE events; `next` waits for one that matches. */
class EventLog {
  readonly events: ServerSentEvent[] = [];
  readonly ended: Promise<void>;
  readonly #abort = new AbortController();
  #waiters: { match: (e: ServerSentEvent) => boolean; resolve: (e: ServerSentEvent) => void }[] = [];

  constructor(client: WhipClient) {
    this.ended = (async () => {
      try {
        for await (const event of client.events(this.#abort.signal)) {
          this.events.push(event);
          this.#waiters = this.#waiters.filter((w) => !(w.match(event) && (w.resolve(event), true)));
        }
      } catch (error) {
        if ((error as Error).name !== 'AbortError') throw error;
      }
    })();
  }

  next(match: (e: ServerSentEvent) => boolean, timeoutMs = 30_000): Promise<ServerSentEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no such event in ${timeoutMs} ms; got ${this.events.map((e) => e.event).join(', ')}`)), timeoutMs);
      this.#waiters.push({ match, resolve: (e) => { clearTimeout(timer); resolve(e); } });
    });
  }

  /** Like `next`, but an event already seen counts too. */
  seen(match: (e: ServerSentEvent) => boolean, timeoutMs = 30_000): Promise<ServerSentEvent> {
    const earlier = this.events.find(match);
    return earlier ? Promise.resolve(earlier) : this.next(match, timeoutMs);
  }

  stop(): void {
    this.#abort.abort();
  }
}

const isTurn = (e: ServerSentEvent): boolean => e.event === 'turn';
const dataOf = <T>(e: ServerSentEvent): T => e.data as T;

async function speak(client: WhipClient, text: string): Promise<void> {
  await client.speak(encodePackets(await fliteSpeech(text, 200)));
}

/** A werift offer with ICE credentials, for requests that never get as far as media. */
async function plainOffer(): Promise<string> {
  const pc = new RTCPeerConnection({ iceServers: [], iceUseIpv4: false, iceUseIpv6: false, iceAdditionalHostAddresses: LOOPBACK });
  pc.addTransceiver('audio', { direction: 'sendrecv' });
  disablePublicStun(pc);
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const sdp = pc.localDescription!.sdp;
  await pc.close();
  return sdp;
}

describe('WHIP signaling API (SIP bridges)', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({
      VOICE_DEFAULT_MODE: 'stt_tts',
      MEDIA_WORKERS: '1',
      // Handed to clients only: the server never contacts them (nothing here leaves loopback).
      ICE_SERVERS: 'stun:stun.example.test:3478,turn:turn.example.test:3478?transport=udp',
      ICE_SERVER_USERNAME: 'bridge-user',
      ICE_SERVER_CREDENTIAL: 'bridge-credential',
    });
  });
  after(async () => {
    await server?.close();
  });

  it('a call: turns, an ICE restart that keeps the conversation, events, say, DELETE', async () => {
    const identity = testIdentity('bridge');
    const token = await mintTestToken({ identity, grants: BRIDGE_GRANTS });
    const client = await WhipClient.connect({ serverUrl: server.url, token, hostAddresses: LOOPBACK, trickle: true });
    const log = new EventLog(client);
    try {
      assert.match(client.resourceUrl, new RegExp(`/v1/whip/${client.sessionId}$`));
      assert.match(client.etag, /^"[^"]+"$/);
      assert.deepEqual(client.iceServerLinks, [
        '<stun:stun.example.test:3478>; rel="ice-server"',
        '<turn:turn.example.test:3478?transport=udp>; rel="ice-server"; username="bridge-user"; credential="bridge-credential"; credential-type="password"',
      ]);
      // The candidates went in a PATCH (trickle), not in the offer, and the call connected.
      await log.seen((e) => (e.event === 'session' || e.event === 'state') && dataOf<{ state: string }>(e).state === 'listening', 10_000);
      client.startMic();

      const firstTurn = log.next(isTurn);
      await speak(client, 'what time is it');
      const turn0 = dataOf<{ turn: { index: number; userText: string; agentText: string } }>(await firstTurn).turn;
      assert.equal(turn0.index, 0);
      assert.ok(turn0.userText, 'the question was recognised');
      assert.match(turn0.agentText, /\d|time/i);
      assert.ok(client.received.length > 25, `the answer arrived as audio (${client.received.length} packets)`);

      // The network changes: ICE restart over PATCH with If-Match: "*".
      const etagBefore = client.etag;
      const sessionBefore = client.sessionId;
      const restartAt = performance.now();
      await client.restartIce();
      const restartMs = performance.now() - restartAt;
      assert.notEqual(client.etag, etagBefore, 'a restart gives the resource a new ETag');
      assert.ok(restartMs < 2000, `ICE restart took ${restartMs.toFixed(0)} ms`);

      const secondTurn = log.next((e) => isTurn(e) && dataOf<{ turn: { index: number } }>(e).turn.index === 1);
      await speak(client, 'what can you do');
      const turn1 = dataOf<{ turn: { index: number; userText: string } }>(await secondTurn).turn;
      assert.ok(turn1.userText, 'heard after the restart');
      const session = await client.session();
      assert.equal(session.sessionId, sessionBefore);
      assert.equal(session.transport, 'whip');
      assert.equal((session.turns as unknown[]).length, 2, 'the conversation survived the restart');
      assert.equal((session.participants as { identity: string }[])[0]?.identity, identity);

      // An announcement: the agent says it, the events show it, the audio arrives.
      const announced = log.next((e) => e.event === 'transcript' && dataOf<{ role: string; final: boolean }>(e).role === 'agent' && dataOf<{ final: boolean }>(e).final);
      const receivedBefore = client.received.length;
      await client.say('the meeting starts in five minutes');
      assert.equal(dataOf<{ text: string }>(await announced).text, 'the meeting starts in five minutes');
      const audioAfterSay = await waitFor(() => client.received.length - receivedBefore >= 25, 10_000);
      assert.ok(audioAfterSay, 'the announcement arrived as audio');

      const closed = log.next((e) => e.event === 'closed');
      await client.close();
      assert.equal(dataOf<{ reason: string }>(await closed).reason, 'client_left');
      await log.ended; // the stream ends with the session
      const stored = await fetch(`${server.url}/v1/sessions/${sessionBefore}`, { headers: { authorization: `Bearer ${token}` } });
      const record = (await stored.json()) as { state: string; closeReason: string; turns: unknown[] };
      assert.equal(record.state, 'disconnected');
      assert.equal(record.closeReason, 'client_left');
      assert.equal(record.turns.length, 2, 'history kept after the call');
    } finally {
      log.stop();
      await client.close().catch(() => undefined);
    }
  });

  it('the example integration (npm run sip-example) holds a call end to end', async () => {
    const token = await mintTestToken({ identity: testIdentity('example'), grants: BRIDGE_GRANTS });
    const args = ['--import', 'tsx', 'client/whip/example.ts', '--token', token, '--server', server.url, '--host', '127.0.0.1', '--restart', '--say', 'goodbye for now'];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, output);
    for (const step of ['joined', 'event turn', 'ICE restarted', 'announcement played', 'event closed', 'hung up']) {
      assert.ok(output.includes(step), `the example printed "${step}":\n${output}`);
    }
  });

  it('in a shared room: hears the room agent, asks it to speak to everyone, restarts ICE', async () => {
    const identity = testIdentity('bridge');
    const token = await mintTestToken({ identity, grants: BRIDGE_GRANTS });
    const host = await TestClient.connect(server.wsUrl, { room: 'lobby' });
    const client = await WhipClient.connect({ serverUrl: server.url, token, room: 'lobby', hostAddresses: LOOPBACK });
    try {
      client.startMic();
      const session = await client.session();
      assert.equal(session.room, 'lobby');
      assert.equal((session.participants as unknown[]).length, 2);
      // `say` on the bridge's own session: the room's agent (hosted by the first participant) speaks to everyone.
      const announced = host.next((m) => m.type === 'transcript' && m.role === 'agent' && m.final, 10_000);
      const before = client.received.length;
      await client.say('welcome to the lobby');
      assert.equal((await announced as { text: string }).text, 'welcome to the lobby');
      assert.ok(await waitFor(() => client.received.length - before >= 25, 10_000), 'the bridge heard the announcement');
      // No forwarded tracks are ever prepared for it, so nothing stands in the way of a restart.
      await client.restartIce();
      const after = client.received.length;
      await client.say('still here');
      assert.ok(await waitFor(() => client.received.length - after >= 25, 10_000), 'audio after the restart');
    } finally {
      await client.close().catch(() => undefined);
      await host.close();
    }
  });

  it('answers every error with its status and code', async () => {
    const identity = testIdentity('bridge');
    const token = await mintTestToken({ identity, grants: BRIDGE_GRANTS });
    const stranger = await mintTestToken({ identity: testIdentity('other'), grants: BRIDGE_GRANTS });
    const noSip = await mintTestToken({ identity, grants: ['join', 'publish', 'subscribe', 'agent'] });
    const noAgent = await mintTestToken({ identity, grants: ['join', 'publish', 'subscribe', 'sip'] });
    const offer = await plainOffer();
    const call = async (method: string, path: string, init: { token?: string | null; type?: string; body?: string; headers?: Record<string, string> } = {}) => {
      const headers: Record<string, string> = { ...(init.headers ?? {}) };
      if (init.token !== null) headers.authorization = `Bearer ${init.token ?? token}`;
      if (init.type) headers['content-type'] = init.type;
      const response = await fetch(`${server.url}${path}`, { method, headers, ...(init.body !== undefined ? { body: init.body } : {}) });
      const text = await response.text();
      let code: string | null = null;
      try { code = (JSON.parse(text) as { code?: string }).code ?? null; } catch { /* not JSON */ }
      return { status: response.status, code, headers: response.headers };
    };
    const sdp = (body: string, extra: { token?: string | null; query?: string } = {}) =>
      call('POST', `/v1/whip${extra.query ?? ''}`, { type: 'application/sdp', body, token: extra.token });

    // Creating a session.
    const missing = await sdp(offer, { token: null });
    assert.deepEqual([missing.status, missing.code], [401, 'AUTH_ERR_MISSING']);
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer /);
    assert.deepEqual(Object.values(await sdp(offer, { token: noSip })).slice(0, 2), [403, 'AUTH_ERR_MISSING_GRANT']);
    assert.deepEqual(Object.values(await call('POST', '/v1/whip', { type: 'application/json', body: '{}' })).slice(0, 2), [415, 'HTTP_ERR_UNSUPPORTED_MEDIA_TYPE']);
    assert.deepEqual(Object.values(await sdp('v=0\r\nnot sdp\r\n')).slice(0, 2), [400, 'SIG_ERR_BAD_SDP']);
    assert.deepEqual(Object.values(await sdp(offer, { query: '?mode=karaoke' })).slice(0, 2), [400, 'SIG_ERR_UNSUPPORTED_MODE']);
    assert.deepEqual(Object.values(await sdp(offer, { query: '?room=no%20spaces' })).slice(0, 2), [400, 'SIG_ERR_BAD_MESSAGE']);
    assert.deepEqual(Object.values(await sdp(`${offer}${'a=x-padding\r\n'.repeat(500)}`)).slice(0, 2), [413, 'SIG_ERR_SDP_TOO_LARGE']);

    // A live session to PATCH, read and DELETE; echo mode (no agent), named by the token's `mode` claim.
    const echoToken = await mintTestToken({ identity, grants: BRIDGE_GRANTS, mode: 'echo' });
    const client = await WhipClient.connect({ serverUrl: server.url, token: echoToken, hostAddresses: LOOPBACK, trickle: false });
    try {
      assert.equal((await client.session()).mode, 'echo', 'the mode came from the token');
      const path = `/v1/whip/${client.sessionId}`;
      const frag = (body: string, headers: Record<string, string>, as = token) => call('PATCH', path, { type: 'application/trickle-ice-sdpfrag', body, headers, token: as });
      const candidate = 'a=ice-ufrag:zzzz\r\na=ice-pwd:zzzzzzzzzzzzzzzzzzzzzzzz\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n';
      const trickleOnly = 'a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n';
      assert.deepEqual(Object.values(await frag(trickleOnly, {})).slice(0, 2), [428, 'HTTP_ERR_PRECONDITION_REQUIRED']);
      assert.deepEqual(Object.values(await frag(trickleOnly, { 'if-match': '"stale"' })).slice(0, 2), [412, 'HTTP_ERR_PRECONDITION_FAILED']);
      assert.deepEqual(Object.values(await frag(candidate, { 'if-match': client.etag })).slice(0, 2), [412, 'HTTP_ERR_PRECONDITION_FAILED'], 'new credentials need If-Match: "*"');
      assert.deepEqual(Object.values(await frag('x=not a fragment line\r\n', { 'if-match': client.etag })).slice(0, 2), [400, 'SIG_ERR_BAD_SDP']);
      assert.deepEqual(Object.values(await frag('a=candidate:garbage\r\n', { 'if-match': client.etag })).slice(0, 2), [400, 'SIG_ERR_BAD_SDP']);
      assert.deepEqual(Object.values(await frag(trickleOnly, { 'if-match': client.etag }, stranger)).slice(0, 2), [404, 'SESSION_ERR_NOT_FOUND'], "another identity's session");
      assert.deepEqual(Object.values(await call('PATCH', path, { type: 'application/sdp', body: offer, headers: { 'if-match': client.etag } })).slice(0, 2), [415, 'HTTP_ERR_UNSUPPORTED_MEDIA_TYPE']);
      assert.equal((await frag(trickleOnly, { 'if-match': client.etag })).status, 204, 'a candidate under the current ETag');
      assert.equal((await frag(trickleOnly, { 'if-match': '"*"' })).status, 204, 'the wildcard, also as RFC 9725 quotes it');
      assert.deepEqual(Object.values(await call('PATCH', '/v1/whip/no-such-session', { type: 'application/trickle-ice-sdpfrag', body: trickleOnly, headers: { 'if-match': '*' } })).slice(0, 2), [404, 'SESSION_ERR_NOT_FOUND']);

      // The session API.
      const api = `/v1/sessions/${client.sessionId}`;
      assert.deepEqual(Object.values(await call('GET', api, { token: stranger })).slice(0, 2), [404, 'SESSION_ERR_NOT_FOUND']);
      assert.deepEqual(Object.values(await call('GET', `${api}/events`, { token: stranger })).slice(0, 2), [404, 'SESSION_ERR_NOT_FOUND']);
      assert.deepEqual(Object.values(await call('POST', `${api}/say`, { type: 'application/json', body: JSON.stringify({ text: 'hi' }), token: noAgent })).slice(0, 2), [403, 'AUTH_ERR_MISSING_GRANT']);
      assert.deepEqual(Object.values(await call('POST', `${api}/say`, { type: 'application/json', body: JSON.stringify({ text: 'hi' }) })).slice(0, 2), [409, 'SESSION_ERR_NO_AGENT']);
      assert.deepEqual(Object.values(await call('POST', `${api}/say`, { type: 'application/json', body: JSON.stringify({ text: '' }) })).slice(0, 2), [400, 'SIG_ERR_BAD_MESSAGE']);
      assert.deepEqual(Object.values(await call('POST', `${api}/say`, { type: 'application/json', body: '{"text": ' })).slice(0, 2), [400, 'SIG_ERR_BAD_JSON']);
      assert.deepEqual(Object.values(await call('POST', `${api}/say`, { type: 'application/json', body: JSON.stringify({ text: 'x'.repeat(5000) }) })).slice(0, 2), [400, 'SIG_ERR_BAD_MESSAGE']);
      const streams = Array.from({ length: MAX_EVENT_STREAMS }, () => new AbortController());
      const open = await Promise.all(streams.map((c) => fetch(`${server.url}${api}/events`, { headers: { authorization: `Bearer ${token}` }, signal: c.signal })));
      assert.deepEqual(open.map((r) => r.status), streams.map(() => 200));
      assert.deepEqual(Object.values(await call('GET', `${api}/events`)).slice(0, 2), [429, 'SESSION_ERR_TOO_MANY_STREAMS']);
      for (const c of streams) c.abort();

      // Ending it.
      assert.deepEqual(Object.values(await call('DELETE', path, { token: stranger })).slice(0, 2), [404, 'SESSION_ERR_NOT_FOUND']);
      assert.equal((await call('DELETE', path)).status, 200);
      assert.deepEqual(Object.values(await call('DELETE', path)).slice(0, 2), [404, 'SESSION_ERR_NOT_FOUND'], 'only once');
    } finally {
      await client.pc.close().catch(() => undefined);
    }
    await assert.rejects(
      WhipClient.connect({ serverUrl: server.url, token: noSip, hostAddresses: LOOPBACK }),
      (error: unknown) => error instanceof WhipError && error.status === 403 && error.code === 'AUTH_ERR_MISSING_GRANT',
    );
  });
});

/** Polls a condition on the event loop (no fixed sleep); false when it does not hold in time. */
async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

describe('WHIP: a session whose media never connects', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ SESSION_RECONNECT_WINDOW_MS: '400' });
  });
  after(async () => {
    await server?.close();
  });

  it('is ended after the reconnect window (media_never_connected)', async () => {
    const token = await mintTestToken({ identity: testIdentity('bridge'), grants: BRIDGE_GRANTS });
    const closed = new Promise<[{ id: string }, string]>((resolve) => server.sessions.once('sessionclosed', (session, reason) => resolve([session, reason])));
    const response = await fetch(`${server.url}/v1/whip`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/sdp' }, body: await plainOffer() });
    assert.equal(response.status, 201);
    const id = response.headers.get('location')!.split('/').at(-1);
    const [session, reason] = await closed;
    assert.equal(session.id, id);
    assert.equal(reason, 'media_never_connected');
  });
});
