// What a VoiceClient is configured with (client/sdk/voice-client.ts), and the defaults.
import type { SessionMode } from '../../signaling/protocol.ts';
import { DEFAULT_ICE_RESTART_RETRY_MS } from './ice-restart.ts';
import type { ReconnectBackoffOptions } from './reconnect-backoff.ts';

export interface VoiceClientOptions {
  /** Signaling URL; defaults to ws(s)://<current host>/v1/signal. */
  url: string;
  room?: string;
  /**
   * The access token sent in `join` and `resume`: a JWT, or a function called before each of them
   * (so that a short-lived token is fetched afresh for a resume). A rejection fails that join or
   * resume attempt.
   */
  token?: string | (() => string | Promise<string>);
  /** The session's mode (`stt_tts`: the voice agent, `echo`: plays the utterance back); the server's default when absent. */
  mode?: SessionMode;
  /** Audio to send instead of capturing the microphone; the caller keeps ownership of its tracks. */
  mediaStream?: MediaStream;
  /** Where the agent's audio plays; a detached `<audio autoplay>` is created when absent. */
  audioElement?: HTMLAudioElement;
  pingIntervalMs: number;
  /** A ping with no reply within this time means the socket is dead: it is dropped and resumed. */
  pongTimeoutMs: number;
  micLevelIntervalMs: number;
  /** Resume attempts stop this long after the socket was lost; the client then closes. */
  reconnectDeadlineMs: number;
  /** The rest of the resume schedule (first attempt at once, then 250 ms doubling to 5 s, ±20 %). */
  reconnectBackoff: Partial<Omit<ReconnectBackoffOptions, 'deadlineMs'>>;
  /** One resume attempt (socket open to `resumed`) may take this long before the next one. */
  resumeAttemptTimeoutMs: number;
  /** An ICE restart that has not recovered within this time is restarted again. */
  iceRestartRetryMs: number;
}
export const DEFAULT_VOICE_CLIENT_OPTIONS = {
  pingIntervalMs: 15_000,
  pongTimeoutMs: 5_000,
  micLevelIntervalMs: 100,
  reconnectDeadlineMs: 30_000,
  reconnectBackoff: {},
  resumeAttemptTimeoutMs: 5_000,
  iceRestartRetryMs: DEFAULT_ICE_RESTART_RETRY_MS,
} as const;
