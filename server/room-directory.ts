// The rooms of this server, in the main thread: who is in which room (as which participant), the
// participant limit, which participant the agent listens to, the room events every participant
// gets, and closing a room once it has stayed empty for a while. The media side of a room (the
// forwarding) lives in the worker that hosts all of its participants (media/room.ts).
import { randomBytes } from 'node:crypto';
import { TypedEmitter } from '../media/typed-emitter.ts';
import { SignalingError } from '../signaling/errors.ts';
import type { ParticipantInfo, ServerMessage } from '../signaling/protocol.ts';
import type { RoomSeat } from '../media/worker/worker-protocol.ts';

export interface RoomDirectoryOptions {
  maxParticipants: number;
  /** A room with nobody in it closes after this long (a participant who comes back sooner finds it). */
  emptyTimeoutMs: number;
  /** The agent hears its designated participant only, or everyone. */
  agentListens: 'designated' | 'all';
}

export const DEFAULT_ROOM_DIRECTORY_OPTIONS: RoomDirectoryOptions = { maxParticipants: 10, emptyTimeoutMs: 30_000, agentListens: 'designated' };

export type RoomDirectoryEvents = {
  roomopened: [room: string];
  roomclosed: [room: string];
  /** The agent listens to this session's participant from now on (the previous one left). */
  agentmoved: [room: string, sessionId: string];
};

interface Participant {
  sessionId: string;
  participantId: string;
  identity: string | null;
  muted: boolean;
}

interface RoomRecord {
  name: string;
  /** In join order: the first is the oldest. */
  participants: Map<string, Participant>;
  agentSessionId: string | null;
  activeSpeaker: string | null;
  emptyTimer: NodeJS.Timeout | null;
}

export type Deliver = (sessionId: string, message: ServerMessage) => void;

export class RoomDirectory extends TypedEmitter<RoomDirectoryEvents> {
  readonly options: RoomDirectoryOptions;
  readonly #rooms = new Map<string, RoomRecord>();
  readonly #roomOf = new Map<string, RoomRecord>();
  readonly #deliver: Deliver;

  constructor(options: Partial<RoomDirectoryOptions>, deliver: Deliver) {
    super();
    this.options = { ...DEFAULT_ROOM_DIRECTORY_OPTIONS, ...options };
    this.#deliver = deliver;
  }

  get size(): number {
    return this.#rooms.size;
  }

  /** Seats a session in a room (opening it if needed); refuses when the room is full. */
  admit(name: string, sessionId: string, identity: string | null = null): Omit<RoomSeat, 'subscribe'> {
    const room = this.#rooms.get(name) ?? this.#open(name);
    if (room.participants.size >= this.options.maxParticipants) {
      throw new SignalingError('ROOM_ERR_FULL', `room "${name}" has its maximum of ${this.options.maxParticipants} participants`);
    }
    if (room.emptyTimer) clearTimeout(room.emptyTimer);
    room.emptyTimer = null;
    const participant: Participant = { sessionId, participantId: `p-${randomBytes(6).toString('base64url')}`, identity, muted: false };
    this.#broadcast(room, { type: 'participant', event: 'joined', participant: info(participant) });
    room.participants.set(sessionId, participant);
    this.#roomOf.set(sessionId, room);
    const agent = room.agentSessionId === null;
    if (agent) room.agentSessionId = sessionId;
    return { name, participantId: participant.participantId, agent };
  }

  /** The session left for good; everyone else is told, and the agent moves on if it listened to it. */
  leave(sessionId: string): void {
    const room = this.#roomOf.get(sessionId);
    const participant = room?.participants.get(sessionId);
    if (!room || !participant) return;
    this.#roomOf.delete(sessionId);
    room.participants.delete(sessionId);
    this.#broadcast(room, { type: 'participant', event: 'left', participant: info(participant) });
    if (room.activeSpeaker === participant.participantId) room.activeSpeaker = null;
    if (room.agentSessionId === sessionId) {
      const next = room.participants.values().next().value as Participant | undefined;
      room.agentSessionId = next?.sessionId ?? null;
      if (next) {
        this.safeEmit('agentmoved', room.name, next.sessionId);
        this.#broadcast(room, { type: 'agent', listensTo: next.participantId });
      }
    }
    if (room.participants.size === 0) {
      room.emptyTimer = setTimeout(() => this.#close(room), this.options.emptyTimeoutMs);
      room.emptyTimer.unref();
    }
  }

  /** The participant muted or unmuted its microphone. */
  setMuted(sessionId: string, muted: boolean): void {
    const room = this.#roomOf.get(sessionId);
    const participant = room?.participants.get(sessionId);
    if (!room || !participant || participant.muted === muted) return;
    participant.muted = muted;
    this.#broadcast(room, { type: 'participant', event: muted ? 'muted' : 'unmuted', participant: info(participant) });
  }

  setActiveSpeaker(name: string, participantId: string | null): void {
    const room = this.#rooms.get(name);
    if (!room || room.activeSpeaker === participantId) return;
    room.activeSpeaker = participantId;
    this.#broadcast(room, { type: 'active_speaker', participantId });
  }

  /** The room as this session sees it: sent after `joined` and `resumed`. */
  snapshot(sessionId: string): Extract<ServerMessage, { type: 'room' }> | null {
    const room = this.#roomOf.get(sessionId);
    const you = room?.participants.get(sessionId);
    if (!room || !you) return null;
    return {
      type: 'room',
      room: room.name,
      participantId: you.participantId,
      participants: [...room.participants.values()].map(info),
      agentListensTo: (room.agentSessionId && room.participants.get(room.agentSessionId)?.participantId) ?? null,
      agentListensToAll: this.options.agentListens === 'all',
      activeSpeaker: room.activeSpeaker,
    };
  }

  /** The session hosting the agent of this session's room (itself, when it is the designated one). */
  agentSessionOf(sessionId: string): string | null {
    return this.#roomOf.get(sessionId)?.agentSessionId ?? null;
  }

  /** Whether `participantId` is someone else in this session's room. */
  isOtherParticipant(sessionId: string, participantId: string): boolean {
    const room = this.#roomOf.get(sessionId);
    if (!room) return false;
    for (const p of room.participants.values()) if (p.participantId === participantId) return p.sessionId !== sessionId;
    return false;
  }

  /** Closes every room at once (server stop). */
  clear(): void {
    for (const room of [...this.#rooms.values()]) this.#close(room);
  }

  #open(name: string): RoomRecord {
    const room: RoomRecord = { name, participants: new Map(), agentSessionId: null, activeSpeaker: null, emptyTimer: null };
    this.#rooms.set(name, room);
    this.safeEmit('roomopened', name);
    return room;
  }

  #close(room: RoomRecord): void {
    if (room.emptyTimer) clearTimeout(room.emptyTimer);
    room.emptyTimer = null;
    if (this.#rooms.get(room.name) !== room) return;
    this.#rooms.delete(room.name);
    for (const p of room.participants.values()) this.#roomOf.delete(p.sessionId);
    this.safeEmit('roomclosed', room.name);
  }

  #broadcast(room: RoomRecord, message: ServerMessage, exceptSessionId?: string): void {
    for (const p of room.participants.values()) if (p.sessionId !== exceptSessionId) this.#deliver(p.sessionId, message);
  }
}

function info(p: Participant): ParticipantInfo {
  return { participantId: p.participantId, identity: p.identity, muted: p.muted };
}
