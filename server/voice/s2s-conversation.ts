/**
 * `s2s` mode: one speech-to-speech provider (OpenAI Realtime) hears the user and answers with
 * audio. Our listening pipeline still runs in front of it: only the user's turns (with pre-roll)
 * are streamed, so silent sessions cost nothing upstream, followed by enough silence for the
 * provider's own turn detection to close the turn; and our barge-in and echo guard decide when the
 * answer stops.
 */
import type { MediaSession } from '../../media/media-session.ts';
import type { ListenEvent } from '../../media/listening-pipeline.ts';
import { TypedEmitter } from '../../media/typed-emitter.ts';
import type { ConversationEvents } from '../../media/conversation-events.ts';
import { isAbort, ProviderError, type S2sProvider, type S2sSession } from '../../providers/types.ts';

export interface SpeechToSpeechOptions {
  language: string;
  instructions: string;
  /** Silence streamed after our end of turn, so the provider's VAD closes the turn too. */
  trailingSilenceMs: number;
}

export const DEFAULT_SPEECH_TO_SPEECH_OPTIONS: SpeechToSpeechOptions = {
  language: 'en-US',
  instructions: 'You are a helpful voice assistant. Answer briefly, in plain spoken sentences.',
  trailingSilenceMs: 800,
};

const FRAME = new Int16Array(320);

export class SpeechToSpeechConversation extends TypedEmitter<ConversationEvents> {
  readonly #media: MediaSession;
  readonly #options: SpeechToSpeechOptions;
  readonly #abort = new AbortController();
  #live: S2sSession | null = null;
  #userText = '';
  #agentText = '';
  #turnStartAt = 0;
  /** Audio of a turn that began over an answer: it reaches the provider only once it is a barge-in. */
  #held: Int16Array[] | null = null;
  /** The user's turn ended and its answer has not started playing. */
  #awaitingAnswer = false;
  #closed = false;

  constructor(media: MediaSession, provider: S2sProvider, options: Partial<SpeechToSpeechOptions> = {}) {
    super();
    this.#media = media;
    this.#options = { ...DEFAULT_SPEECH_TO_SPEECH_OPTIONS, ...options };
    void this.#connect(provider);
    media.on('listen', (event, at) => this.#onListen(event, at));
    media.on('response', (info) => {
      if (info.phase === 'start') {
        this.safeEmit('response', { ...info, text: null });
        return;
      }
      const agentText = this.#agentText.trim();
      const heardText = info.interrupted ? (info.playout?.heardText ?? '') : agentText;
      // Stopped by a barge-in or a dead media path: the provider stops too, and keeps only what was heard.
      if (info.interrupted) this.#live?.cancelResponse(heardText);
      this.safeEmit('response', { ...info, text: { userText: this.#userText || null, agentText, heardText } });
      this.#userText = '';
      this.#agentText = '';
    });
  }

  say(text: string): void {
    this.#live?.say(text);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    this.#live?.close();
    this.removeAllListeners();
  }

  async #connect(provider: S2sProvider): Promise<S2sSession | null> {
    try {
      const session = await provider.connect({ sampleRate: 16000, instructions: this.#options.instructions, history: [], signal: this.#abort.signal });
      this.#live = session;
      void this.#read(session);
      return session;
    } catch (error) {
      if (!isAbort(error)) this.#reportError(error);
      return null;
    }
  }

  async #read(session: S2sSession): Promise<void> {
    const playout = this.#media.playout;
    try {
      for await (const event of session) {
        if (this.#closed) return;
        switch (event.type) {
          case 'audio':
            if (!playout.active) {
              playout.begin();
              // The provider may send an answer's transcript ahead of its audio: that text starts it.
              playout.addText(this.#agentText);
              this.#awaitingAnswer = false;
            }
            playout.push(event.frame);
            break;
          case 'transcript':
            if (event.role === 'user' && event.final) this.#userText = event.text;
            if (event.role === 'agent') {
              // The adapter drops a cancelled answer's text, so text here is the current (or next) answer's.
              if (playout.active) playout.addText(event.text.slice(this.#agentText.length));
              this.#agentText = event.text;
            }
            this.safeEmit('transcript', event);
            break;
          case 'response_done':
            if (playout.active) playout.end();
            else if (this.#awaitingAnswer) this.#endTurnUnanswered();
            break;
          default:
            break;
        }
      }
    } catch (error) {
      if (!isAbort(error) && !this.#closed) this.#reportError(error);
    } finally {
      if (this.#live === session) this.#live = null;
      if (!this.#closed) {
        // The provider is gone: what arrived of the answer still plays out; a turn still waiting ends unanswered.
        if (playout.active) playout.end();
        else if (this.#awaitingAnswer) this.#endTurnUnanswered();
      }
    }
  }

  #onListen(event: ListenEvent, at: number): void {
    const session = this.#live;
    switch (event.type) {
      case 'speech_start':
        this.#turnStartAt = at;
        // Over an answer, speech may be a "mhm" that our pipeline drops: the provider's own VAD must
        // not hear it (it would cut its answer, or take it as the start of the next turn).
        if (this.#media.responding) {
          this.#held = [...event.preRoll];
          return;
        }
        this.#held = null;
        for (const frame of event.preRoll) session?.pushAudio({ samples: frame, sampleRate: 16000 });
        return;
      case 'audio':
        if (this.#held) this.#held.push(event.frame);
        else session?.pushAudio({ samples: event.frame, sampleRate: 16000 });
        return;
      case 'barge_in': {
        this.#media.interruptResponse(); // ends the answer: the provider's is cancelled (see 'response')
        // The interrupting speech is the next turn: what it said so far goes up now.
        const held = this.#held ?? [];
        this.#held = null;
        for (const frame of held) session?.pushAudio({ samples: frame, sampleRate: 16000 });
        this.safeEmit('bargein', { at });
        return;
      }
      case 'discarded':
        this.#held = null;
        return;
      case 'end_of_turn': {
        this.#held = null;
        for (let ms = 0; ms < this.#options.trailingSilenceMs; ms += 20) session?.pushAudio({ samples: FRAME, sampleRate: 16000 });
        const speechEndAt = at - (event.atMs - event.speechEndAtMs);
        this.safeEmit('utterance', { speechStartAt: this.#turnStartAt, speechEndAt, endOfTurnAt: at, audioMs: event.voicedMs, accepted: true });
        // Without a provider session (it failed, or is still connecting) nothing will answer this turn.
        if (session) this.#awaitingAnswer = true;
        else this.#endTurnUnanswered();
        return;
      }
      default:
        return;
    }
  }

  /**
   * Ends a turn that gets no audio (no provider session, or its answer ended before any audio), so
   * the session goes back to listening. Recorded as a turn only if the provider heard words.
   */
  #endTurnUnanswered(): void {
    this.#awaitingAnswer = false;
    const userText = this.#userText;
    this.#userText = '';
    this.#agentText = '';
    const text = userText ? { userText, agentText: '', heardText: '' } : null;
    this.safeEmit('response', { phase: 'end', at: Date.now(), audioMs: 0, heardMs: 0, interrupted: false, text, skipped: !userText });
  }

  #reportError(error: unknown): void {
    const e = error instanceof ProviderError ? error : null;
    this.safeEmit('error', {
      code: 'PROVIDER_ERR_S2S',
      message: e ? `speech-to-speech provider ${e.provider} failed: ${e.code}` : `speech-to-speech failed: ${(error as Error)?.message ?? String(error)}`,
      retryable: e?.retryable ?? true,
    });
  }
}
