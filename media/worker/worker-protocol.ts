// Messages between the main thread (session directory) and a media worker thread.
import type { IceCandidateInit, PeerConnectionState } from '../peer.ts';
import type { MediaSessionOptions, QualityReport } from '../media-session.ts';
import type { WorkerStats, WorkerTelemetry } from './worker-stats.ts';

export interface WorkerInit {
  workerIndex: number;
  portRange: [number, number];
  hostAddresses: string[];
  announcedAddress: string | null;
}

export type WorkerCommand =
  | { op: 'open'; sessionId: string; options: MediaSessionOptions }
  | { op: 'offer'; sessionId: string; sdp: string; requestId: number }
  | { op: 'answer'; sessionId: string; sdp: string; requestId: number }
  | { op: 'candidate'; sessionId: string; candidate: IceCandidateInit | null; requestId: number }
  /** Server-initiated ICE restart: replies with our restart offer. */
  | { op: 'restartIce'; sessionId: string; requestId: number }
  /** Full rejoin: the client has a new peer connection; ours is replaced. */
  | { op: 'replacePeer'; sessionId: string; requestId: number }
  | { op: 'mute'; sessionId: string; muted: boolean }
  | { op: 'close'; sessionId: string }
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
  | { ev: 'closed'; sessionId: string };
