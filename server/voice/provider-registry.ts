/**
 * Builds the providers a media worker's sessions use, from the server config: for each kind an
 * ordered chain (e.g. STT_PROVIDERS=deepgram,local) wrapped in a fallback with a circuit breaker
 * per provider. One registry per worker thread: the local speech recogniser's decoders are
 * shared by all of that worker's sessions.
 */
import type { VoiceConfig } from '../voice-config.ts';
import type { Agent, S2sProvider, SttProvider, TtsProvider } from '../../providers/types.ts';
import type { FallbackEvent } from '../../providers/fallback.ts';
import { FallbackStt } from '../../providers/fallback-stt.ts';
import { FallbackTts } from '../../providers/fallback-tts.ts';
import { FallbackAgent } from '../../providers/fallback-agent.ts';
import { FallbackS2s } from '../../providers/fallback-s2s.ts';
import { PocketsphinxStt } from '../../providers/local/pocketsphinx-stt.ts';
import { FliteTts } from '../../providers/local/flite-tts.ts';
import { RuleAgent } from '../../providers/local/rule-agent.ts';
import { OpenAiChatAgent } from '../../providers/openai/chat-agent.ts';
import { OpenAiSpeechToText } from '../../providers/openai/speech-to-text.ts';
import { OpenAiTextToSpeech } from '../../providers/openai/text-to-speech.ts';
import { DeepgramStreamingStt } from '../../providers/deepgram/streaming-stt.ts';
import { ElevenLabsStreamingTts } from '../../providers/elevenlabs/streaming-tts.ts';
import { OpenAiRealtimeS2s } from '../../providers/openai-realtime/realtime-s2s.ts';

export interface ProviderSet {
  stt: SttProvider;
  tts: TtsProvider;
  agent: Agent;
  s2s: S2sProvider | null;
}

export type FallbackListener = (event: FallbackEvent) => void;

export class ProviderRegistry {
  readonly #config: VoiceConfig;
  readonly #onFallback: FallbackListener;
  #set: ProviderSet | null = null;
  #local: { stt?: PocketsphinxStt; tts?: FliteTts; agent?: Agent } = {};

  constructor(config: VoiceConfig, onFallback: FallbackListener) {
    this.#config = config;
    this.#onFallback = onFallback;
  }

  /**
   * The chains, built on first use and shared by the worker's sessions: a breaker that opened on
   * one session's failures spares the others the wait.
   */
  get providers(): ProviderSet {
    if (this.#set) return this.#set;
    const c = this.#config;
    const options = {
      retries: 1,
      firstOutputTimeoutMs: c.providerTimeoutMs,
      breaker: { failureThreshold: c.breaker.failureThreshold, openMs: c.breaker.openMs },
      onFallback: this.#onFallback,
    };
    this.#set = {
      stt: chain(c.providers.stt.map((name) => this.#stt(name)), (list) => new FallbackStt(list, options)),
      tts: chain(c.providers.tts.map((name) => this.#tts(name)), (list) => new FallbackTts(list, options)),
      agent: chain(c.providers.agent.map((name) => this.#agent(name)), (list) => new FallbackAgent(list, options)),
      s2s: c.modes.includes('s2s') ? chain(c.providers.s2s.map((name) => this.#s2s(name)), (list) => new FallbackS2s(list, options)) : null,
    };
    return this.#set;
  }

  /**
   * Readies the local providers the chains use (a speech-recogniser decoder, flite), so the
   * worker's first turn does not pay for loading them. Failures are left for that turn to report.
   */
  async warmUp(): Promise<void> {
    if (!this.#config.modes.includes('stt_tts')) return;
    void this.providers;
    const local = this.#local;
    await Promise.all([
      local.stt?.warmUp().catch(() => undefined),
      local.tts?.warmUp().catch(() => undefined),
    ]);
  }

  #stt(name: string): SttProvider {
    const c = this.#config;
    switch (name) {
      case 'local':
        // Single-pass search: the final comes 10-50 ms after the end of the turn instead of
        // 90-330 ms, with the same words on our test sentences (providers/local measurements).
        return (this.#local.stt ??= new PocketsphinxStt({ decoders: c.localSttDecoders, decoderArgs: ['-fwdflat', 'no', '-bestpath', 'no'] }));
      case 'deepgram':
        return new DeepgramStreamingStt({ apiKey: c.deepgram.apiKey ?? '', baseUrl: c.deepgram.url, model: c.deepgram.model });
      case 'openai':
        return new OpenAiSpeechToText({ apiKey: c.openai.apiKey ?? '', baseUrl: c.openai.baseUrl, model: c.openai.sttModel });
    }
    throw new Error(`unknown STT provider ${name}`);
  }

  #tts(name: string): TtsProvider {
    const c = this.#config;
    switch (name) {
      case 'local':
        return (this.#local.tts ??= new FliteTts());
      case 'elevenlabs':
        return new ElevenLabsStreamingTts({ apiKey: c.elevenlabs.apiKey ?? '', baseUrl: c.elevenlabs.url, voiceId: c.elevenlabs.voiceId, modelId: c.elevenlabs.modelId });
      case 'openai':
        return new OpenAiTextToSpeech({ apiKey: c.openai.apiKey ?? '', baseUrl: c.openai.baseUrl, model: c.openai.ttsModel, voice: c.openai.ttsVoice });
    }
    throw new Error(`unknown TTS provider ${name}`);
  }

  #agent(name: string): Agent {
    const c = this.#config;
    switch (name) {
      case 'local':
        return (this.#local.agent ??= new RuleAgent());
      case 'openai':
        return new OpenAiChatAgent({ apiKey: c.openai.apiKey ?? '', baseUrl: c.openai.baseUrl, model: c.openai.chatModel });
    }
    throw new Error(`unknown agent provider ${name}`);
  }

  #s2s(name: string): S2sProvider {
    const c = this.#config;
    switch (name) {
      case 'openai':
        return new OpenAiRealtimeS2s({ apiKey: c.openai.apiKey ?? '', baseUrl: c.openai.realtimeUrl, model: c.openai.realtimeModel });
    }
    throw new Error(`unknown speech-to-speech provider ${name}`);
  }
}

// A chain of one needs no fallback wrapper (and no breaker: there is nothing to fall back to).
function chain<P>(list: P[], wrap: (list: P[]) => P): P {
  return list.length === 1 ? list[0] : wrap(list);
}
