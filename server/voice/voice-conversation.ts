/**
 * The agent's side of one session in `stt_tts` mode, inside the media worker: the user's turn
 * goes to speech-to-text as it is spoken, its final transcript to the agent, the agent's text to
 * text-to-speech sentence by sentence, and the audio into the session's playout. Barge-in cancels
 * the agent and TTS (one AbortController per answer) and stops the playout at once.
 *
 * Owns nothing of the media: it listens to the MediaSession's `listen` and `response` events and
 * fills `media.playout`. In a room where the agent listens to everyone, other participants' sessions
 * are heard too (`listenTo`): each has its own listening pipeline and STT stream, every turn says
 * who spoke (`speaker`), and all answers play on the host session, one at a time.
 */
import type { MediaSession } from '../../media/media-session.ts';
import type { ListenEvent } from '../../media/listening-pipeline.ts';
import type { PlayoutResult } from '../../media/speech-playout.ts';
import { TypedEmitter } from '../../media/typed-emitter.ts';
import { isAbort, ProviderError, type Agent, type AgentMessage, type SttProvider, type SttStream, type TtsProvider } from '../../providers/types.ts';
import { EventQueue } from '../../providers/event-queue.ts';
import type { AgentTimings, ConversationEvents } from '../../media/conversation-events.ts';

export interface VoiceProviders {
  stt: SttProvider;
  tts: TtsProvider;
  agent: Agent;
}

export interface VoiceConversationOptions {
  language: string;
  voice?: string;
  /** Earlier turns (a resumed session), oldest first. */
  history: AgentMessage[];
  /** Longest wait for the final transcript after end of turn. */
  sttFinalTimeoutMs: number;
  /** Turns kept for the agent's context. */
  maxHistoryMessages: number;
  /** The host participant's id in its room (turns name their speaker); null outside rooms. */
  speaker: string | null;
  /** Gives another participant's session its listening pipeline (see `listenTo`). */
  attachPipeline: ((media: MediaSession) => void) | null;
}

export const DEFAULT_VOICE_CONVERSATION_OPTIONS: VoiceConversationOptions = {
  language: 'en-US',
  history: [],
  sttFinalTimeoutMs: 5000,
  maxHistoryMessages: 40,
  speaker: null,
  attachPipeline: null,
};

/** One voice the agent hears: a session's listen events and its own speech-to-text stream. */
interface Listener {
  media: MediaSession;
  speaker: string | null;
  stt: SttStream | null;
  /** Callers waiting for a final transcript, in flush order (finals come back in that order). */
  finalWaiters: Array<(text: string) => void>;
  turnSeq: number;
  carriedText: string;
  turnStartAt: number;
  detach: () => void;
}

interface Answer {
  abort: AbortController;
  speaker: string | null;
  userText: string;
  agentText: string;
  timings: AgentTimings;
  started: boolean;
}

export class VoiceConversation extends TypedEmitter<ConversationEvents> {
  readonly #media: MediaSession;
  readonly #providers: VoiceProviders;
  readonly #options: VoiceConversationOptions;
  readonly #history: AgentMessage[];
  readonly #sessionAbort = new AbortController();
  readonly #listeners = new Map<MediaSession, Listener>();
  #answer: Answer | null = null;
  #closed = false;

  constructor(media: MediaSession, providers: VoiceProviders, options: Partial<VoiceConversationOptions> = {}) {
    super();
    this.#media = media;
    this.#providers = providers;
    this.#options = { ...DEFAULT_VOICE_CONVERSATION_OPTIONS, ...options };
    this.#history = [...this.#options.history];
    this.#listen(media, this.#options.speaker);
    media.on('response', (info) => {
      if (info.phase === 'start') this.safeEmit('response', { ...info, text: null });
      else this.#onResponseEnd(info.at, info.audioMs, info.heardMs, info.interrupted, info.playout);
    });
  }

