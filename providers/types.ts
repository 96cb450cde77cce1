/**
 * What the voice pipeline needs from speech-to-text, text-to-speech, speech-to-speech and the
 * agent. Vendor adapters (one folder each) import only this file and media/audio-frame.ts.
 *
 * Every stream is cancelled with an AbortSignal; every failure is a ProviderError that says
 * whether trying again can help.
 */
import type { AudioFrame } from '../media/audio-frame.ts';

export type { AudioFrame };

export type ProviderKind = 'stt' | 'tts' | 'agent' | 's2s';

/**
 * `code` is stable and machine-readable (`PROVIDER_ERR_HTTP_429`, `PROVIDER_ERR_TIMEOUT`, ...).
 * HTTP 4xx is not retryable except 408, 429 and 499; 5xx, timeouts and dropped connections are.
 */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  constructor(
    readonly provider: string,
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
  }

  static fromHttpStatus(provider: string, status: number, detail: string): ProviderError {
    const retryable = status >= 500 || status === 408 || status === 429 || status === 499;
    return new ProviderError(provider, `PROVIDER_ERR_HTTP_${status}`, `${provider}: HTTP ${status}: ${detail}`, retryable, status);
  }
}

/** Thrown (or rejected with) when the caller's AbortSignal fires: never retried, never counted as a failure. */
export function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || (error as { code?: string }).code === 'ABORT_ERR');
}

// ---------------------------------------------------------------------------------------------
// Speech to text

export type TranscriptEvent =
  | { type: 'partial'; text: string }
  /** One `final` follows every `flush()`, also when nothing was recognised (text ''). */
  | { type: 'final'; text: string; confidence?: number };

export interface SttOptions {
  /** Rate of the frames the pipeline pushes (16000 on the embedded default). */
  sampleRate: number;
  language: string;
  signal: AbortSignal;
}

/**
 * One stream per session. The pipeline pushes the audio of one user utterance (from speech
 * onset, pre-roll included), then calls `flush()` at end of turn; the stream answers with a
 * `final` and is ready for the next utterance. Iteration ends after `close()` or abort; a
 * failure rejects the iteration with a ProviderError.
 */
export interface SttStream extends AsyncIterable<TranscriptEvent> {
  pushAudio(frame: AudioFrame): void;
  flush(): void;
  /** Drop the current utterance without a final (the user was cut off, barge-in was rejected, ...). */
  discard(): void;
  close(): void;
}

export interface SttProvider {
  readonly name: string;
  stream(options: SttOptions): SttStream;
}

// ---------------------------------------------------------------------------------------------
// Text to speech

export interface TtsOptions {
  signal: AbortSignal;
  voice?: string;
}

/**
 * Text arrives as a stream (agent tokens); audio frames come out as soon as the first sentence
 * is synthesised, before the text stream ends. Frames may have any size and any rate; the
 * pipeline resamples and re-frames.
 */
export interface TtsProvider {
  readonly name: string;
  synthesize(text: AsyncIterable<string>, options: TtsOptions): AsyncIterable<AudioFrame>;
}

// ---------------------------------------------------------------------------------------------
// Agent

export interface AgentMessage {
  role: 'user' | 'assistant';
  text: string;
}

export interface AgentRequest {
  /** Earlier turns, oldest first; for an interrupted answer, only what the user heard. */
  history: readonly AgentMessage[];
  userText: string;
  signal: AbortSignal;
}

export interface Agent {
  readonly name: string;
  /** Streams the reply as text deltas. */
  respond(request: AgentRequest): AsyncIterable<string>;
}

// ---------------------------------------------------------------------------------------------
// Speech to speech

export type S2sEvent =
  | { type: 'audio'; frame: AudioFrame }
  /** The provider heard the user start speaking (its own VAD): stop playing the current answer. */
  | { type: 'speech_started' }
  | { type: 'speech_stopped' }
  | { type: 'transcript'; role: 'user' | 'agent'; text: string; final: boolean }
  /** The current answer is complete (all its audio has been emitted). */
  | { type: 'response_done' };

export interface S2sOptions {
  /** Rate of the frames the pipeline pushes. */
  sampleRate: number;
  instructions: string;
  history: readonly AgentMessage[];
  signal: AbortSignal;
  voice?: string;
}

export interface S2sSession extends AsyncIterable<S2sEvent> {
  pushAudio(frame: AudioFrame): void;
  /** Stop the answer in progress (barge-in); `heardText` is what the user actually heard. */
  cancelResponse(heardText?: string): void;
  /** Make the agent say something (announcements, greetings). */
  say(text: string): void;
  close(): void;
}

export interface S2sProvider {
  readonly name: string;
  connect(options: S2sOptions): Promise<S2sSession>;
}
