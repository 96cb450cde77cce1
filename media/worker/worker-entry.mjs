// Worker threads do not inherit the TypeScript loader the main thread was started with: register
// tsx here, then load the real worker.
import { register } from 'tsx/esm/api';

register();
await import('./media-worker.ts');