  /** Makes the agent say `text` now (announcements); interrupts an answer in progress. */
  say(text: string): void {
    if (this.#closed) return;
    this.#endCurrentAnswer();
    void this.#speak(this.#newAnswer(null, '', {}), (async function* () { yield text; })());
  }

  /** Rooms, agent listening to everyone: hears this participant's session too. */
  listenTo(media: MediaSession, speaker: string): void {
    if (this.#closed || this.#listeners.has(media)) return;
    this.#options.attachPipeline?.(media);
    media.listenAlong(this.#media);
    this.#listen(media, speaker);
  }

  /** The participant left (or the agent moved): stop hearing it. */
  stopListening(media: MediaSession): void {
    const listener = this.#listeners.get(media);
    if (!listener || media === this.#media) return;
    this.#forget(listener);
    media.listenAlong(null);
    media.setListening(null);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sessionAbort.abort();
    this.#answer?.abort.abort();
    for (const listener of [...this.#listeners.values()]) {
      this.#forget(listener);
      if (listener.media === this.#media) continue;
      listener.media.listenAlong(null);
      listener.media.setListening(null);
    }
    this.removeAllListeners();
  }

  #listen(media: MediaSession, speaker: string | null): void {
    const onListen = (event: ListenEvent, at: number): void => this.#onListen(listener, event, at);
    // A user utterance cut by a media loss is not a turn (docs/protocol.md): drop its audio.
    const onMedia = (info: { state: 'lost' | 'restored' }): void => {
      if (info.state === 'lost') listener.stt?.discard();
    };
    const listener: Listener = {
      media,
      speaker,
      stt: null,
      finalWaiters: [],
      turnSeq: 0,
      carriedText: '',
      turnStartAt: 0,
      detach: () => {
        media.off('listen', onListen);
        media.off('media', onMedia);
      },
    };
    media.on('listen', onListen);
    media.on('media', onMedia);
    this.#listeners.set(media, listener);
  }

  #forget(listener: Listener): void {
    listener.detach();
    listener.stt?.close();
    listener.stt = null;
    for (const waiter of listener.finalWaiters.splice(0)) waiter('');
    this.#listeners.delete(listener.media);
  }

  #onListen(listener: Listener, event: ListenEvent, at: number): void {
    if (this.#closed) return;
    switch (event.type) {
      case 'speech_start': {
        listener.turnStartAt = at;
        const stt = this.#sttStream(listener);
        for (const frame of event.preRoll) stt.pushAudio({ samples: frame, sampleRate: 16000 });
        return;
      }
      case 'audio':
        listener.stt?.pushAudio({ samples: event.frame, sampleRate: 16000 });
        return;
      case 'speech_end':
        return;
      case 'discarded':
        listener.stt?.discard();
        return;
      case 'barge_in':
        this.#endCurrentAnswer();
        this.safeEmit('bargein', { at });
        return;
      case 'end_of_turn': {
        const speechEndAt = event.cut ? at : at - (event.atMs - event.speechEndAtMs);
        // An answer still in progress belongs to the previous turn: end it first, so that turn is
        // recorded (interrupted) before this one starts.
        this.#endCurrentAnswer();
        this.safeEmit('utterance', { speechStartAt: listener.turnStartAt, speechEndAt, endOfTurnAt: at, audioMs: event.voicedMs, accepted: true });
        void this.#answerTurn(listener, at);
        return;
      }
    }
  }

  #sttStream(listener: Listener): SttStream {
    if (listener.stt) return listener.stt;
    const stt = this.#providers.stt.stream({ sampleRate: 16000, language: this.#options.language, signal: this.#sessionAbort.signal });
    listener.stt = stt;
    const speaker = listener.speaker ? { speaker: listener.speaker } : {};
    void (async () => {
      try {
        for await (const event of stt) {
          if (event.type === 'partial') {
            listener.media.hintTranscript(event.text);
            this.safeEmit('transcript', { role: 'user', text: event.text, final: false, ...speaker });
          } else {
            listener.finalWaiters.shift()?.(event.text);
          }
        }
      } catch (error) {
        if (listener.stt === stt) listener.stt = null; // the next turn opens a fresh stream
        for (const waiter of listener.finalWaiters.splice(0)) waiter('');
        if (!isAbort(error)) this.#reportError('STT', error);
      }
    })();
    return stt;
  }

  async #answerTurn(listener: Listener, endOfTurnAt: number): Promise<void> {
    const seq = ++listener.turnSeq;
    const stt = listener.stt;
    const text = stt ? await this.#finalTranscript(listener, stt) : '';
    if (this.#closed) return;
    if (seq !== listener.turnSeq) {
      // The user spoke again (a new turn ended) before this transcript came back: the two are one
      // turn, answered together once the later one is recognised.
      listener.carriedText = `${listener.carriedText} ${text}`.trim();
      return;
    }
    const sttFinalAt = Date.now();
    const userText = `${listener.carriedText} ${text}`.trim();
    listener.carriedText = '';
    if (!userText) {
      // Nothing recognisable was said: not a turn.
      this.safeEmit('response', { phase: 'end', at: sttFinalAt, audioMs: 0, heardMs: 0, interrupted: false, text: null, skipped: true });
      return;
    }
    this.safeEmit('transcript', { role: 'user', text: userText, final: true, ...(listener.speaker ? { speaker: listener.speaker } : {}) });
    const answer = this.#newAnswer(listener.speaker, userText, { endOfTurnAt, sttFinalAt });
    const deltas = this.#providers.agent.respond({
      history: this.#history.slice(-this.#options.maxHistoryMessages),
      userText,
      signal: answer.abort.signal,
    });
    await this.#speak(answer, deltas);
  }

  #finalTranscript(listener: Listener, stt: SttStream): Promise<string> {
    return new Promise((resolve) => {
      const waiter = (text: string) => {
        clearTimeout(timer);
        resolve(text);
      };
      // No final in time: give up on this stream, so a late final cannot land on the next turn.
      const timer = setTimeout(() => {
        listener.finalWaiters = listener.finalWaiters.filter((w) => w !== waiter);
        if (listener.stt === stt) listener.stt = null;
        stt.close();
        resolve('');
      }, this.#options.sttFinalTimeoutMs);
      listener.finalWaiters.push(waiter);
      stt.flush();
    });
  }

  #newAnswer(speaker: string | null, userText: string, timings: Partial<AgentTimings>): Answer {
    const answer: Answer = {
      abort: new AbortController(),
      speaker,
      userText,
      agentText: '',
      timings: { endOfTurnAt: null, sttFinalAt: null, agentFirstTextAt: null, ttsFirstAudioAt: null, ...timings },
      started: false,
    };
    this.#answer = answer;
    return answer;
  }

