// One subscription in a room: one publisher's packets to one subscriber's outbound track, with
// the subscriber's mute and per-track header rewriting. The payload is forwarded untouched (no
// decode, no re-encode); the header is a new one per subscriber, since the RTP stack stamps its
// own SSRC and payload type on what it sends (werift's sendRtp mutates the packet it is given).
import { RtpRewriter, type RtpHeaderFields, type RewrittenHeader } from './rtp-rewriter.ts';

/** The sending end of one outbound track (media/peer.ts implements it over werift). */
export interface OutboundTrack {
  /** The m-line's mid once negotiated, else null. */
  readonly mid: string | null;
  send(header: RewrittenHeader, payload: Uint8Array): void;
  /** Stops the track; the next renegotiation removes it from the subscriber's connection. */
  close(): void;
}

export interface ForwardedPacket extends RtpHeaderFields {
  payload: Uint8Array;
}

export interface ForwarderStats {
  forwarded: number;
  /** Not sent: the subscription was muted, or the packet predates a stream break. */
  dropped: number;
  segments: number;
}

export class Forwarder {
  readonly publisherId: string;
  readonly track: OutboundTrack;
  readonly #rewriter: RtpRewriter;
  #muted = false;
  #forwarded = 0;
  #mutedDrops = 0;

  constructor(publisherId: string, track: OutboundTrack, rewriter = new RtpRewriter()) {
    this.publisherId = publisherId;
    this.track = track;
    this.#rewriter = rewriter;
  }

  get muted(): boolean {
    return this.#muted;
  }

  setMuted(muted: boolean): void {
    if (muted && !this.#muted) this.#rewriter.pause();
    this.#muted = muted;
  }

  /** Sends the packet on the subscriber's track; returns whether it was sent. */
  push(packet: ForwardedPacket, nowMs: number): boolean {
    if (this.#muted) {
      this.#mutedDrops++;
      return false;
    }
    const header = this.#rewriter.rewrite(packet, nowMs);
    if (!header) return false;
    this.track.send(header, packet.payload);
    this.#forwarded++;
    return true;
  }

  close(): void {
    this.track.close();
  }

  toJSON(): ForwarderStats {
    const r = this.#rewriter.toJSON();
    return { forwarded: this.#forwarded, dropped: this.#mutedDrops + r.dropped, segments: r.segments };
  }
}
