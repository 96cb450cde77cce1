// The one file that imports werift. Everything else sees `Peer`: one audio transceiver, serialized
// signaling, RTP in and out as plain values.
import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  type RTCRtpTransceiver,
} from 'werift';
import { TypedEmitter } from './typed-emitter.ts';
import { SerialQueue } from './serial-queue.ts';

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
      if (!this.#closed) this.safeEmit('connectionstatechange', state);
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
      await this.#pc.setRemoteDescription({ type: 'offer', sdp });
      this.#disableDefaultStun();
      const answer = await this.#pc.createAnswer();
      await this.#pc.setLocalDescription(answer);
      const local = this.#pc.localDescription?.sdp ?? answer.sdp;
      // werift drops an address whose port cannot be bound and carries on: with none left the
      // session could never connect, so say so instead of answering.
      if (!/^a=candidate:/m.test(local)) throw new NoPortsError('no UDP port available for media; retry later or on another server');
      return this.#announce(local);
    });
  }

  /** Creates an offer of our own (renegotiation or ICE restart). */
  createOffer(options: { iceRestart?: boolean } = {}): Promise<string> {
    return this.#signaling.run(async () => {
      this.#assertOpen();
      // An offer of ours is still unanswered: send the same one again rather than a new one that
      // an answer to the first could be mistaken for.
      const pending = this.#pc.signalingState === 'have-local-offer' ? this.#pc.localDescription?.sdp : undefined;
      if (pending) return this.#announce(pending);
      if (options.iceRestart) this.#pc.restartIce();
      const offer = await this.#pc.createOffer();
      this.#disableDefaultStun();
      await this.#pc.setLocalDescription(offer);
      return this.#announce(this.#pc.localDescription?.sdp ?? offer.sdp);
    });
  }

  acceptAnswer(sdp: string): Promise<void> {
    return this.#signaling.run(async () => {
      this.#assertOpen();
      if (this.#pc.signalingState !== 'have-local-offer') {
        throw new InvalidStateError('no offer of ours is waiting for an answer');
      }
      await this.#pc.setRemoteDescription({ type: 'answer', sdp });
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
