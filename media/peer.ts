// The one file that imports werift. Everything else sees `Peer`: one audio transceiver (the agent's),
// outbound tracks for a room's other participants, serialized signaling, RTP as plain values.
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  type RTCRtpTransceiver,
} from 'werift';
import { TypedEmitter } from './typed-emitter.ts';
import { SerialQueue } from './serial-queue.ts';
import type { OutboundTrack } from './forwarder.ts';
import type { RewrittenHeader } from './rtp-rewriter.ts';
import { withoutRejectedFromBundle } from './bundle-group.ts';

export interface PeerOptions {
  /** UDP ports for ICE sockets, inclusive. */
  portRange: [number, number];
  /** Addresses to gather host candidates on; empty = every non-internal IPv4 interface plus loopback. */
  hostAddresses: string[];
  /** Address written into our candidates instead of the bound one (1:1 NAT); null = as bound. */
  announcedAddress: string | null;
}

export interface IceCandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

export interface InboundRtp {
  sequenceNumber: number;
  timestamp: number;
  marker: boolean;
  ssrc: number;
  payload: Uint8Array;
}

export type PeerConnectionState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';

/** What the remote end reports about the audio we send (RTCP receiver report). */
export interface ReceiverReport {
  /** Fraction of our packets lost since the previous report, 0..1. */
  fractionLost: number;
  /** Interarrival jitter at the receiver, ms. */
  jitterMs: number;
  /** Round-trip time from SR/RR timestamps, ms; null until measured. */
  rttMs: number | null;
}

export type PeerEvents = {
  candidate: [candidate: IceCandidateInit | null];
  receiverreport: [report: ReceiverReport];
  connectionstatechange: [state: PeerConnectionState];
  rtp: [packet: InboundRtp];
  /** Outbound tracks were added or removed: a server offer is due (see renegotiate()). */
  negotiationneeded: [];
  '@close': [];
};

export class InvalidStateError extends Error {
  override name = 'InvalidStateError';
}

/** No UDP port could be bound for any host address (the worker's share of the range is used up). */
export class NoPortsError extends Error {
  override name = 'NoPortsError';
}

export class GlareError extends Error {
  override name = 'GlareError';
}

export const OPUS_PAYLOAD_TYPE = 111;
const OPUS_CLOCK_RATE = 48000;

type TrackDirection = 'sendonly' | 'inactive';

/** An outbound (forwarding) track and where its negotiation stands. */
interface OutboundState {
  transceiver: RTCRtpTransceiver | null;
  wanted: TrackDirection;
  /** In our outstanding offer; in the last answered one. */
  offered: TrackDirection | null;
  negotiated: TrackDirection | null;
}

// werift keeps the smoothed RTT private; read it without widening the wrapper's surface.
function rttMs(sender: object): number | null {
  const rtt = (sender as { rtt?: number }).rtt;
  return rtt === undefined ? null : rtt * 1000;
}

export class Peer extends TypedEmitter<PeerEvents> {
  readonly #pc: RTCPeerConnection;
  readonly #transceiver: RTCRtpTransceiver;
  readonly #signaling = new SerialQueue();
  readonly #announcedAddress: string | null;
  #closed = false;
  #sequenceNumber = 0;
  readonly #outbound = new Set<OutboundState>();

