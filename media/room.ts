// A room inside a media worker: every participant's inbound Opus packets go to every other
// participant that subscribes to them, each on its own outbound track (one per remote participant),
// without decoding or re-encoding. Tracks are added and removed as participants come and go or
// change their subscriptions; each change makes the subscriber's peer renegotiate (a server offer).
// The agent's answer, played by the designated participant's session, reaches the others on their
// main track. Also says who is speaking, from the levels the sessions decode anyway.
//
// RTCP is terminated per leg, never forwarded: each publisher gets receiver reports from the
// server's receiver (its own leg's loss and jitter), each subscriber's reports end at the server's
// sender for its track. A subscriber's loss is not the publisher's business.
import { TypedEmitter } from './typed-emitter.ts';
import { Forwarder, type ForwarderStats, type OutboundTrack } from './forwarder.ts';
import { ActiveSpeakerDetector, type ActiveSpeakerOptions } from './active-speaker.ts';
import type { InboundRtp } from './peer.ts';
import type { MediaSessionEvents } from './media-session.ts';

type RoomMediaEvents = Pick<MediaSessionEvents, 'rtp' | 'level' | 'outbound' | 'peerreplaced'>;

/** What the room needs of a participant's media session (MediaSession provides it). */
export interface RoomMedia {
  on<K extends keyof RoomMediaEvents>(event: K, listener: (...args: RoomMediaEvents[K]) => void): unknown;
  off<K extends keyof RoomMediaEvents>(event: K, listener: (...args: RoomMediaEvents[K]) => void): unknown;
  addOutboundTrack(participantId: string): OutboundTrack;
  sendAgentAudio(payload: Uint8Array, timestamp: number, marker: boolean): void;
}

export interface TrackAssignment {
  mid: string;
  participantId: string;
}

export type RoomEvents = {
  /** The participant now speaking, or null when nobody has for a while. */
  activespeaker: [participantId: string | null];
};

interface Member {
  readonly id: string;
  readonly media: RoomMedia;
  /** Publisher id -> the forwarder carrying it to this member. */
  readonly subscriptions: Map<string, Forwarder>;
  /** Publishers this member muted (kept while the publisher is in the room). */
  readonly muted: Set<string>;
  /** Publishers this member subscribes to; null = everyone, newcomers included. */
  wanted: Set<string> | null;
  readonly detach: () => void;
}

export class Room extends TypedEmitter<RoomEvents> {
  readonly name: string;
  readonly #members = new Map<string, Member>();
  readonly #now: () => number;
  readonly #speaker: ActiveSpeakerDetector;
  /** Stats of forwarders already closed, so totals only grow. */
  readonly #closedStats: ForwarderStats = { forwarded: 0, dropped: 0, segments: 0 };

  constructor(name: string, now: () => number, speaker: Partial<ActiveSpeakerOptions> = {}) {
    super();
    this.name = name;
    this.#now = now;
    this.#speaker = new ActiveSpeakerDetector(speaker);
  }

  get size(): number {
    return this.#members.size;
  }

  has(participantId: string): boolean {
    return this.#members.has(participantId);
  }

