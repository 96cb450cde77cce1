// How the process that starts a media worker plugs the conversation logic (speech-to-text, agent,
// text-to-speech: providers, outside media/) into it: the worker entry installs a factory before
// the worker loop starts; the loop calls it for every session it opens. The same entry says how to
// read the counters of its VAD, which the loop reports with its telemetry each second.
import type { MediaSession, MediaSessionOptions } from '../media-session.ts';
import type { Conversation, ConversationWorkerEvent } from '../conversation-events.ts';
import type { VadTotals } from './worker-stats.ts';

/** `speaker`: in rooms where the agent listens to everyone, the host participant's id; else null. */
export type ConversationFactory = (
  media: MediaSession,
  options: MediaSessionOptions,
  report: (event: ConversationWorkerEvent) => void,
  speaker: string | null,
) => Conversation | null;

let installed: ConversationFactory | null = null;
let vadTotals: (() => VadTotals) | null = null;
let warm: boolean | null = null;

/** The worker entry says how to read its VAD counters (reported with the worker's telemetry). */
export function installVadTotals(read: () => VadTotals): void {
  vadTotals = read;
}

export function readVadTotals(): VadTotals | null {
  return vadTotals ? vadTotals() : null;
}

/**
 * The worker entry says when its providers' warm-up (models loaded, first run done) has settled;
 * the worker serves before that and reports it with its stats.
 */
export function installWarmUp(done: Promise<unknown>): void {
  warm = false;
  const settled = (): void => void (warm = true);
  done.then(settled, settled); // a failed warm-up has settled too (the provider reports its own errors)
}

/** Whether the providers' warm-up has settled; null when the worker entry has none. */
export function providersWarm(): boolean | null {
  return warm;
}

export function installConversationFactory(factory: ConversationFactory): void {
  installed = factory;
}

export function createConversation(
  media: MediaSession,
  options: MediaSessionOptions,
  report: (event: ConversationWorkerEvent) => void,
  speaker: string | null = null,
): Conversation | null {
  return installed ? installed(media, options, report, speaker) : null;
}
