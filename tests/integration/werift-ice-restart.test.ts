// Regression test for werift <-> werift ICE restart (see patches/README.md).
//
// Two werift peers in one process, loopback only, signaling by direct calls with the candidates in
// the SDP. Both send RTP every 20 ms and count what they receive. Then one of them restarts ICE.
// Unpatched werift 0.24.4 never runs connectivity checks after the restart (both agents wait for the
// other one to check) and media stops for good; with patches/werift+0.24.4.patch checks run, a new
// pair is selected and media flows again over the same DTLS/SRTP session.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  type RTCDtlsTransport,
  type RTCRtpTransceiver,
} from 'werift';

const DEADLINE_MS = 5_000;

/** The parts of werift's ICE agent (`Connection`) the test inspects. Not in werift's public types. */
interface IceAgent {
  localUsername: string;
  remoteUsername: string;
  generation: number;
  stunServer?: unknown;
  nominated?: { id: string; requestsSent: number; responsesReceived: number; requestsReceived: number };
}

const agentOf = (peer: Peer): IceAgent => peer.pc.iceTransports[0]!.connection as unknown as IceAgent;

/** Resolves when `check()` holds, re-evaluated whenever `subscribe` reports a change; rejects at the deadline. */
function until(what: string, check: () => boolean, subscribe: (wake: () => void) => () => void, timeoutMs = DEADLINE_MS): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let unsubscribe = (): void => undefined;
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    unsubscribe = subscribe(() => {
      if (!check()) return;
      clearTimeout(timer);
      unsubscribe();
      resolve();
    });
  });
}

class Peer {
  readonly pc: RTCPeerConnection;
  readonly transceiver: RTCRtpTransceiver;
  /** Packets sent; each payload carries its index so the receiver can tell pre- from post-restart packets. */
  sent = 0;
  received = 0;
  /** Highest payload index received. */
  lastIndex = -1;
  readonly receivedSsrcs = new Set<number>();
  readonly iceStates: string[] = [];
  /** performance.now() of each entry in iceStates. */
  readonly iceStateTimes: number[] = [];
  readonly dtlsStates: string[] = [];
  #listeners = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;
  #seq = 1000;
  #ts = 123456;

  constructor(readonly name: string) {
    this.pc = new RTCPeerConnection({
      iceServers: [],
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ['127.0.0.1'],
      codecs: {
        audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })],
        video: [],
      },
    });
    this.transceiver = this.pc.addTransceiver('audio', { direction: 'sendrecv' });
    const subscribed = new WeakSet<object>();
    this.pc.onTrack.subscribe((track) => {
      if (subscribed.has(track)) return; // onTrack fires again on every renegotiation
      subscribed.add(track);
      track.onReceiveRtp.subscribe((rtp) => {
        this.received++;
        this.receivedSsrcs.add(rtp.header.ssrc);
        this.lastIndex = Math.max(this.lastIndex, rtp.payload.readUInt32BE(0));
        this.#notify();
      });
    });
    this.pc.iceTransports[0]!.onStateChange.subscribe((state) => {
      this.iceStates.push(state);
      this.iceStateTimes.push(performance.now());
      this.#notify();
    });
  }

  get dtls(): RTCDtlsTransport {
    return this.pc.dtlsTransports[0]!;
  }

  watchDtls(): void {
    this.dtls.onStateChange.subscribe((state) => this.dtlsStates.push(state));
  }

  /** Wakes `until()` waiters on every received packet and ICE state change. */
  onChange(wake: () => void): () => void {
    this.#listeners.add(wake);
    return () => this.#listeners.delete(wake);
  }

  #notify(): void {
    for (const wake of [...this.#listeners]) wake();
  }

  startSending(): void {
    this.#timer = setInterval(() => {
      const payload = Buffer.alloc(40);
      payload.writeUInt32BE(this.sent++, 0);
      const header = new RtpHeader({ payloadType: 111, sequenceNumber: this.#seq, timestamp: this.#ts });
      this.#seq = (this.#seq + 1) & 0xffff;
      this.#ts = (this.#ts + 960) >>> 0;
      void this.transceiver.sender.sendRtp(new RtpPacket(header, payload)).catch(() => undefined);
    }, 20);
  }

  /** No network here: werift would otherwise query a public STUN server and stall gathering. */
  disableStun(): void {
    for (const t of this.pc.iceTransports) (t.connection as unknown as IceAgent).stunServer = undefined;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.pc.close().catch(() => undefined);
  }
}

