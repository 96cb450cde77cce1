// A WHIP client with a werift peer: what a Node-based SIP bridge runs per call. It creates the
// session (POST /v1/whip), trickles its candidates (PATCH with the ETag), restarts ICE when its
// network changes (PATCH with If-Match: *), follows the session's events (SSE), asks the agent
// to speak (POST /v1/sessions/:id/say) and ends the call (DELETE). Audio goes out as 20 ms Opus
// frames paced by a drift-free timer (silence between utterances, as a phone line sends).
// docs/sip-bridge.md walks through the same API with curl; client/whip/example.ts runs this class.
import { RTCPeerConnection, RTCRtpCodecParameters, RtpHeader, RtpPacket, type RTCRtpTransceiver } from 'werift';
import { OpusFrameEncoder } from '../../media/opus-codec.ts';
import { iceFragmentOf, parseSdpFragment, withIceCredentials } from '../../signaling/sdp-fragment.ts';
import { readEventStream, type ServerSentEvent } from './event-stream.ts';

export interface WhipClientOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8080 */
  serverUrl: string;
  /** An access token with the `join`, `publish` and `sip` grants (`npm run token -- --identity bridge-1 --grants join,publish,sip,agent`). */
  token: string;
  room?: string;
  mode?: string;
  /** Gather candidates on these addresses only (e.g. ['127.0.0.1']); default: every IPv4 interface. */
  hostAddresses?: string[];
  /** Send candidates in PATCH requests after the answer (true), or in the offer itself (false). */
  trickle?: boolean;
}

export interface ReceivedAudio {
  at: number;
  sequenceNumber: number;
  payload: Uint8Array;
}

export class WhipError extends Error {
  override name = 'WhipError';
  constructor(
    readonly status: number,
    readonly code: string | null,
    message: string,
  ) {
    super(message);
  }
}

export class WhipClient {
  readonly options: WhipClientOptions;
  readonly pc: RTCPeerConnection;
  /** The session resource (Location of the POST), absolute. */
  resourceUrl = '';
  sessionId = '';
  etag = '';
  /** ICE servers the server announced in Link headers (raw header values). */
  iceServerLinks: string[] = [];
  /** The agent's (and the room's) audio as it arrives. */
  readonly received: ReceivedAudio[] = [];
  #remoteAnswer = '';
  #transceiver: RTCRtpTransceiver;
  #seq = Math.floor(Math.random() * 0xffff);
  #ts = Math.floor(Math.random() * 0xffffffff);
  #mic: NodeJS.Timeout | null = null;
  #queue: { packets: Uint8Array[]; next: number; done: () => void }[] = [];
  readonly #silence: Uint8Array;

