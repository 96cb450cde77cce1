// A real client for tests and the benchmark: a WebSocket speaking the signaling protocol and a
// werift peer connection on loopback that sends paced Opus and records what it receives.
import WebSocket from 'ws';
import { RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket, type RTCRtpTransceiver } from 'werift';
import type { ServerMessage } from '../../signaling/protocol.ts';
import type { ConversationTurn } from '../../server/session-types.ts';
import { silencePacket } from './audio.ts';
import { mintTestToken, testIdentity } from './auth.ts';
import { disablePublicStun } from '../../client/whip/whip-client.ts';

const SILENCE = silencePacket();

export interface ReceivedPacket {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  payload: Uint8Array;
  at: number;
}

type Predicate = (m: ServerMessage) => boolean;

const LOOPBACK_DELAY_MS = 40;
const LOOPBACK_MAX_QUEUE = 10;

export interface TestClientOptions {
  /** Applied to every candidate and SDP the server sends (e.g. to route media through a relay). */
  rewriteRemote?: (text: string) => string | Promise<string>;
  /**
   * Send the server none of our candidates (neither trickled nor in the SDP): it then learns our
   * address only from connectivity checks that reach it, i.e. through a relay.
   */
  hideLocalCandidates?: boolean;
  /**
   * Maps our candidates before the server sees them (e.g. to the relay's upstream address). They are
   * then kept out of the SDP and trickled once the server's description is applied.
   */
  rewriteLocal?: (candidateLine: string) => Promise<string>;
  /** Leave server offers to the test (answerServerOffer) instead of answering them at once. */
  manualOffers?: boolean;
  /**
   * A device without echo cancellation: what the client receives comes back on its microphone
   * (the received Opus frames are sent on, mixed over nothing; queued speech still goes first).
   */
  loopback?: boolean;
  /** Who the client is: the identity its access tokens name (default: a fresh one per client). */
  identity?: string;
  /**
   * The access token sent as `Authorization: Bearer` on each WebSocket upgrade: fixed, minted by a
   * function, or null for none. Default: minted for `identity` with the test secret (tests/helpers/auth.ts).
   */
  token?: string | null | (() => Promise<string>);
}

export class TestClient {
  ws: WebSocket;
  readonly url: string;
  readonly options: TestClientOptions;
  readonly identity: string;
  readonly messages: ServerMessage[] = [];
  /** What arrives on the session's own track (the agent's answer, the echo). */
  readonly received: ReceivedPacket[] = [];
  /** Rooms: what arrives on each further m-line (mid), one per remote participant (see `tracks` messages). */
  readonly receivedByMid = new Map<string, ReceivedPacket[]>();
  /** Server offers answered so far (rooms renegotiate with them). */
  serverOffersAnswered = 0;
  #answerWaiters: { count: number; resolve: () => void }[] = [];
  pc: RTCPeerConnection | null = null;
  #transceiver: RTCRtpTransceiver | null = null;
  #waiters: { predicate: Predicate; resolve: (m: ServerMessage) => void }[] = [];
  #closeWaiters: ((info: { code: number; reason: string }) => void)[] = [];
  closeInfo: { code: number; reason: string } | null = null;
  #seq = Math.floor(Math.random() * 65535);
  #ts = Math.floor(Math.random() * 0xffffffff);
  #pendingCandidates: unknown[] = [];
  #signaling: Promise<unknown> = Promise.resolve();
  #offerSent = false;
  #outbound: unknown[] = [];

  private constructor(ws: WebSocket, url: string, options: TestClientOptions, identity: string) {
    this.ws = ws;
    this.url = url;
    this.options = options;
    this.identity = identity;
    this.#bind(ws);
  }

