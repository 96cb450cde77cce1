// The conversational agent's settings: modes, listening pipeline, turn taking and provider chains
// (with their keys). Read through config.ts's EnvReader, so config.ts stays the only reader of
// process.env; API keys are checked for shape only and never echoed.
import type { EnvReader } from './config.ts';
import { NATIVE_WEIGHTS, type NativeWeights } from '../media/vad/native-weights.ts';
import { SESSION_MODES, type SessionMode } from '../signaling/protocol.ts';

/** The modes are the wire protocol's session modes. */
export const VOICE_MODES = SESSION_MODES;
export type VoiceMode = SessionMode;
export const STT_PROVIDERS = ['local', 'deepgram', 'openai'] as const;
export const TTS_PROVIDERS = ['local', 'elevenlabs', 'openai'] as const;
export const AGENT_PROVIDERS = ['local', 'openai'] as const;
export const S2S_PROVIDERS = ['openai'] as const;

/** The conversational agent: listening pipeline, turn taking and providers. */
export interface VoiceConfig {
  defaultMode: VoiceMode;
  /** Modes a join may ask for. */
  modes: VoiceMode[];
  language: string;
  turn: { endSilenceMs: number; minSpeechMs: number; midPhraseExtensionMs: number; maxTurnMs: number };
  bargeInMinMs: number;
  bargeInGraceMs: number;
  preRollMs: number;
  vad: { engine: 'native' | 'onnx'; nativeWeights: NativeWeights; threshold: number; minSpeechMs: number; batchWindowMs: number };
  denoise: 'off' | 'on' | 'auto';
  echoGuard: boolean;
  /** Ordered fallback chains: the first healthy provider serves; `local` is the offline default. */
  providers: { stt: string[]; tts: string[]; agent: string[]; s2s: string[] };
  /** Speech-recognition decoders per media worker (each ~100+ MB), shared by its sessions. */
  localSttDecoders: number;
  providerTimeoutMs: number;
  breaker: { failureThreshold: number; openMs: number };
  /** Secrets (API keys) are never logged. */
  openai: { apiKey: string | null; baseUrl: string; chatModel: string; sttModel: string; ttsModel: string; ttsVoice: string; realtimeUrl: string; realtimeModel: string };
  deepgram: { apiKey: string | null; url: string; model: string };
  elevenlabs: { apiKey: string | null; url: string; voiceId: string; modelId: string };
}

