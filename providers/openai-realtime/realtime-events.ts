/**
 * The OpenAI Realtime wire protocol, GA version (no `OpenAI-Beta` header; `session.type:
 * 'realtime'`, `audio.input`/`audio.output`, `response.output_audio.*` events): the client
 * events the adapter sends, the server events it reads, and audio as base64 pcm16 at 24 kHz.
 * The beta names of the response audio events are read too, as some compatible servers still
 * send them.
 */
import type { AgentMessage } from '../types.ts';

/** The only PCM rate the Realtime API takes and returns. */
export const REALTIME_SAMPLE_RATE = 24000;

export interface RealtimeSessionConfig {
  instructions: string;
  voice: string;
  transcriptionModel: string;
  vadThreshold: number;
  vadPrefixPaddingMs: number;
  vadSilenceDurationMs: number;
}

export interface ClientEvent {
  type: string;
  event_id?: string;
  [field: string]: unknown;
}

const PCM_24K = { type: 'audio/pcm', rate: REALTIME_SAMPLE_RATE };

export function sessionUpdate(config: RealtimeSessionConfig): ClientEvent {
  return {
    type: 'session.update',
    session: {
      type: 'realtime',
      instructions: config.instructions,
      output_modalities: ['audio'],
      audio: {
        input: {
          format: PCM_24K,
          transcription: { model: config.transcriptionModel },
          turn_detection: {
            type: 'server_vad',
            threshold: config.vadThreshold,
            prefix_padding_ms: config.vadPrefixPaddingMs,
            silence_duration_ms: config.vadSilenceDurationMs,
            create_response: true,
            interrupt_response: true,
          },
        },
        output: { format: PCM_24K, voice: config.voice },
      },
    },
  };
}

/** An earlier turn replayed as text: the model keeps the context without the audio. */
export function historyItem(message: AgentMessage): ClientEvent {
  const content = message.role === 'user' ? { type: 'input_text', text: message.text } : { type: 'output_text', text: message.text };
  return { type: 'conversation.item.create', item: { type: 'message', role: message.role, content: [content] } };
}

export function audioAppend(samples: Int16Array): ClientEvent {
  return { type: 'input_audio_buffer.append', audio: encodePcm16(samples) };
}

export function responseCreate(instructions: string): ClientEvent {
  return { type: 'response.create', response: { instructions, output_modalities: ['audio'] } };
}

export function responseCancel(responseId: string | undefined): ClientEvent {
  return responseId ? { type: 'response.cancel', response_id: responseId } : { type: 'response.cancel' };
}

export function itemTruncate(itemId: string, audioEndMs: number): ClientEvent {
  return { type: 'conversation.item.truncate', item_id: itemId, content_index: 0, audio_end_ms: audioEndMs };
}

export interface RealtimeError {
  type: string;
  code: string;
  message: string;
  /** The client event that caused it, when the server knows. */
  eventId: string;
}

/** The server events the adapter acts on, under names that hide the GA/beta spelling. */
export type ServerEvent =
  | { kind: 'session_created' }
  | { kind: 'session_updated' }
  | { kind: 'error'; error: RealtimeError }
  | { kind: 'speech_started' }
  | { kind: 'speech_stopped' }
  | { kind: 'user_transcript_delta'; itemId: string; delta: string }
  | { kind: 'user_transcript_done'; itemId: string; transcript: string }
  | { kind: 'response_created'; responseId: string }
  | { kind: 'audio_delta'; responseId: string; itemId: string; samples: Int16Array }
  | { kind: 'agent_transcript_delta'; responseId: string; itemId: string; delta: string }
  | { kind: 'agent_transcript_done'; responseId: string; itemId: string; transcript: string }
  | { kind: 'response_done'; responseId: string };

/** Throws SyntaxError on a message that is not JSON; undefined for events the adapter does not use. */
export function parseServerEvent(text: string): ServerEvent | undefined {
  const event = JSON.parse(text) as Record<string, unknown>;
  const itemId = str(event.item_id);
  const responseId = str(event.response_id);
  switch (event.type) {
    case 'session.created':
      return { kind: 'session_created' };
    case 'session.updated':
      return { kind: 'session_updated' };
    case 'error': {
      const error = (event.error ?? {}) as Record<string, unknown>;
      return { kind: 'error', error: { type: str(error.type), code: str(error.code), message: str(error.message), eventId: str(error.event_id) } };
    }
    case 'input_audio_buffer.speech_started':
      return { kind: 'speech_started' };
    case 'input_audio_buffer.speech_stopped':
      return { kind: 'speech_stopped' };
    case 'conversation.item.input_audio_transcription.delta':
      return { kind: 'user_transcript_delta', itemId, delta: str(event.delta) };
    case 'conversation.item.input_audio_transcription.completed':
      return { kind: 'user_transcript_done', itemId, transcript: str(event.transcript) };
    case 'response.created':
      return { kind: 'response_created', responseId: str((event.response as Record<string, unknown> | undefined)?.id) };
    case 'response.output_audio.delta':
    case 'response.audio.delta':
      return { kind: 'audio_delta', responseId, itemId, samples: decodePcm16(str(event.delta)) };
    case 'response.output_audio_transcript.delta':
    case 'response.audio_transcript.delta':
      return { kind: 'agent_transcript_delta', responseId, itemId, delta: str(event.delta) };
    case 'response.output_audio_transcript.done':
    case 'response.audio_transcript.done':
      return { kind: 'agent_transcript_done', responseId, itemId, transcript: str(event.transcript) };
    case 'response.done':
      return { kind: 'response_done', responseId: str((event.response as Record<string, unknown> | undefined)?.id) };
    default:
      return undefined;
  }
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

// Little-endian on the wire, as on every host Node runs on here, so the bytes are used as they are.
export function encodePcm16(samples: Int16Array): string {
  return Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength).toString('base64');
}

export function decodePcm16(base64: string): Int16Array {
  const bytes = Buffer.from(base64, 'base64');
  // slice() copies into a fresh, aligned buffer (pooled Buffers may start at an odd offset).
  return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + (bytes.length & ~1)));
}