  private constructor(options: WhipClientOptions) {
    this.options = options;
    const hosts = options.hostAddresses;
    this.pc = new RTCPeerConnection({
      iceServers: [],
      iceUseIpv6: false,
      ...(hosts ? { iceUseIpv4: false, iceAdditionalHostAddresses: hosts } : {}),
      codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2, payloadType: 111 })], video: [] },
    });
    this.#transceiver = this.pc.addTransceiver('audio', { direction: 'sendrecv' });
    this.#transceiver.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp) => {
        this.received.push({ at: performance.now(), sequenceNumber: rtp.header.sequenceNumber, payload: new Uint8Array(rtp.payload) });
      });
    });
    const encoder = new OpusFrameEncoder({ sampleRate: 16000 });
    this.#silence = encoder.encode(new Int16Array(320));
    encoder.free();
  }

  /** Creates the session and waits until media is connected (ICE + DTLS). */
  static async connect(options: WhipClientOptions): Promise<WhipClient> {
    const client = new WhipClient(options);
    try {
      await client.#publish();
      return client;
    } catch (error) {
      await client.pc.close().catch(() => undefined);
      throw error;
    }
  }

  async #publish(): Promise<void> {
    const { serverUrl, room, mode } = this.options;
    const trickle = this.options.trickle ?? true;
    const offer = await this.pc.createOffer();
    disablePublicStun(this.pc);
    await this.pc.setLocalDescription(offer);
    const local = this.pc.localDescription!.sdp;
    const query = new URLSearchParams({ ...(room ? { room } : {}), ...(mode ? { mode } : {}) });
    const url = `${serverUrl}/v1/whip${query.size > 0 ? `?${query}` : ''}`;
    const body = trickle ? local.replace(/^a=(candidate:.*|end-of-candidates)\r?\n/gm, '') : local;
    const response = await this.#fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body }, 201);
    this.resourceUrl = new URL(response.headers.get('location')!, serverUrl).toString();
    this.sessionId = this.resourceUrl.split('/').at(-1)!;
    this.etag = response.headers.get('etag') ?? '';
    this.iceServerLinks = (response.headers.get('link') ?? '').split(/,(?=\s*<)/).map((l) => l.trim()).filter(Boolean);
    this.#remoteAnswer = await response.text();
    const connected = this.#connected();
    await this.pc.setRemoteDescription({ type: 'answer', sdp: this.#remoteAnswer });
    if (trickle) await this.trickle(iceFragmentOf(local));
    await connected;
  }

  /** PATCHes ICE candidates (an sdpfrag) under the current ETag. */
  async trickle(fragment: string): Promise<void> {
    await this.#fetch(this.resourceUrl, { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag', 'if-match': this.etag }, body: fragment }, 204);
  }

  /**
   * ICE restart (the network changed): new credentials and candidates go to the server with
   * If-Match: *; its answer fragment carries its own. Resolves when media is connected again.
   */
  async restartIce(): Promise<void> {
    this.pc.restartIce();
    const offer = await this.pc.createOffer();
    disablePublicStun(this.pc);
    await this.pc.setLocalDescription(offer);
    const response = await this.#fetch(
      this.resourceUrl,
      { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag', 'if-match': '*' }, body: iceFragmentOf(this.pc.localDescription!.sdp) },
      200,
    );
    this.etag = response.headers.get('etag') ?? this.etag;
    this.#remoteAnswer = withIceCredentials(this.#remoteAnswer, parseSdpFragment(await response.text()));
    const connected = this.#iceChecked();
    await this.pc.setRemoteDescription({ type: 'answer', sdp: this.#remoteAnswer });
    await connected;
  }

  /** Starts sending 20 ms frames: queued speech, else silence. */
  startMic(): void {
    if (this.#mic) return;
    const start = performance.now();
    let tick = 0;
    const step = (): void => {
      tick++;
      const current = this.#queue[0];
      if (current) {
        this.#send(current.packets[current.next]!, current.next === 0);
        if (++current.next >= current.packets.length) {
          this.#queue.shift();
          current.done();
        }
      } else {
        this.#send(this.#silence, false);
      }
      this.#mic = setTimeout(step, Math.max(0, start + tick * 20 - performance.now()));
    };
    this.#mic = setTimeout(step, 20);
  }

  /** Queues Opus packets (20 ms each) on the running microphone; resolves when the last one is sent. */
  speak(packets: Uint8Array[]): Promise<void> {
    if (!this.#mic) this.startMic();
    return new Promise((done) => this.#queue.push({ packets, next: 0, done }));
  }

  /** The session's events (SSE) until the session ends or `signal` aborts. */
  async *events(signal?: AbortSignal): AsyncGenerator<ServerSentEvent> {
    const response = await this.#fetch(`${this.options.serverUrl}/v1/sessions/${this.sessionId}/events`, { signal: signal ?? null }, 200);
    yield* readEventStream(response);
  }

  async session(): Promise<Record<string, unknown>> {
    const response = await this.#fetch(`${this.options.serverUrl}/v1/sessions/${this.sessionId}`, {}, 200);
    return (await response.json()) as Record<string, unknown>;
  }

  /** Makes the agent say `text` now (needs the `agent` grant). */
  async say(text: string): Promise<void> {
    await this.#fetch(`${this.options.serverUrl}/v1/sessions/${this.sessionId}/say`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) }, 202);
  }

  /** Ends the call: DELETE on the resource, then the peer connection. */
  async close(): Promise<void> {
    if (this.#mic) clearTimeout(this.#mic);
    this.#mic = null;
    try {
      if (this.resourceUrl) await this.#fetch(this.resourceUrl, { method: 'DELETE' }, 200);
    } finally {
      await this.pc.close().catch(() => undefined);
    }
  }

  #send(payload: Uint8Array, marker: boolean): void {
    const header = new RtpHeader({ payloadType: 111, sequenceNumber: this.#seq, timestamp: this.#ts, marker });
    this.#seq = (this.#seq + 1) & 0xffff;
    this.#ts = (this.#ts + 960) >>> 0;
    void this.#transceiver.sender.sendRtp(new RtpPacket(header, Buffer.from(payload))).catch(() => undefined);
  }

  async #fetch(url: string, init: RequestInit, expected: number): Promise<Response> {
    const headers = { authorization: `Bearer ${this.options.token}`, ...(init.headers as Record<string, string> | undefined) };
    const response = await fetch(url, { ...init, headers });
    if (response.status !== expected) {
      const text = await response.text().catch(() => '');
      let code: string | null = null;
      try {
        code = (JSON.parse(text) as { code?: string }).code ?? null;
      } catch {
        // not one of our JSON errors
      }
      throw new WhipError(response.status, code, `${init.method ?? 'GET'} ${url}: ${response.status} ${text.slice(0, 200)}`);
    }
    return response;
  }

  /** Resolves when the peer connection is connected (again). */
  #connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      const sub = this.pc.connectionStateChange.subscribe((state) => {
        if (state === 'connected') {
          sub.unSubscribe();
          resolve();
        } else if (state === 'failed' || state === 'closed') {
          sub.unSubscribe();
          reject(new Error(`peer connection ${state}`));
        }
      });
    });
  }

  /**
   * Resolves when ICE has checked a new pair and connected. After a restart werift's connection
   * state stays "connected"; its ICE state goes (new, completed,) checking, connected.
   */
  #iceChecked(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      let checking = false;
      const timer = setTimeout(() => {
        sub.unSubscribe();
        reject(new Error(`ICE did not reconnect within ${timeoutMs} ms`));
      }, timeoutMs);
      const sub = this.pc.iceConnectionStateChange.subscribe((state) => {
        if (state === 'checking') checking = true;
        else if (checking && (state === 'connected' || state === 'completed')) {
          clearTimeout(timer);
          sub.unSubscribe();
          resolve();
        } else if (state === 'failed' || state === 'closed') {
          clearTimeout(timer);
          sub.unSubscribe();
          reject(new Error(`ICE ${state}`));
        }
      });
    });
  }

}

/**
 * werift falls back to a public STUN server even with `iceServers: []` (see FIELD-NOTES): clear it
 * on every ICE transport before setLocalDescription. Nothing here may reach the internet.
 */
export function disablePublicStun(pc: RTCPeerConnection): void {
  for (const t of pc.iceTransports) (t.connection as unknown as { stunServer?: unknown }).stunServer = undefined;
}