  /** `wanted`: the publishers it subscribes to from the start (null: everyone, newcomers included). */
  add(participantId: string, media: RoomMedia, wanted: string[] | null = null): void {
    if (this.#members.has(participantId)) return;
    const onRtp = (packet: InboundRtp) => this.#forward(participantId, packet);
    const onLevel = (db: number) => this.#report(this.#speaker.push(participantId, db, this.#now()));
    const onOutbound = (payload: Uint8Array, timestamp: number, marker: boolean) => {
      for (const other of this.#members.values()) if (other.id !== participantId) other.media.sendAgentAudio(payload, timestamp, marker);
    };
    const onPeerReplaced = () => {
      // The tracks died with the old connection; the new one gets new ones.
      for (const forwarder of member.subscriptions.values()) this.#retire(forwarder);
      member.subscriptions.clear();
      this.#sync(member);
    };
    media.on('rtp', onRtp);
    media.on('level', onLevel);
    media.on('outbound', onOutbound);
    media.on('peerreplaced', onPeerReplaced);
    const member: Member = {
      id: participantId,
      media,
      subscriptions: new Map(),
      muted: new Set(),
      wanted: wanted === null ? null : new Set(wanted),
      detach: () => {
        media.off('rtp', onRtp);
        media.off('level', onLevel);
        media.off('outbound', onOutbound);
        media.off('peerreplaced', onPeerReplaced);
      },
    };
    this.#members.set(participantId, member);
    for (const m of this.#members.values()) this.#sync(m);
  }

  remove(participantId: string): void {
    const member = this.#members.get(participantId);
    if (!member) return;
    this.#members.delete(participantId);
    member.detach();
    // Its own tracks go with its connection; it leaves the others' connections by renegotiation.
    for (const forwarder of member.subscriptions.values()) this.#retire(forwarder);
    for (const m of this.#members.values()) {
      m.muted.delete(participantId);
      m.wanted?.delete(participantId);
      this.#sync(m);
    }
    this.#report(this.#speaker.remove(participantId, this.#now()));
  }

  /** Stops (or resumes) forwarding one publisher to one subscriber; the track stays. */
  setSubscriptionMuted(subscriberId: string, publisherId: string, muted: boolean): void {
    const member = this.#members.get(subscriberId);
    if (!member || publisherId === subscriberId || !this.#members.has(publisherId)) return;
    if (muted) member.muted.add(publisherId);
    else member.muted.delete(publisherId);
    member.subscriptions.get(publisherId)?.setMuted(muted);
  }

  /** Subscribes a member to these publishers only (null: everyone); tracks are added and removed. */
  subscribe(subscriberId: string, publisherIds: string[] | null): void {
    const member = this.#members.get(subscriberId);
    if (!member) return;
    member.wanted = publisherIds === null ? null : new Set(publisherIds);
    this.#sync(member);
  }

  /** The subscriber's negotiated tracks: which m-line carries whom. */
  tracksOf(subscriberId: string): TrackAssignment[] {
    const member = this.#members.get(subscriberId);
    if (!member) return [];
    const tracks: TrackAssignment[] = [];
    for (const [participantId, forwarder] of member.subscriptions) {
      const mid = forwarder.track.mid;
      if (mid !== null) tracks.push({ mid, participantId });
    }
    return tracks;
  }

  toJSON(): ForwarderStats {
    const total = { ...this.#closedStats };
    for (const m of this.#members.values()) {
      for (const f of m.subscriptions.values()) {
        const s = f.toJSON();
        total.forwarded += s.forwarded;
        total.dropped += s.dropped;
        total.segments += s.segments;
      }
    }
    return total;
  }

  #forward(publisherId: string, packet: InboundRtp): void {
    const now = this.#now();
    for (const member of this.#members.values()) {
      if (member.id !== publisherId) member.subscriptions.get(publisherId)?.push(packet, now);
    }
  }

  #sync(member: Member): void {
    for (const [publisherId, forwarder] of member.subscriptions) {
      if (this.#members.has(publisherId) && this.#wants(member, publisherId)) continue;
      forwarder.close();
      this.#retire(forwarder);
      member.subscriptions.delete(publisherId);
    }
    for (const publisherId of this.#members.keys()) {
      if (publisherId === member.id || member.subscriptions.has(publisherId) || !this.#wants(member, publisherId)) continue;
      const forwarder = new Forwarder(publisherId, member.media.addOutboundTrack(publisherId));
      forwarder.setMuted(member.muted.has(publisherId));
      member.subscriptions.set(publisherId, forwarder);
    }
  }

  #wants(member: Member, publisherId: string): boolean {
    return member.wanted === null || member.wanted.has(publisherId);
  }

  #retire(forwarder: Forwarder): void {
    const s = forwarder.toJSON();
    this.#closedStats.forwarded += s.forwarded;
    this.#closedStats.dropped += s.dropped;
    this.#closedStats.segments += s.segments;
  }

  #report(change: string | null | undefined): void {
    if (change !== undefined) this.safeEmit('activespeaker', change);
  }
}
