// The rooms of one media worker: which session sits in which room as which participant. All of a
// room's participants are placed on the same worker (server/media-pool.ts), so forwarding between
// them never leaves the thread.
import { Room } from '../room.ts';
import type { MediaSession } from '../media-session.ts';
import type { RoomSeat, WorkerEvent } from './worker-protocol.ts';

interface Seat {
  room: Room;
  participantId: string;
}

export class WorkerRooms {
  readonly #rooms = new Map<string, Room>();
  readonly #seats = new Map<string, Seat>();
  readonly #now: () => number;
  readonly #post: (event: WorkerEvent) => void;
  /** Forwarding totals of rooms that have emptied, so the counters only grow. */
  readonly #closed = { packets: 0, dropped: 0 };
  /** Sessions that have been told about forwarded tracks (they must hear when the last one goes). */
  readonly #mapped = new Set<string>();

  constructor(now: () => number, post: (event: WorkerEvent) => void) {
    this.#now = now;
    this.#post = post;
  }

  join(seat: RoomSeat, sessionId: string, media: MediaSession): void {
    let room = this.#rooms.get(seat.name);
    if (!room) {
      const created = new Room(seat.name, this.#now);
      created.on('activespeaker', (participantId) => this.#post({ ev: 'activespeaker', room: created.name, participantId }));
      this.#rooms.set(seat.name, created);
      room = created;
    }
    this.#seats.set(sessionId, { room, participantId: seat.participantId });
    room.add(seat.participantId, media, seat.subscribe ? null : []);
  }

  leave(sessionId: string): void {
    const seat = this.#seats.get(sessionId);
    if (!seat) return;
    this.#seats.delete(sessionId);
    this.#mapped.delete(sessionId);
    seat.room.remove(seat.participantId);
    if (seat.room.size === 0) {
      const stats = seat.room.toJSON();
      this.#closed.packets += stats.forwarded;
      this.#closed.dropped += stats.dropped;
      this.#rooms.delete(seat.room.name);
      seat.room.removeAllListeners();
    }
  }

  setSubscriptionMuted(sessionId: string, publisherId: string, muted: boolean): void {
    const seat = this.#seats.get(sessionId);
    seat?.room.setSubscriptionMuted(seat.participantId, publisherId, muted);
  }

  subscribe(sessionId: string, publisherIds: string[] | null): void {
    const seat = this.#seats.get(sessionId);
    seat?.room.subscribe(seat.participantId, publisherIds);
  }

  /**
   * Tells the main thread which m-line carries whom, ahead of a server offer to this session. A
   * session that never had a forwarded track (alone in its room) gets no such message.
   */
  postTracks(sessionId: string): void {
    const seat = this.#seats.get(sessionId);
    if (!seat) return;
    const tracks = seat.room.tracksOf(seat.participantId);
    if (tracks.length === 0 && !this.#mapped.has(sessionId)) return;
    this.#mapped.add(sessionId);
    this.#post({ ev: 'tracks', sessionId, tracks });
  }

  participantOf(sessionId: string): string | null {
    return this.#seats.get(sessionId)?.participantId ?? null;
  }

  /** The other sessions in this session's room, with their participant ids. */
  roommates(sessionId: string): { sessionId: string; participantId: string }[] {
    const room = this.#seats.get(sessionId)?.room;
    const mates: { sessionId: string; participantId: string }[] = [];
    if (!room) return mates;
    for (const [id, seat] of this.#seats) if (seat.room === room && id !== sessionId) mates.push({ sessionId: id, participantId: seat.participantId });
    return mates;
  }

  stats(): { packets: number; dropped: number; rooms: number } {
    const total = { ...this.#closed, rooms: this.#rooms.size };
    for (const room of this.#rooms.values()) {
      const s = room.toJSON();
      total.packets += s.forwarded;
      total.dropped += s.dropped;
    }
    return total;
  }
}