  constructor(options: PeerOptions) {
    super();
    const explicitAddresses = options.hostAddresses.length > 0;
    this.#announcedAddress = options.announcedAddress;
    this.#pc = new RTCPeerConnection({
      iceServers: [],
      icePortRange: options.portRange,
      // With explicit addresses, gather on exactly those (werift adds "additional" addresses to the
      // interface list; turning interface discovery off leaves only ours).
      iceUseIpv4: !explicitAddresses,
      // Tracks added before the first negotiation share the one transport (no extra ICE agent).
      bundlePolicy: 'max-bundle',
      iceUseIpv6: false,
      // "auto" adds loopback for local clients, unless an announced address says clients come from
      // elsewhere (in a container, a loopback candidate would only cost a second port per session).
      iceAdditionalHostAddresses: explicitAddresses ? options.hostAddresses : options.announcedAddress ? [] : ['127.0.0.1'],
      codecs: {
        audio: [
          new RTCRtpCodecParameters({
            mimeType: 'audio/opus',
            clockRate: OPUS_CLOCK_RATE,
            channels: 2,
            payloadType: OPUS_PAYLOAD_TYPE,
            parameters: 'minptime=10;useinbandfec=1',
          }),
        ],
        video: [],
      },
    });
    this.#disableDefaultStun();
    this.#transceiver = this.#pc.addTransceiver('audio', { direction: 'sendrecv' });

    this.#pc.onIceCandidate.subscribe((candidate) => {
      if (this.#closed) return;
      if (!candidate) {
        this.safeEmit('candidate', null);
        return;
      }
      const json = candidate.toJSON();
      this.safeEmit('candidate', {
        candidate: this.#announce(json.candidate ?? ''),
        sdpMid: json.sdpMid ?? null,
        sdpMLineIndex: json.sdpMLineIndex ?? null,
      });
    });
    this.#pc.connectionStateChange.subscribe((state) => {
      if (this.#closed) return;
      this.safeEmit('connectionstatechange', state);
      if (state === 'connected') this.#checkNegotiation();
    });
    const sender = this.#transceiver.sender;
    sender.onRtcp.subscribe((packet) => {
      if (this.#closed || (packet.type !== 201 && packet.type !== 200)) return;
      for (const report of (packet as { reports?: { ssrc: number; fractionLost: number; jitter: number }[] }).reports ?? []) {
        if (report.ssrc !== sender.ssrc) continue;
        this.safeEmit('receiverreport', {
          fractionLost: report.fractionLost / 256,
          jitterMs: report.jitter / 48,
          rttMs: rttMs(sender),
        });
      }
    });
    // onTrack fires again on each renegotiation with the same track: subscribe once per track.
    const subscribed = new WeakSet<object>();
    this.#pc.onTrack.subscribe((track) => {
      if (subscribed.has(track)) return;
      subscribed.add(track);
      track.onReceiveRtp.subscribe((rtp) => {
        if (this.#closed) return;
        const h = rtp.header;
        this.safeEmit('rtp', {
          sequenceNumber: h.sequenceNumber,
          timestamp: h.timestamp,
          marker: h.marker,
          ssrc: h.ssrc,
          payload: rtp.payload,
        });
      });
    });
  }

  get connectionState(): PeerConnectionState {
    return this.#pc.connectionState;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Applies a remote offer and returns our answer. Runs after every earlier signaling operation. */
  acceptOffer(sdp: string): Promise<string> {
    return this.#signaling.run(async () => {
      this.#assertOpen();
      if (this.#pc.signalingState === 'have-local-offer') {
        // Glare: the server is the impolite side (perfect negotiation). It keeps its own offer; the
        // client, being polite, rolls back and answers ours, then offers again if it still needs to.
        throw new GlareError('the server has an offer outstanding; answer it first');
      }
      // One m-line is the client's own; any others must be ours (a room's forwarded tracks).
      const negotiated = this.#pc.getTransceivers().filter((t) => t.mid !== null).length;
      if ((sdp.match(/^m=/gm)?.length ?? 0) > Math.max(1, negotiated)) throw new Error('the offer has m-lines the server never offered');
      await this.#pc.setRemoteDescription({ type: 'offer', sdp });
      this.#disableDefaultStun();
      const answer = await this.#pc.createAnswer();
      await this.#pc.setLocalDescription(answer);
      const local = this.#pc.localDescription?.sdp ?? answer.sdp;
      // werift drops an address whose port cannot be bound and carries on: with none left the
      // session could never connect, so say so instead of answering.
      if (!/^a=candidate:/m.test(local)) throw new NoPortsError('no UDP port available for media; retry later or on another server');
      // The answer cannot carry tracks the client's offer did not have: those need an offer of ours.
      this.#checkNegotiation();
      return this.#describe(local);
    });
  }

  /** Creates an offer of our own (renegotiation or ICE restart). */
  createOffer(options: { iceRestart?: boolean } = {}): Promise<string> {
    return this.#signaling.run(async () => {
      this.#assertOpen();
      // An offer of ours is still unanswered: send the same one again rather than a new one that
      // an answer to the first could be mistaken for.
      const pending = this.#pc.signalingState === 'have-local-offer' ? this.#pc.localDescription?.sdp : undefined;
      if (pending) return this.#describe(pending);
      if (options.iceRestart) this.#pc.restartIce();
      return this.#offer();
    });
  }

  /**
   * A server offer that adds or removes outbound tracks, or null when none is needed or it is not
   * the time: ours is outstanding (its answer checks again), or the connection is not up yet.
   */
  renegotiate(): Promise<string | null> {
    return this.#signaling.run(async () => {
      if (this.#closed || this.#pc.signalingState !== 'stable' || !this.#pc.remoteDescription) return null;
      if (this.#pc.connectionState !== 'connected' || !this.needsNegotiation) return null;
      return this.#offer();
    });
  }

  get needsNegotiation(): boolean {
    for (const t of this.#outbound) {
      // A track closed before it was ever offered needs no offer of its own.
      if (t.wanted !== t.negotiated && !(t.wanted === 'inactive' && t.negotiated === null)) return true;
    }
    return false;
  }

  /** Our offer still waiting for an answer, if any. */
  get pendingOffer(): string | null {
    const sdp = this.#pc.signalingState === 'have-local-offer' ? this.#pc.localDescription?.sdp : undefined;
    return sdp ? this.#describe(sdp) : null;
  }

  /**
   * A send-only audio track for another room participant; `streamId` becomes its msid stream id.
   * Sends nothing until negotiated. close() makes the m-line inactive (port 0) at the next offer;
   * it is never reused, since browsers stop a transceiver whose m-line has port 0.
   */
  addOutboundTrack(streamId: string): OutboundTrack {
    this.#assertOpen();
    const state: OutboundState = { transceiver: null, wanted: 'sendonly', offered: null, negotiated: null };
    this.#outbound.add(state);
    // Queued: werift matches a transceiver without a mid to any m-line of a description being applied.
    void this.#signaling.run(async () => {
      if (this.#closed || state.wanted === 'inactive') return void this.#outbound.delete(state);
      const transceiver = this.#pc.addTransceiver('audio', { direction: 'sendonly' });
      transceiver.sender.streamId = streamId;
      this.#disableDefaultStun();
      state.transceiver = transceiver;
      this.#checkNegotiation();
    });
    return {
      get mid() { return state.transceiver?.mid ?? null; },
      send: (header: RewrittenHeader, payload: Uint8Array) => {
        const sender = state.transceiver?.sender;
        if (!sender || state.wanted !== 'sendonly' || this.#closed) return;
        // A new packet per call: werift's sendRtp stamps its SSRC on it and keeps it for retransmission.
        const rtp = new RtpHeader({ payloadType: OPUS_PAYLOAD_TYPE, sequenceNumber: header.sequenceNumber, timestamp: header.timestamp, marker: header.marker });
        sender.sendRtp(new RtpPacket(rtp, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength))).catch(() => undefined);
      },
      close: () => {
        if (state.wanted === 'inactive') return;
        state.wanted = 'inactive';
        void this.#signaling.run(async () => {
          if (this.#closed || !state.transceiver) return;
          state.transceiver.setDirection('inactive');
          state.transceiver.sender.stop(); // ends its RTCP sender reports
          this.#checkNegotiation();
        });
      },
    };
  }

  acceptAnswer(sdp: string): Promise<void> {
    return this.#signaling.run(async () => {
      this.#assertOpen();
      if (this.#pc.signalingState !== 'have-local-offer') {
        throw new InvalidStateError('no offer of ours is waiting for an answer');
      }
      await this.#pc.setRemoteDescription({ type: 'answer', sdp });
      for (const t of this.#outbound) {
        if (t.offered !== null) t.negotiated = t.offered;
        t.offered = null;
        if (t.negotiated === 'inactive') this.#outbound.delete(t); // done with: its m-line stays inactive
      }
      this.#checkNegotiation();
    });
  }

  get signalingState(): string {
    return this.#pc.signalingState;
  }

  addCandidate(candidate: IceCandidateInit | null): Promise<void> {
    return this.#signaling.run(async () => {
      this.#assertOpen();
      if (!this.#pc.remoteDescription) throw new InvalidStateError('candidate before any description');
      if (candidate === null || candidate.candidate === '') return; // end of candidates
      try {
        await this.#pc.addIceCandidate({
          candidate: candidate.candidate,
          sdpMid: candidate.sdpMid ?? undefined,
          sdpMLineIndex: candidate.sdpMLineIndex ?? undefined,
          usernameFragment: candidate.usernameFragment ?? undefined,
        });
      } catch (error) {
        // A candidate of an older ICE generation (trickled for an offer that was refused in glare or
        // superseded by a restart) is normal in trickle ICE: drop it, as browsers do.
        if ((error as Error)?.message?.includes('usernameFragment')) return;
        throw error;
      }
    });
  }

  /** Sends one Opus frame on our audio track. `timestamp` is in 48 kHz units. */
  sendAudio(payload: Uint8Array, timestamp: number, marker: boolean): void {
    if (this.#closed || this.#pc.connectionState !== 'connected') return;
    const header = new RtpHeader({
      payloadType: OPUS_PAYLOAD_TYPE,
      sequenceNumber: this.#sequenceNumber,
      timestamp: timestamp >>> 0,
      marker,
    });
    this.#sequenceNumber = (this.#sequenceNumber + 1) & 0xffff;
    const packet = new RtpPacket(header, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
    this.#transceiver.sender.sendRtp(packet).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pc.close().catch(() => undefined);
    this.safeEmit('@close');
    this.removeAllListeners();
  }

  // Every server offer (restart or renegotiation) carries the outbound tracks as they are now.
  async #offer(): Promise<string> {
    const offer = await this.#pc.createOffer();
    this.#disableDefaultStun();
    await this.#pc.setLocalDescription(offer);
    for (const t of this.#outbound) if (t.transceiver) t.offered = t.wanted;
    return this.#describe(this.#pc.localDescription?.sdp ?? offer.sdp);
  }

  #describe(sdp: string): string {
    return withoutRejectedFromBundle(this.#announce(sdp));
  }

  // Tells the owner after the current signaling operation, so its offer queues behind this one.
  #checkNegotiation(): void {
    if (!this.#closed && this.needsNegotiation) queueMicrotask(() => this.safeEmit('negotiationneeded'));
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('peer is closed');
  }

  // werift falls back to a public STUN server even with `iceServers: []`; with no network,
  // setLocalDescription can then stall for 5 s. Clear it on every ICE transport.
  #disableDefaultStun(): void {
    for (const transport of this.#pc.iceTransports) {
      (transport.connection as unknown as { stunServer?: unknown }).stunServer = undefined;
    }
  }

  #announce(text: string): string {
    const address = this.#announcedAddress;
    if (!address) return text;
    // Rewrite host candidates of non-loopback addresses: "candidate:... udp prio ADDR PORT typ host".
    return text.replace(
      /(candidate:\S+ \d+ \S+ \d+ )(\d{1,3}(?:\.\d{1,3}){3})( \d+ typ host)/g,
      (all, head: string, ip: string, tail: string) => (ip.startsWith('127.') ? all : `${head}${address}${tail}`),
    );
  }
}