/** One offer/answer round with the candidates in the SDP (werift gathers during setLocalDescription). */
/** Resolves with the time the offer was handed to the answerer. */
async function negotiate(offerer: Peer, answerer: Peer, iceRestart = false): Promise<number> {
  if (iceRestart) offerer.pc.restartIce();
  const offer = await offerer.pc.createOffer();
  offerer.disableStun();
  await offerer.pc.setLocalDescription(offer);
  const offerSentAt = performance.now();
  await answerer.pc.setRemoteDescription(offerer.pc.localDescription!);
  answerer.disableStun();
  const answer = await answerer.pc.createAnswer();
  await answerer.pc.setLocalDescription(answer);
  await offerer.pc.setRemoteDescription(answerer.pc.localDescription!);
  return offerSentAt;
}

/** Two connected peers exchanging media; `cleanup` receives them at once so a failure still closes them. */
async function connectedPair(cleanup: Peer[]): Promise<[Peer, Peer]> {
  const a = new Peer('A');
  const b = new Peer('B');
  cleanup.push(a, b);
  const connected = (p: Peer) =>
    p.pc.connectionState === 'connected' ? Promise.resolve() : p.pc.connectionStateChange.watch((s) => s === 'connected', DEADLINE_MS);
  await negotiate(a, b);
  await Promise.all([connected(a), connected(b)]);
  a.watchDtls();
  b.watchDtls();
  a.startSending();
  b.startSending();
  await waitForMedia(a, b, 'initial media');
  return [a, b];
}

/** Waits until each peer receives a packet its partner sent at or after index `since*`. */
async function waitForMedia(a: Peer, b: Peer, what: string, sinceA = 0, sinceB = 0): Promise<void> {
  // a receives what b sent, and vice versa.
  await Promise.all([
    until(`${what}: B -> A`, () => a.lastIndex >= sinceB, (w) => a.onChange(w)),
    until(`${what}: A -> B`, () => b.lastIndex >= sinceA, (w) => b.onChange(w)),
  ]);
}

interface RestartResult {
  /** From restartIce() until media sent after it has arrived in both directions. */
  mediaMs: number;
  /** From the moment the restart offer is out (after its setLocalDescription) until the same. */
  mediaAfterOfferMs: number;
  /** From restartIce() until both ICE transports report "connected" again. */
  iceMs: number;
}

/**
 * `initiator` restarts ICE (it is the offerer of this round) and the test checks that connectivity checks
 * ran again, media flows both ways, and DTLS and SSRCs were left alone.
 */
