// How the process that starts a media worker plugs the conversation logic (speech-to-text, agent,
// text-to-speech: providers, outside media/) into it: the worker entry installs a factory before
// the worker loop starts; the loop calls it for every session it opens.
import type { MediaSession, MediaSessionOptions } from '../media-session.ts';
import type { Conversation, ConversationWorkerEvent } from '../conversation-events.ts';

/** `speaker`: in rooms where the agent listens to everyone, the host participant's id; else null. */
export type ConversationFactory = (
  media: MediaSession,
  options: MediaSessionOptions,
  report: (event: ConversationWorkerEvent) => void,
  speaker: string | null,
) => Conversation | null;

let installed: ConversationFactory | null = null;

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