  #bind(ws: WebSocket): void {
    ws.on('message', (data) => {
      if (ws !== this.ws) return;
      const message = JSON.parse(String(data)) as ServerMessage;
      this.messages.push(message);
      void this.#onMessage(message);
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.predicate(message)) return true;
        w.resolve(message);
        return false;
      });
    });
    ws.on('close', (code, reason) => {
      if (ws !== this.ws) return;
      this.closeInfo = { code, reason: String(reason) };
      for (const resolve of this.#closeWaiters) resolve(this.closeInfo);
      this.#closeWaiters = [];
    });
  }

  static async open(url: string, options: TestClientOptions = {}): Promise<TestClient> {
    const identity = options.identity ?? testIdentity();
    return new TestClient(await openSocket(url, await accessToken(options, identity)), url, options, identity);
  }

  /** A token as this client presents it (see TestClientOptions.token); a fresh one each call. */
  accessToken(): Promise<string | null> {
    return accessToken(this.options, this.identity);
  }

  /**
   * Opens, joins and negotiates media; resolves once the session is listening. Like a browser, the
   * client then sends audio continuously: silence, or what `speak()` queues.
   */
  static async connect(url: string, join: { room?: string; mode?: string } = {}, options: { mic?: boolean } & TestClientOptions = {}): Promise<TestClient> {
    const client = await TestClient.open(url, options);
    await client.join(join);
    await client.negotiate();
    await client.waitFor((m) => m.type === 'state' && m.state === 'listening');
    if (options.mic !== false) client.startMic();
    return client;
  }

  #mic: NodeJS.Timeout | null = null;
  #speech: { packets: Uint8Array[]; next: number; skip?: (index: number) => boolean; done: () => void }[] = [];
  /** loopback: received frames and when they arrived (the "speaker" plays each LOOPBACK_DELAY_MS later). */
  #loopback: { at: number; payload: Uint8Array }[] = [];
  /** When set, the microphone stops sending (muted track, or a sender that went away). */
  micPaused = false;

  // Like a device whose microphone hears its speaker: received frames queue for playout (a device's
  // jitter buffer) and each plays LOOPBACK_DELAY_MS after it arrived at the earliest, one per 20 ms
  // microphone tick, in order; the microphone captures the frame playing. Like a device, the queue
  // is kept short: beyond LOOPBACK_MAX_QUEUE frames the oldest are dropped (latency control).
  #echoAt(t: number): Uint8Array | undefined {
    while (this.#loopback.length > LOOPBACK_MAX_QUEUE) this.#loopback.shift();
    const head = this.#loopback[0];
    if (!head || head.at + LOOPBACK_DELAY_MS > t) return undefined;
    this.#loopback.shift();
    return head.payload;
  }

  /** Sends a 20 ms frame every 20 ms (drift-free): queued speech, else silence. */
  startMic(): void {
    if (this.#mic) return;
    const start = performance.now();
    let tick = 0;
    const step = () => {
      tick++;
      const current = this.#speech[0];
      if (!this.micPaused) {
        if (current) {
          if (current.skip?.(current.next)) this.skipFrame();
          else this.sendFrame(current.packets[current.next]!, current.next === 0);
          if (++current.next >= current.packets.length) {
            this.#speech.shift();
            current.done();
          }
        } else {
          this.sendFrame(this.#echoAt(performance.now()) ?? SILENCE);
        }
      }
      this.#mic = setTimeout(step, Math.max(0, start + tick * 20 - performance.now()));
    };
    this.#mic = setTimeout(step, 20);
  }

  stopMic(): void {
    if (this.#mic) clearTimeout(this.#mic);
    this.#mic = null;
  }

  /**
   * Queues speech on the running microphone; resolves when its last frame was sent. `skip` marks
   * frames that are lost on the way (their sequence numbers are used, nothing is sent).
   */
  speak(packets: Uint8Array[], skip?: (index: number) => boolean): Promise<void> {
    if (!this.#mic) return Promise.reject(new Error('the microphone is not running: call startMic()'));
    return new Promise((done) => this.#speech.push({ packets, next: 0, skip, done }));
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  waitFor<T extends ServerMessage = ServerMessage>(predicate: Predicate, timeoutMs = 10_000): Promise<T> {
    const seen = this.messages.find(predicate);
    if (seen) return Promise.resolve(seen as T);
    return this.next<T>(predicate, timeoutMs);
  }

  /** Waits for a matching message that has not arrived yet. */
  next<T extends ServerMessage = ServerMessage>(predicate: Predicate, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a message; got ${JSON.stringify(this.messages.slice(-5))}`)), timeoutMs);
      this.#waiters.push({ predicate, resolve: (m) => { clearTimeout(timer); resolve(m as T); } });
    });
  }

  /** Sends a message and waits for the next `error` the server answers with. */
  async expectError(message: unknown): Promise<Extract<ServerMessage, { type: 'error' }>> {
    const reply = this.next<Extract<ServerMessage, { type: 'error' }>>((m) => m.type === 'error');
    this.send(message);
    return reply;
  }

  waitClose(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
      this.#closeWaiters.push((info) => { clearTimeout(timer); resolve(info); });
    });
  }

  async join(join: { room?: string; mode?: string } = {}): Promise<Extract<ServerMessage, { type: 'joined' }>> {
    const reply = this.next<Extract<ServerMessage, { type: 'joined' }>>((m) => m.type === 'joined' || m.type === 'error');
    this.send({ type: 'join', ...join });
    const message = await reply;
    if (message.type !== 'joined') throw new Error(`join refused: ${JSON.stringify(message)}`);
    return message;
  }

  get sessionId(): string {
    const joined = this.messages.find((m) => m.type === 'joined');
    if (!joined || joined.type !== 'joined') throw new Error('not joined');
    return joined.sessionId;
  }

  /** The latest resume token (from `joined`, then each `resumed`). */
  get resumeToken(): string {
    const last = [...this.messages].reverse().find((m) => m.type === 'joined' || m.type === 'resumed');
    if (!last || (last.type !== 'joined' && last.type !== 'resumed')) throw new Error('not joined');
    return last.resumeToken;
  }

  /** Turns seen so far (live and missed ones delivered on resume), each index once, in order. */
  turns(): ConversationTurn[] {
    const byIndex = new Map<number, ConversationTurn>();
    for (const m of this.messages) {
      if (m.type === 'turn') byIndex.set(m.turn.index, m.turn);
      if (m.type === 'resumed') for (const t of m.missedTurns) byIndex.set(t.index, t);
    }
    return [...byIndex.values()].sort((a, b) => a.index - b.index);
  }

  /**
   * Reconnects over a new WebSocket and resumes the session. `media: 'new'` replaces the peer
   * connection too (a restarted app) and negotiates it afresh.
   */
  async resume(media: 'keep' | 'new' = 'keep', options: { token?: string; keepOldSocket?: boolean } = {}): Promise<Extract<ServerMessage, { type: 'resumed' }>> {
    const token = options.token ?? this.resumeToken;
    const lastTurnIndex = this.turns().at(-1)?.index ?? -1;
    const sessionId = this.sessionId;
    if (!options.keepOldSocket && this.ws.readyState === WebSocket.OPEN) this.ws.terminate();
    this.ws = await openSocket(this.url, await this.accessToken());
    this.closeInfo = null;
    this.#bind(this.ws);
    const reply = this.next((m) => m.type === 'resumed' || m.type === 'error');
    this.send({ type: 'resume', sessionId, resumeToken: token, lastTurnIndex, media });
    const message = await reply;
    if (message.type !== 'resumed') throw Object.assign(new Error(`resume refused: ${JSON.stringify(message)}`), { reply: message });
    if (media === 'new') {
      const micWasOn = this.#mic !== null;
      this.stopMic();
      await this.pc?.close().catch(() => undefined);
      await this.negotiate();
      if (micWasOn) this.startMic();
    }
    return message;
  }

  /** Client-initiated ICE restart on the existing peer connection; resolves when answered. */
  async restartIce(): Promise<void> {
    const pc = this.pc;
    if (!pc) throw new Error('not negotiated');
    await this.#serialized(async () => {
      const answer = this.next((m) => m.type === 'answer' || (m.type === 'error' && m.code === 'SIG_ERR_GLARE'));
      pc.restartIce();
      const offer = await pc.createOffer();
      disablePublicStun(pc);
      await pc.setLocalDescription(offer);
      this.send({ type: 'offer', sdp: this.#local(pc.localDescription!.sdp) });
      const message = await answer;
      if (message.type === 'answer') {
        await pc.setRemoteDescription({ type: 'answer', sdp: await this.#remote(message.sdp) });
        await this.#trickleMapped(pc);
      }
    });
  }

  /** Creates the peer (loopback only, no STUN), offers, trickles, and waits for ICE+DTLS. */
  async negotiate(): Promise<void> {
    const pc = new RTCPeerConnection({
      iceServers: [],
      iceUseIpv4: false,
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ['127.0.0.1'],
      codecs: {
        audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })],
        video: [],
      },
    });
    this.pc = pc;
    this.#transceiver = pc.addTransceiver('audio', { direction: 'sendrecv' });
    // The track event fires again for the same track on each renegotiation: subscribe once.
    const subscribed = new WeakSet<object>();
    pc.ontrack = ({ track, transceiver }) => {
      if (subscribed.has(track)) return;
      subscribed.add(track);
      const own = transceiver === this.#transceiver;
      track.onReceiveRtp.subscribe((rtp) => {
        const packet = {
          sequenceNumber: rtp.header.sequenceNumber,
          timestamp: rtp.header.timestamp,
          marker: rtp.header.marker,
          payload: new Uint8Array(rtp.payload),
          at: performance.now(),
        };
        if (!own) {
          const mid = transceiver.mid ?? '?';
          (this.receivedByMid.get(mid) ?? this.receivedByMid.set(mid, []).get(mid)!).push(packet);
          return;
        }
        this.received.push(packet);
        if (this.options.loopback) this.#loopback.push({ at: performance.now(), payload: new Uint8Array(rtp.payload) });
      });
    };
    // werift fires candidates during setLocalDescription, before the offer is out: hold them until then.
    this.#offerSent = false;
    this.#outbound = [];
    pc.onIceCandidate.subscribe((c) => {
      // Hidden candidates include the end-of-candidates marker: after it, werift gives up on a
      // check list that only incoming (peer-reflexive) checks could fill.
      if (pc !== this.pc || this.options.hideLocalCandidates || this.options.rewriteLocal) return;
      const message = { type: 'candidate', candidate: c ? { candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null } : null };
      if (this.#offerSent) this.send(message);
      else this.#outbound.push(message);
    });
    const offer = await pc.createOffer();
    disablePublicStun(pc);
    const answer = this.next((m) => m.type === 'answer');
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: this.#local(pc.localDescription!.sdp) });
    this.#offerSent = true;
    for (const message of this.#outbound.splice(0)) this.send(message);
    const message = await answer;
    if (message.type !== 'answer') throw new Error('no answer');
    await pc.setRemoteDescription({ type: 'answer', sdp: await this.#remote(message.sdp) });
    await this.#trickleMapped(pc);
    for (const c of this.#pendingCandidates.splice(0)) await pc.addIceCandidate(c as never).catch(() => undefined);
    if (pc.connectionState !== 'connected') await pc.connectionStateChange.watch((s) => s === 'connected', 10_000);
  }

  async #onMessage(message: ServerMessage): Promise<void> {
    const pc = this.pc;
    if (!pc) return;
    if (message.type === 'offer') {
      if (this.options.manualOffers) return;
      await this.answerServerOffer(message.sdp).catch(() => undefined);
      return;
    }
    if (message.type !== 'candidate' || !message.candidate) return;
    const candidate = { ...message.candidate, candidate: await this.#remote(message.candidate.candidate) };
    if (!pc.remoteDescription) {
      this.#pendingCandidates.push(candidate);
      return;
    }
    await this.#serialized(() => pc.addIceCandidate(candidate as never)).catch(() => undefined);
  }

  /** Sends our own offer (an ICE restart) without waiting for the reply. */
  async sendRestartOffer(): Promise<void> {
    const pc = this.pc!;
    await this.#serialized(async () => {
      pc.restartIce();
      const offer = await pc.createOffer();
      disablePublicStun(pc);
      await pc.setLocalDescription(offer);
      this.send({ type: 'offer', sdp: this.#local(pc.localDescription!.sdp) });
    });
  }

  /**
   * Answers a server offer as the polite peer: an offer of ours that crossed it is rolled back
   * first (perfect negotiation).
   */
  async answerServerOffer(sdp: string): Promise<void> {
    const pc = this.pc!;
    await this.#serialized(async () => {
      // In have-local-offer, applying the offer rolls ours back implicitly (as in browsers).
      {
        await pc.setRemoteDescription({ type: 'offer', sdp: await this.#remote(sdp) });
        const answer = await pc.createAnswer();
        disablePublicStun(pc);
        await pc.setLocalDescription(answer);
        this.send({ type: 'answer', sdp: this.#local(pc.localDescription!.sdp) });
        await this.#trickleMapped(pc);
      }
      this.serverOffersAnswered++;
      this.#answerWaiters = this.#answerWaiters.filter((w) => (w.count <= this.serverOffersAnswered ? (w.resolve(), false) : true));
    });
  }

  /** Resolves once `count` server offers have been answered in all. */
  serverOffersAnsweredReach(count: number, timeoutMs = 10_000): Promise<void> {
    if (this.serverOffersAnswered >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.serverOffersAnswered} of ${count} server offers answered`)), timeoutMs);
      this.#answerWaiters.push({ count, resolve: () => { clearTimeout(timer); resolve(); } });
    });
  }

  #serialized<T>(operation: () => Promise<T>): Promise<T> {
    const result = this.#signaling.then(operation, operation);
    this.#signaling = result.catch(() => undefined);
    return result;
  }

  async #remote(text: string): Promise<string> {
    return this.options.rewriteRemote ? this.options.rewriteRemote(text) : text;
  }

  #local(sdp: string): string {
    const hide = this.options.hideLocalCandidates || this.options.rewriteLocal;
    return hide ? sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:') && l !== 'a=end-of-candidates').join('\r\n') : sdp;
  }

  /** With rewriteLocal: trickles our current candidates, mapped, after the remote description is set. */
  async #trickleMapped(pc: RTCPeerConnection): Promise<void> {
    const rewrite = this.options.rewriteLocal;
    if (!rewrite) return;
    const lines = (pc.localDescription?.sdp ?? '').split('\r\n').filter((l) => l.startsWith('a=candidate:'));
    for (const line of lines) {
      this.send({ type: 'candidate', candidate: { candidate: await rewrite(line.slice(2)), sdpMid: '0', sdpMLineIndex: 0 } });
    }
  }


  /** Sends one Opus frame now. */
  sendFrame(payload: Uint8Array, marker = false): void {
    const sender = this.#transceiver?.sender;
    if (!sender) throw new Error('not negotiated');
    const header = new RtpHeader({ payloadType: 111, sequenceNumber: this.#seq, timestamp: this.#ts, marker });
    this.#seq = (this.#seq + 1) & 0xffff;
    this.#ts = (this.#ts + 960) >>> 0;
    void sender.sendRtp(new RtpPacket(header, Buffer.from(payload)));
  }

  /** Advances sequence number and timestamp as if a frame were sent: the server sees it as lost. */
  skipFrame(): void {
    this.#seq = (this.#seq + 1) & 0xffff;
    this.#ts = (this.#ts + 960) >>> 0;
  }

  /** Leaves the session (if joined) and closes everything. */
  async close(): Promise<void> {
    this.stopMic();
    if (this.ws.readyState === WebSocket.OPEN) {
      if (this.messages.some((m) => m.type === 'joined' || m.type === 'resumed')) this.send({ type: 'leave' });
      this.ws.close();
    }
    await this.pc?.close().catch(() => undefined);
  }

  /** Drops the socket without leaving (a network failure, as far as the server can tell). */
  dropSocket(): void {
    this.ws.terminate();
  }
}

async function accessToken(options: TestClientOptions, identity: string): Promise<string | null> {
  const { token } = options;
  if (token === undefined) return mintTestToken({ identity });
  return typeof token === 'function' ? token() : token;
}

function openSocket(url: string, token: string | null): Promise<WebSocket> {
  const ws = new WebSocket(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
