// The events of a VoiceClient and the types they carry: the SDK's public vocabulary, kept apart from
// the client's lifecycle code.
import type { QualityInfo, ServerMessage } from '../../signaling/protocol.ts';
import type { ConversationTurn, SessionState } from '../../server/session-types.ts';

export type JoinedInfo = Extract<ServerMessage, { type: 'joined' }>;
export type ResumedInfo = Extract<ServerMessage, { type: 'resumed' }>;
export type VoiceClientErrorInfo = { code: string; message: string; retryable: boolean };
/** Live text of the conversation (agent modes): each one replaces the previous one of the same role. */
export type TranscriptInfo = Omit<Extract<ServerMessage, { type: 'transcript' }>, 'type'>;
/** A turn-taking decision of the server (agent modes): the user's turn ended, or the user interrupted the answer. */
export type SpeechEvent = Extract<ServerMessage, { type: 'speech' }>['event'];
/** Rooms: the room snapshot, participant comings and goings, the active speaker, the agent's listener, the track map. */
export type RoomEvent = Extract<ServerMessage, { type: 'room' | 'participant' | 'active_speaker' | 'agent' | 'tracks' }>;
/** What an outage is about: the media path (ICE, or a replaced peer connection) or the signaling socket. */
export type LinkCause = 'media' | 'signaling';

export type VoiceClientEvents = {
  joined: [info: JoinedInfo];
  state: [state: SessionState, previous: SessionState | null];
  turn: [turn: ConversationTurn];
  /** The user's words as recognised (partial, then final) and the agent's answer as written. Lost while the socket is down. */
  transcript: [transcript: TranscriptInfo];
  speech: [event: SpeechEvent];
  error: [error: VoiceClientErrorInfo];
  connectionstatechange: [state: RTCPeerConnectionState];
  micLevel: [level: number];
  /** An outage began: ICE is restarting, or the socket is lost and being resumed. */
  reconnecting: [cause: LinkCause];
  /** The outage is over: the session is on a live socket and media runs on fresh ICE credentials. */
  reconnected: [info: { durationMs: number; causes: LinkCause[] }];
  /** The session continues on a new socket; its `missedTurns` have been emitted as `turn` first. */
  resumed: [info: ResumedInfo];
  quality: [quality: QualityInfo];
  /** Rooms: every room message as it arrives (docs/protocol.md §15). */
  room: [event: RoomEvent];
  closed: [reason: string];
};
