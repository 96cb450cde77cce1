// Entry of a media worker thread. Worker threads do not inherit the TypeScript loader the main
// thread was started with: register tsx here. Then plug the conversation logic (providers) into
// the worker before its loop starts: media/ knows nothing of providers; this is where they meet.
import { register } from 'tsx/esm/api';

register();
await import('./voice/worker-conversations.ts');
await import('../media/worker/media-worker.ts');
