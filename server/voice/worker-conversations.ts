/**
 * Loaded by the media worker entry before the worker loop: installs the factory that gives each
 * agent-mode session its listening pipeline (VAD behind an energy pre-gate, optional denoise, echo
 * guard, turn detection) and its conversation (STT -> agent -> TTS today; speech-to-speech in
 * s2s mode). Provider chains are built once per worker from the server config in workerData.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { installConversationFactory, installVadTotals, installWarmUp } from '../../media/worker/conversation-hook.ts';
import { ListeningPipeline } from '../../media/listening-pipeline.ts';
import type { WorkerInit } from '../../media/worker/worker-protocol.ts';
import type { Conversation } from '../../media/conversation-events.ts';
import type { MediaSession } from '../../media/media-session.ts';
import { ProviderRegistry } from './provider-registry.ts';
import { VoiceConversation } from './voice-conversation.ts';
import { SpeechToSpeechConversation } from './s2s-conversation.ts';
import { createVadStage, prepareVad, workerSilero } from './vad-stage.ts';

const init = workerData as WorkerInit;
const voice = init.voice;
const registry = new ProviderRegistry(voice, (info) => parentPort?.postMessage({ ev: 'providerfallback', info }));
await prepareVad(voice);
const silero = workerSilero()!;
installVadTotals(() => {
  const { windows, runs, droppedWindows, errors, runMs, waitMs } = silero.toJSON();
  return { windows, runs, droppedWindows, errors, runMs, waitMs };
});
installWarmUp(registry.warmUp()); // not awaited: the worker serves at once; a turn in the first ~0.5 s waits for it

/** Gives a session its listening pipeline: the host's, or (rooms) another participant's the agent hears. */
function attachPipeline(media: MediaSession): void {
  media.setListening(
    new ListeningPipeline(createVadStage(voice), {
      preRollMs: voice.preRollMs,
      bargeInMinMs: voice.bargeInMinMs,
      bargeInGraceMs: voice.bargeInGraceMs,
      turn: { ...voice.turn },
      echoGuard: voice.echoGuard ? {} : false,
    }),
  );
}

installConversationFactory((media, options, report, speaker) => {
  const { providers } = registry;
  attachPipeline(media);
  let conversation: VoiceConversation | SpeechToSpeechConversation;
  if (options.mode === 's2s') {
    if (!providers.s2s) return null;
    conversation = new SpeechToSpeechConversation(media, providers.s2s, { language: options.voice.language });
  } else {
    // The final transcript may take the whole provider timeout (and one fallback) to arrive.
    conversation = new VoiceConversation(media, providers, {
      language: options.voice.language,
      sttFinalTimeoutMs: 2 * voice.providerTimeoutMs,
      speaker,
      attachPipeline,
    });
  }
  conversation.on('utterance', (info) => report({ kind: 'utterance', info }));
  conversation.on('response', (info) => report({ kind: 'response', info }));
  conversation.on('transcript', (info) => report({ kind: 'transcript', info }));
  conversation.on('bargein', (info) => report({ kind: 'bargein', info }));
  conversation.on('error', (info) => report({ kind: 'error', info }));
  return conversation satisfies Conversation;
});
