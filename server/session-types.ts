// Session states and conversation turns: the vocabulary shared by the session directory, the wire
// protocol and telemetry.

export const SESSION_STATES = [
  'connecting',
  'connected',
  'listening',
  'processing',
  'responding',
  'reconnecting',
  'disconnected',
  'error',
] as const;
export type SessionState = (typeof SESSION_STATES)[number];

/** One exchange: what the user said and what the agent answered, with its timings. */
export interface ConversationTurn {
  turnId: string;
  /** 0-based position in the session's history; never reused. */
  index: number;
  mode: string;
  /** Text of the user's utterance; null where the mode has no speech recognition (echo). */
  userText: string | null;
  /** Text of the agent's answer; null where the mode produces no text (echo). */
  agentText: string | null;
  /** The part of the answer the user actually received; equal to agentText unless interrupted. */
  heardText: string | null;
  interrupted: boolean;
  /** Rooms where the agent listens to everyone: the participant who spoke this turn. */
  speaker?: string;
  /** Length of the user's utterance and of the whole answer, in ms of audio. */
  userAudioMs: number;
  agentAudioMs: number;
  /**
   * Answer audio the user can be assumed to have received, in ms: all of it normally; when the media
   * path died mid-answer, only what was sent before the last packet received from the client.
   */
  heardAudioMs: number;
  timings: TurnTimings;
}

/** Wall-clock instants (ms since the Unix epoch) of one turn. */
export interface TurnTimings {
  speechStartAt: number;
  speechEndAt: number;
  /** When the server decided the user's turn had ended (end of endpointing silence). */
  endOfTurnAt: number;
  firstPacketOutAt: number | null;
  lastPacketOutAt: number | null;
  /** Agent modes: final transcript, first agent text, first synthesised audio (null where not run). */
  sttFinalAt?: number | null;
  agentFirstTextAt?: number | null;
  ttsFirstAudioAt?: number | null;
}
