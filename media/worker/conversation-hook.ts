// How the process that starts a media worker plugs the conversation logic (speech-to-text, agent,
// text-to-speech: providers, outside media/) into it: the worker entry installs a factory before
// the worker loop starts; the loop calls it for every session it opens.
import type { MediaSession, MediaSessionOptions } from '../media-session.ts';
import type { Conversation, ConversationWorkerEvent } from '../conversation-events.ts';

export type ConversationFactory = (
  media: MediaSession,
  options: MediaSessionOptions,
  report: (event: ConversationWorkerEvent) => void,
) => Conversation | null;

let installed: ConversationFactory | null = null;

export function installConversationFactory(factory: ConversationFactory): void {
  installed = factory;
}

export function createConversation(media: MediaSession, options: MediaSessionOptions, report: (event: ConversationWorkerEvent) => void): Conversation | null {
  return installed ? installed(media, options, report) : null;
}
