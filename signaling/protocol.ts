// The WebSocket wire protocol at /v1/signal: every message type, its JSON schema and its TypeScript type.
// docs/protocol.md is the human reference; keep the two in step.
import { Ajv, type ValidateFunction } from 'ajv';
import type { ConversationTurn, SessionState } from '../server/session-types.ts';

export const PROTOCOL_VERSION = 1;
/** `stt_tts`: local or cloud STT -> agent -> TTS; `s2s`: one speech-to-speech provider; `echo`: plays the user's utterance back. */
export const SESSION_MODES = ['stt_tts', 's2s', 'echo'] as const;
export type SessionMode = (typeof SESSION_MODES)[number];

export interface IceCandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

// client -> server
export type ClientMessage =
  | { type: 'join'; room?: string; mode?: string; token?: string }
  | { type: 'offer'; sdp: string }
  | { type: 'answer'; sdp: string }
  | { type: 'candidate'; candidate: IceCandidateInit | null }
  | { type: 'leave' }
  | { type: 'ping'; id?: string | number }
  | { type: 'resume'; sessionId: string; resumeToken: string; lastTurnIndex?: number; media?: 'keep' | 'new'; token?: string }
  | { type: 'mute'; muted: boolean }
  | { type: 'history'; afterIndex?: number }
  /** Rooms: stop (or resume) receiving one participant; its track stays. */
  | { type: 'subscription'; participantId: string; muted: boolean }
  /** Rooms: receive only these participants (null: everyone, newcomers included); tracks come and go. */
  | { type: 'subscribe'; participantIds: string[] | null };

// server -> client
export interface IceServerInfo {
  urls: string[];
  username?: string;
  credential?: string;
}
export type ServerMessage =
  | { type: 'joined'; sessionId: string; resumeToken: string; iceServers: IceServerInfo[]; room: string; mode: SessionMode; protocol: number }
  | { type: 'offer' | 'answer'; sdp: string }
  | { type: 'candidate'; candidate: IceCandidateInit | null }
  | { type: 'state'; state: SessionState; previous: SessionState | null; reason?: string }
  | { type: 'turn'; turn: ConversationTurn }
  | { type: 'error'; code: string; message: string; retryable: boolean }
  | { type: 'pong'; id?: string | number }
  | {
      type: 'resumed';
      sessionId: string;
      resumeToken: string;
      state: SessionState;
      room: string;
      mode: SessionMode;
      /** Turns after the client's lastTurnIndex, in order. */
      missedTurns: ConversationTurn[];
      /** `kept`: the existing peer connection continues (restart ICE if needed); `new`: send a new offer. */
      media: 'kept' | 'new';
    }
  | { type: 'history'; turns: ConversationTurn[] }
  /** The server is restarting: the session goes on until `deadlineMs`, then ends (SERVER_ERR_SHUTDOWN). */
  | { type: 'draining'; deadlineMs: number }
  | { type: 'quality'; quality: QualityInfo }
  /** Live text: the user's words as recognised (partial, then final) and the agent's answer as written. */
  | { type: 'transcript'; role: 'user' | 'agent'; text: string; final: boolean; speaker?: string }
  /** Turn-taking events from the listening pipeline. */
  | { type: 'speech'; event: 'end_of_turn' | 'barge_in' }
  /** Rooms: the room as this session sees it, after `joined` and `resumed`. */
  | {
      type: 'room';
      room: string;
      /** This session's participant id. */
      participantId: string;
      participants: ParticipantInfo[];
      /** The participant the agent listens to (answers go to everyone). */
      agentListensTo: string | null;
      /** The agent hears every participant (ROOM_AGENT_LISTENS=all; turns name their speaker); `agentListensTo` hosts it. */
      agentListensToAll: boolean;
      activeSpeaker: string | null;
    }
  | { type: 'participant'; event: 'joined' | 'left' | 'muted' | 'unmuted'; participant: ParticipantInfo }
  | { type: 'active_speaker'; participantId: string | null }
  /** Rooms: the participant the agent listened to left; it listens to this one now. */
  | { type: 'agent'; listensTo: string | null }
  /** Rooms: which m-line (mid) carries which participant; sent before each server offer that changes them. */
  | { type: 'tracks'; tracks: { mid: string; participantId: string }[] };

/** A room participant as the others see it. `identity`: the access token's `sub` (null without one). */
export interface ParticipantInfo {
  participantId: string;
  identity: string | null;
  muted: boolean;
}

/** Link quality as the server sees it; sent on each RTCP receiver report from the client (every 1-5 s). */
export interface QualityInfo {
  /** Loss of our audio reported by the client (RTCP), smoothed, percent. */
  lossPercent: number;
  /** Interarrival jitter of our audio at the client, ms. */
  jitterMs: number;
  rttMs: number | null;
  /** Opus bitrate we send at, bits/s. */
  bitrate: number;
  fec: boolean;
  fecLossPercent: number;
  /** Target delay of our jitter buffer for the client's audio, ms. */
  jitterBufferDelayMs: number;
  /** Loss of the client's audio measured by our jitter buffer over the session, percent. */
  inboundLossPercent: number;
}

export const MAX_SDP_CHARS = 32 * 1024;
export const MAX_ROOM_CHARS = 64;
const ROOM_PATTERN = '^[A-Za-z0-9_.-]+$';