  // Streams agent text into TTS and TTS audio into the playout. A provider failure ends the answer
  // with what was already queued (or none) and is reported once, as an agent or TTS error.
  async #speak(answer: Answer, deltas: AsyncIterable<string>): Promise<void> {
    const signal = answer.abort.signal;
    const text = new EventQueue<string>();
    const playout = this.#media.playout;
    let agentError: unknown = null;
    let textInPlayout = 0;
    const pumpText = (async () => {
      try {
        for await (const delta of deltas) {
          if (signal.aborted) break;
          if (answer.timings.agentFirstTextAt === null) answer.timings.agentFirstTextAt = Date.now();
          answer.agentText += delta;
          this.safeEmit('transcript', { role: 'agent', text: answer.agentText, final: false });
          text.push(delta);
        }
      } catch (error) {
        agentError = error;
      } finally {
        text.end();
      }
    })();
    let failure: { stage: 'AGENT' | 'TTS'; error: unknown } | null = null;
    try {
      for await (const frame of this.#providers.tts.synthesize(text, { signal, voice: this.#options.voice })) {
        if (signal.aborted) break;
        if (!answer.started) {
          answer.started = true;
          answer.timings.ttsFirstAudioAt = Date.now();
          playout.begin();
        }
        playout.addText(answer.agentText.slice(textInPlayout));
        textInPlayout = answer.agentText.length;
        playout.push(frame);
      }
    } catch (error) {
      if (!signal.aborted && !isAbort(error)) failure = { stage: 'TTS', error };
    }
    await pumpText;
    if (agentError !== null && !signal.aborted && !isAbort(agentError)) failure = { stage: 'AGENT', error: agentError };
    if (this.#closed || (signal.aborted && !failure)) return;
    if (failure) this.#reportError(failure.stage, failure.error);
    if (!answer.started) {
      // The agent said nothing (or its providers failed before any audio): the turn ends without audio.
      this.#finishAnswer(answer, Date.now(), 0, 0, false, null);
      return;
    }
    // Text that arrived after the last audio frame belongs to the answer too.
    playout.addText(answer.agentText.slice(textInPlayout));
    playout.end();
  }

  // Ends the answer in progress before something else takes the floor (barge-in, a new turn, an
  // announcement). A started answer stops playing and the media reports its end (interrupted); one
  // still being prepared ends at once as interrupted, without audio. Either way its turn is recorded.
  #endCurrentAnswer(): void {
    const answer = this.#answer;
    if (!answer) return;
    answer.abort.abort();
    if (answer.started && this.#media.playout.active) this.#media.interruptResponse();
    else this.#finishAnswer(answer, Date.now(), 0, 0, true, null);
  }

  #onResponseEnd(at: number, audioMs: number, heardMs: number, interrupted: boolean, playout: PlayoutResult | undefined): void {
    const answer = this.#answer;
    if (!answer) {
      this.safeEmit('response', { phase: 'end', at, audioMs, heardMs, interrupted, text: null });
      return;
    }
    this.#finishAnswer(answer, at, audioMs, heardMs, interrupted, playout ?? null);
  }

  #finishAnswer(answer: Answer, at: number, audioMs: number, heardMs: number, interrupted: boolean, playout: PlayoutResult | null): void {
    if (this.#answer === answer) this.#answer = null;
    const agentText = answer.agentText.trim();
    const heardText = interrupted ? (playout?.heardText ?? '') : agentText;
    if (answer.userText) this.#history.push({ role: 'user', text: answer.userText });
    if (heardText) this.#history.push({ role: 'assistant', text: heardText });
    if (agentText) this.safeEmit('transcript', { role: 'agent', text: agentText, final: true });
    this.safeEmit('response', {
      phase: 'end',
      at,
      audioMs,
      heardMs,
      interrupted,
      text: { userText: answer.userText || null, agentText, heardText, speaker: answer.speaker },
      timings: answer.timings,
    });
  }

  #reportError(stage: 'STT' | 'AGENT' | 'TTS', error: unknown): void {
    const e = error instanceof ProviderError ? error : null;
    this.safeEmit('error', {
      code: `PROVIDER_ERR_${stage}`,
      message: e ? `${stage.toLowerCase()} provider ${e.provider} failed: ${e.code}` : `${stage.toLowerCase()} failed: ${(error as Error)?.message ?? String(error)}`,
      retryable: e?.retryable ?? true,
    });
  }
}
