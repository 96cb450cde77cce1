// Messages between the main thread (session directory) and a media worker thread.
import type { IceCandidateInit, PeerConnectionState } from '../peer.ts';
import type { MediaSessionOptions, QualityReport } from '../media-session.ts';
import type { WorkerStats, WorkerTelemetry } from './worker-stats.ts';
import type { ConversationWorkerEvent } from '../conversation-events.ts';
import type { VoiceConfig } from '../../server/voice-config.ts';
import type { TrackAssignment } from '../room.ts';

/** A session's place in its room. `agent`: the agent (or the echo) listens to this participant. */
export interface RoomSeat {
  name: string;
  participantId: string;
  agent: boolean;
  /** Receives the other participants' audio (the `subscribe` grant); false: nobody's, until it subscribes. */
  subscribe: boolean;
}

export interface WorkerInit {
  workerIndex: number;
  portRange: [number, number];
  hostAddresses: string[];
  announcedAddress: string | null;
  /** Settings of the agent modes, read by the conversation factory the worker entry installs. */
  voice: VoiceConfig;
  /** Rooms: the agent listens to its designated participant only, or to everyone (ROOM_AGENT_LISTENS). */
  roomAgentListens: 'designated' | 'all';
}

export type WorkerCommand =
  | { op: 'open'; sessionId: string; options: MediaSessionOptions; room: RoomSeat }
  | { op: 'offer'; sessionId: string; sdp: string; requestId: number }
  | { op: 'answer'; sessionId: string; sdp: string; requestId: number }
  | { op: 'candidate'; sessionId: string; candidate: IceCandidateInit | null; requestId: number }
  /** Server-initiated ICE restart: replies with our restart offer. */
  | { op: 'restartIce'; sessionId: string; requestId: number }
  /** Full rejoin: the client has a new peer connection; ours is replaced. */
  | { op: 'replacePeer'; sessionId: string; requestId: number }
  | { op: 'mute'; sessionId: string; muted: boolean }
  /** Make the agent speak a text now. */
  | { op: 'say'; sessionId: string; text: string; requestId: number }
  | { op: 'close'; sessionId: string }
  /** Rooms: stop or resume forwarding one participant to this session's client. */
  | { op: 'subscription'; sessionId: string; participantId: string; muted: boolean }
  /** Rooms: forward only these participants to this session's client (null: everyone). */
  | { op: 'subscribe'; sessionId: string; participantIds: string[] | null }
  /** Rooms: the agent now listens to this session's participant (the previous one left). */
  | { op: 'agent'; sessionId: string }
  /** Re-sends an unanswered server offer (lost with a socket), or offers if tracks changed. */
  | { op: 'renegotiate'; sessionId: string }
  | { op: 'stats'; requestId: number; reset: boolean };

export type WorkerReply =
  | { ev: 'reply'; requestId: number; ok: true; sdp?: string; stats?: WorkerStats }
  | { ev: 'reply'; requestId: number; ok: false; code: string; message: string };

export type WorkerEvent =
  | WorkerReply
  | { ev: 'ready' }
  | { ev: 'candidate'; sessionId: string; candidate: IceCandidateInit | null }
  | { ev: 'connection'; sessionId: string; state: PeerConnectionState }
  | { ev: 'speech'; sessionId: string; phase: 'start'; at: number }
  | { ev: 'utterance'; sessionId: string; speechStartAt: number; speechEndAt: number; endOfTurnAt: number; audioMs: number; accepted: boolean }
  | { ev: 'response'; sessionId: string; phase: 'start' | 'end'; at: number; audioMs: number; heardMs: number; interrupted: boolean }
  | { ev: 'media'; sessionId: string; state: 'lost' | 'restored'; at: number; silentMs: number }
  | { ev: 'quality'; sessionId: string; report: QualityReport }
  /** Once a second: what the worker measured since the previous report (deltas), for telemetry. */
  | { ev: 'telemetry'; report: WorkerTelemetry }
  /** Sessions that received media since the last report (sent about once a second). */
  | { ev: 'activity'; sessionIds: string[] }
  | { ev: 'closed'; sessionId: string }
  /** Rooms: a server offer for the client (outbound tracks changed). */
  | { ev: 'offer'; sessionId: string; sdp: string }
  /** Rooms: which m-line carries which participant; sent before each server offer. */
  | { ev: 'tracks'; sessionId: string; tracks: TrackAssignment[] }
  /** Rooms: who is speaking (null: nobody for a while). */
  | { ev: 'activespeaker'; room: string; participantId: string | null }
  /** Agent modes: the conversation's own events (turns with text, transcripts, errors, fallbacks). */
  | { ev: 'conversation'; sessionId: string; event: ConversationWorkerEvent }
  /** A provider chain of this worker moved on to its next provider (cloud -> local, ...). */
  | { ev: 'providerfallback'; info: ProviderFallbackInfo };

export interface ProviderFallbackInfo {
  kind: string;
  from: string;
  to: string;
  reason: string;
}