const sdp = { type: 'string', minLength: 1, maxLength: MAX_SDP_CHARS } as const;
const candidateInit = {
  type: 'object',
  additionalProperties: false,
  required: ['candidate'],
  properties: {
    candidate: { type: 'string', maxLength: 1024 },
    sdpMid: { type: ['string', 'null'], maxLength: 64 },
    sdpMLineIndex: { type: ['integer', 'null'], minimum: 0, maximum: 64 },
    usernameFragment: { type: ['string', 'null'], maxLength: 256 },
  },
} as const;

const TOKEN = { type: 'string', minLength: 1, maxLength: 128 } as const;
const TURN_INDEX = { type: 'integer', minimum: -1, maximum: 1_000_000 } as const;
const PARTICIPANT_ID = { type: 'string', minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9_-]+$' } as const;
export const MAX_SUBSCRIBE_IDS = 64;
/** An access token (JWT, signaling/auth.ts); optional where the upgrade's Authorization header may carry it. */
const ACCESS_TOKEN = { type: 'string', minLength: 1, maxLength: 4096 } as const;

const messageSchemas = {
  join: {
    type: 'object',
    additionalProperties: false,
    required: ['type'],
    properties: {
      type: { const: 'join' },
      room: { type: 'string', minLength: 1, maxLength: MAX_ROOM_CHARS, pattern: ROOM_PATTERN },
      mode: { type: 'string', minLength: 1, maxLength: 32 },
      token: ACCESS_TOKEN,
    },
  },
  offer: { type: 'object', additionalProperties: false, required: ['type', 'sdp'], properties: { type: { const: 'offer' }, sdp } },
  answer: { type: 'object', additionalProperties: false, required: ['type', 'sdp'], properties: { type: { const: 'answer' }, sdp } },
  candidate: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'candidate'],
    properties: { type: { const: 'candidate' }, candidate: { anyOf: [{ type: 'null' }, candidateInit] } },
  },
  leave: { type: 'object', additionalProperties: false, required: ['type'], properties: { type: { const: 'leave' } } },
  ping: {
    type: 'object',
    additionalProperties: false,
    required: ['type'],
    properties: { type: { const: 'ping' }, id: { type: ['string', 'integer'], maxLength: 64 } },
  },
  resume: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'sessionId', 'resumeToken'],
    properties: {
      type: { const: 'resume' },
      sessionId: TOKEN,
      resumeToken: TOKEN,
      lastTurnIndex: TURN_INDEX,
      media: { enum: ['keep', 'new'] },
      token: ACCESS_TOKEN,
    },
  },
  mute: { type: 'object', additionalProperties: false, required: ['type', 'muted'], properties: { type: { const: 'mute' }, muted: { type: 'boolean' } } },
  history: { type: 'object', additionalProperties: false, required: ['type'], properties: { type: { const: 'history' }, afterIndex: TURN_INDEX } },
  subscription: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'participantId', 'muted'],
    properties: { type: { const: 'subscription' }, participantId: PARTICIPANT_ID, muted: { type: 'boolean' } },
  },
  subscribe: {
    type: 'object',
    additionalProperties: false,
    required: ['type', 'participantIds'],
    properties: {
      type: { const: 'subscribe' },
      participantIds: { anyOf: [{ type: 'null' }, { type: 'array', maxItems: MAX_SUBSCRIBE_IDS, uniqueItems: true, items: PARTICIPANT_ID }] },
    },
  },
} as const;

export type ClientMessageType = keyof typeof messageSchemas;
const ajv = new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
const validators = new Map<string, ValidateFunction>(
  Object.entries(messageSchemas).map(([type, schema]) => [type, ajv.compile(schema)]),
);

export type ParseResult =
  | { ok: true; message: ClientMessage }
  | { ok: false; code: 'SIG_ERR_BAD_JSON' | 'SIG_ERR_UNKNOWN_TYPE' | 'SIG_ERR_BAD_MESSAGE' | 'SIG_ERR_SDP_TOO_LARGE'; message: string };

/** Parses and validates one inbound text frame. Never throws. */
export function parseClientMessage(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: 'SIG_ERR_BAD_JSON', message: 'message is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'SIG_ERR_BAD_MESSAGE', message: 'message must be a JSON object' };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') {
    return { ok: false, code: 'SIG_ERR_BAD_MESSAGE', message: 'message has no string "type" field' };
  }
  const validate = validators.get(type);
  if (!validate) {
    return { ok: false, code: 'SIG_ERR_UNKNOWN_TYPE', message: `unknown message type "${type.slice(0, 32)}"` };
  }
  if (!validate(value)) {
    const err = validate.errors?.[0];
    if (err?.keyword === 'maxLength' && err.instancePath === '/sdp') {
      return { ok: false, code: 'SIG_ERR_SDP_TOO_LARGE', message: `the SDP exceeds ${MAX_SDP_CHARS} characters` };
    }
    const where = err?.instancePath || '(message)';
    const detail = err?.keyword === 'additionalProperties'
      ? `unexpected field "${String((err.params as { additionalProperty?: string }).additionalProperty)}"`
      : `${where} ${err?.message ?? 'is invalid'}`;
    return { ok: false, code: 'SIG_ERR_BAD_MESSAGE', message: `invalid "${type}" message: ${detail}` };
  }
  return { ok: true, message: value as ClientMessage };
}