async function restartAndVerify(initiator: Peer, other: Peer): Promise<RestartResult> {
  const [a, b] = initiator.name === 'A' ? [initiator, other] : [other, initiator];
  const before = {
    dtlsA: a.dtls,
    dtlsB: b.dtls,
    ssrcA: a.transceiver.sender.ssrc,
    ssrcB: b.transceiver.sender.ssrc,
    pairA: agentOf(a).nominated,
    pairB: agentOf(b).nominated,
    ufragA: agentOf(a).localUsername,
    ufragB: agentOf(b).localUsername,
    generationA: agentOf(a).generation,
    generationB: agentOf(b).generation,
    iceStatesA: a.iceStates.length,
    iceStatesB: b.iceStates.length,
  };
  assert.ok(before.pairA && before.pairB, 'both agents have a selected pair before the restart');

  const t0 = performance.now();
  // Index of the first packet each side sends after the restart begins.
  const sinceA = a.sent;
  const sinceB = b.sent;
  const offerSentAt = await negotiate(initiator, other, true);

  // ICE reports "connected" again (it went through "new" during negotiate()), and media flows both
  // ways. Media may flow as soon as a pair is nominated, up to a scheduling tick before "connected".
  const connectedAgain = (p: Peer, count: number) => () => p.iceStates.slice(count).includes('connected');
  const [, , mediaAt] = await Promise.all([
    until('A: ICE connected again', connectedAgain(a, before.iceStatesA), (w) => a.onChange(w)),
    until('B: ICE connected again', connectedAgain(b, before.iceStatesB), (w) => b.onChange(w)),
    waitForMedia(a, b, 'media after the restart', sinceA, sinceB).then(() => performance.now()),
  ]);
  const connectedAt = (p: Peer, count: number) => p.iceStateTimes[count + p.iceStates.slice(count).indexOf('connected')]!;
  const iceMs = Math.max(connectedAt(a, before.iceStatesA), connectedAt(b, before.iceStatesB)) - t0;
  const mediaMs = mediaAt - t0;
  const mediaAfterOfferMs = mediaAt - offerSentAt;

  for (const [p, ufragBefore, generationBefore, partner, stateCount] of [
    [a, before.ufragA, before.generationA, b, before.iceStatesA],
    [b, before.ufragB, before.generationB, a, before.iceStatesB],
  ] as const) {
    const agent = agentOf(p);
    assert.notEqual(agent.localUsername, ufragBefore, `${p.name}: new local ufrag`);
    assert.equal(agent.generation, generationBefore + 1, `${p.name}: one new ICE generation`);
    assert.equal(agent.remoteUsername, agentOf(partner).localUsername, `${p.name}: uses the partner's new ufrag`);
    // (a) connectivity checks really ran again: a new pair, nominated by checks under the new credentials.
    const pair = agent.nominated;
    assert.ok(pair, `${p.name}: a selected pair`);
    assert.notEqual(pair, p === a ? before.pairA : before.pairB, `${p.name}: a new selected pair`);
    assert.equal(p.pc.iceTransports[0]!.state, 'connected', `${p.name}: ICE connected`);
    assert.ok(pair.requestsSent > 0 || pair.requestsReceived > 0, `${p.name}: STUN checks on the new pair`);
    assert.ok(pair.responsesReceived > 0, `${p.name}: a check on the new pair succeeded (got a response)`);
    const states = p.iceStates.slice(stateCount);
    assert.ok(states.includes('checking'), `${p.name}: ICE went through "checking" again (saw ${states.join(' -> ')})`);
  }

  // (b) RTP flows again in both directions: the counters keep growing.
  const counts = { a: a.received, b: b.received };
  await Promise.all([
    until('A keeps receiving', () => a.received >= counts.a + 10, (w) => a.onChange(w)),
    until('B keeps receiving', () => b.received >= counts.b + 10, (w) => b.onChange(w)),
  ]);

  // (c) no DTLS re-handshake, same SSRCs.
  assert.equal(a.dtls, before.dtlsA, 'A keeps its DTLS transport');
  assert.equal(b.dtls, before.dtlsB, 'B keeps its DTLS transport');
  assert.deepEqual(a.dtlsStates, [], 'A: DTLS state never changed');
  assert.deepEqual(b.dtlsStates, [], 'B: DTLS state never changed');
  assert.equal(a.dtls.state, 'connected');
  assert.equal(b.dtls.state, 'connected');
  assert.equal(a.transceiver.sender.ssrc, before.ssrcA, 'A: same sender SSRC');
  assert.equal(b.transceiver.sender.ssrc, before.ssrcB, 'B: same sender SSRC');
  assert.deepEqual([...a.receivedSsrcs], [before.ssrcB], 'A only ever received B\'s SSRC');
  assert.deepEqual([...b.receivedSsrcs], [before.ssrcA], 'B only ever received A\'s SSRC');
  assert.equal(a.pc.connectionState, 'connected');
  assert.equal(b.pc.connectionState, 'connected');
  return { mediaMs, mediaAfterOfferMs, iceMs };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

describe('werift <-> werift ICE restart (loopback)', () => {
  const peers: Peer[] = [];
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  it('restart initiated by the original offerer: checks run again, media flows both ways, DTLS kept', async () => {
    const [a, b] = await connectedPair(peers);
    await restartAndVerify(a, b);
  });

  it('restart initiated by the original answerer (it sends the restart offer)', async () => {
    const [a, b] = await connectedPair(peers);
    await restartAndVerify(b, a);
  });

  it('five restarts in a row, alternating initiators; reports restart -> media time', async (t) => {
    const [a, b] = await connectedPair(peers);
    const results: RestartResult[] = [];
    for (let i = 0; i < 5; i++) {
      results.push(await restartAndVerify(i % 2 === 0 ? a : b, i % 2 === 0 ? b : a));
    }
    const media = results.map((r) => r.mediaMs);
    const ice = results.map((r) => r.iceMs);
    const offered = results.map((r) => r.mediaAfterOfferMs);
    t.diagnostic(`restartIce() -> ICE "connected" on both sides (ms): ${ice.map((x) => x.toFixed(1)).join(', ')}; p50 ${median(ice).toFixed(1)}`);
    t.diagnostic(`restartIce() -> media both ways (ms): ${media.map((x) => x.toFixed(1)).join(', ')}; p50 ${median(media).toFixed(1)}`);
    t.diagnostic(`restart offer out -> media both ways (ms): ${offered.map((x) => x.toFixed(1)).join(', ')}; p50 ${median(offered).toFixed(1)}`);
  });
});
