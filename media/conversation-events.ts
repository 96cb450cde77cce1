// What a conversation (voice agent, speech-to-speech; built outside media/ and plugged into the
// worker through conversation-hook.ts) reports; the media worker forwards it to the session
// directory in the main thread.
import type { MediaSession } from './media-session.ts';

/** Wall-clock instants (epoch ms) of the agent's work on one turn; null where a stage did not run. */
export interface AgentTimings {
  endOfTurnAt: number | null;
  sttFinalAt: number | null;
  agentFirstTextAt: number | null;
  ttsFirstAudioAt: number | null;
}

export interface TurnText {
  userText: string | null;
  agentText: string;
  heardText: string;
  /** Rooms: the participant whose turn it was (null: the session's own participant, or none). */
  speaker?: string | null;
}

export type ConversationEvents = {
  utterance: [info: { speechStartAt: number; speechEndAt: number; endOfTurnAt: number; audioMs: number; accepted: boolean }];
  /** `skipped`: the turn had nothing to answer (no words recognised): no turn is recorded. */
  response: [info: { phase: 'start' | 'end'; at: number; audioMs: number; heardMs: number; interrupted: boolean; text: TurnText | null; timings?: AgentTimings; skipped?: boolean }];
  /** `speaker`: rooms where the agent listens to everyone, the participant speaking. */
  transcript: [info: { role: 'user' | 'agent'; text: string; final: boolean; speaker?: string }];
  bargein: [info: { at: number }];
  error: [info: { code: string; message: string; retryable: boolean }];
};

export interface Conversation {
  say(text: string): void;
  /** Rooms, agent listening to everyone: hears another participant's session too (not every kind can). */
  listenTo?(media: MediaSession, speaker: string): void;
  stopListening?(media: MediaSession): void;
  close(): void;
}

/** A conversation event as it crosses the worker boundary. */
export type ConversationWorkerEvent = {
  [K in keyof ConversationEvents]: { kind: K; info: ConversationEvents[K][0] };
}[keyof ConversationEvents];