export function readVoice(r: EnvReader): VoiceConfig {
  const openaiKey = r.secret('OPENAI_API_KEY');
  return {
    defaultMode: r.oneOf('VOICE_DEFAULT_MODE', 'stt_tts', VOICE_MODES),
    // s2s needs a cloud provider: offered by default only when its key is configured.
    modes: r.list('VOICE_MODES', openaiKey ? [...VOICE_MODES] : ['stt_tts', 'echo'], VOICE_MODES),
    language: r.string('VOICE_LANGUAGE', 'en-US', (v) => /^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(v) || 'must be a language tag such as en-US'),
    turn: {
      endSilenceMs: r.int('TURN_END_SILENCE_MS', 500, 100, 5000),
      minSpeechMs: r.int('TURN_MIN_SPEECH_MS', 250, 20, 5000),
      midPhraseExtensionMs: r.int('TURN_MID_PHRASE_EXTENSION_MS', 700, 0, 5000),
      maxTurnMs: r.int('TURN_MAX_MS', 30_000, 1000, 120_000),
    },
    bargeInMinMs: r.int('BARGE_IN_MIN_MS', 300, 20, 5000),
    bargeInGraceMs: r.int('BARGE_IN_GRACE_MS', 600, 0, 5000),
    preRollMs: r.int('VAD_PRE_ROLL_MS', 300, 0, 2000),
    vad: {
      engine: r.oneOf('VAD_ENGINE', 'native', ['native', 'onnx'] as const),
      nativeWeights: r.oneOf('VAD_NATIVE_WEIGHTS', 'auto', NATIVE_WEIGHTS),
      threshold: r.int('VAD_THRESHOLD_PERCENT', 50, 1, 99) / 100,
      minSpeechMs: r.int('VAD_MIN_SPEECH_MS', 100, 20, 2000),
      batchWindowMs: r.int('VAD_BATCH_WINDOW_MS', 10, 0, 32),
    },
    denoise: r.oneOf('DENOISE', 'off', ['off', 'on', 'auto'] as const),
    echoGuard: r.bool('ECHO_GUARD', true),
    providers: {
      stt: r.list('STT_PROVIDERS', ['local'], STT_PROVIDERS),
      tts: r.list('TTS_PROVIDERS', ['local'], TTS_PROVIDERS),
      agent: r.list('AGENT_PROVIDERS', ['local'], AGENT_PROVIDERS),
      s2s: r.list('S2S_PROVIDERS', ['openai'], S2S_PROVIDERS),
    },
    localSttDecoders: r.int('LOCAL_STT_DECODERS', 1, 1, 16),
    providerTimeoutMs: r.int('PROVIDER_TIMEOUT_MS', 10_000, 100, 120_000),
    breaker: {
      failureThreshold: r.int('PROVIDER_BREAKER_FAILURES', 3, 1, 100),
      openMs: r.int('PROVIDER_BREAKER_OPEN_MS', 30_000, 100, 3_600_000),
    },
    openai: {
      apiKey: openaiKey,
      baseUrl: r.url('OPENAI_BASE_URL', 'https://api.openai.com/v1'),
      chatModel: r.string('OPENAI_CHAT_MODEL', 'gpt-4o-mini'),
      sttModel: r.string('OPENAI_STT_MODEL', 'gpt-4o-mini-transcribe'),
      ttsModel: r.string('OPENAI_TTS_MODEL', 'gpt-4o-mini-tts'),
      ttsVoice: r.string('OPENAI_TTS_VOICE', 'alloy'),
      realtimeUrl: r.url('OPENAI_REALTIME_URL', 'wss://api.openai.com/v1/realtime'),
      realtimeModel: r.string('OPENAI_REALTIME_MODEL', 'gpt-realtime'),
    },
    deepgram: {
      apiKey: r.secret('DEEPGRAM_API_KEY'),
      url: r.url('DEEPGRAM_URL', 'wss://api.deepgram.com/v1/listen'),
      model: r.string('DEEPGRAM_MODEL', 'nova-3'),
    },
    elevenlabs: {
      apiKey: r.secret('ELEVENLABS_API_KEY'),
      url: r.url('ELEVENLABS_URL', 'wss://api.elevenlabs.io/v1'),
      voiceId: r.string('ELEVENLABS_VOICE_ID', '21m00Tcm4TlvDq8ikWAM'),
      modelId: r.string('ELEVENLABS_MODEL_ID', 'eleven_flash_v2_5'),
    },
  };
}

// A cloud provider in a chain needs its key; the default mode must be one a join may use.
export function checkVoice(r: EnvReader, voice: VoiceConfig): void {
  if (!voice.modes.includes(voice.defaultMode)) r.fail('VOICE_DEFAULT_MODE', `must be one of VOICE_MODES (${voice.modes.join(', ')})`);
  const needs: Array<[string, string[], string, string | null]> = [
    ['STT_PROVIDERS', voice.providers.stt, 'deepgram', voice.deepgram.apiKey],
    ['STT_PROVIDERS', voice.providers.stt, 'openai', voice.openai.apiKey],
    ['TTS_PROVIDERS', voice.providers.tts, 'elevenlabs', voice.elevenlabs.apiKey],
    ['TTS_PROVIDERS', voice.providers.tts, 'openai', voice.openai.apiKey],
    ['S2S_PROVIDERS', voice.modes.includes('s2s') ? voice.providers.s2s : [], 'openai', voice.openai.apiKey],
  ];
  for (const [name, chain, provider, key] of needs) {
    if (chain.includes(provider) && !key) r.fail(name, `"${provider}" needs its API key (${provider === 'openai' ? 'OPENAI_API_KEY' : provider === 'deepgram' ? 'DEEPGRAM_API_KEY' : 'ELEVENLABS_API_KEY'})`);
  }
}
