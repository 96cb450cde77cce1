// The session state machine: which transitions are legal. Anything else is a bug and is refused.
import type { SessionState } from './session-types.ts';

const LIVE: SessionState[] = ['reconnecting', 'disconnected', 'error'];

const TRANSITIONS: Record<SessionState, readonly SessionState[]> = {
  connecting: ['connected', ...LIVE],
  connected: ['listening', ...LIVE],
  listening: ['processing', ...LIVE],
  processing: ['responding', 'listening', ...LIVE],
  responding: ['listening', 'processing', ...LIVE],
  reconnecting: ['connected', 'listening', 'processing', 'responding', 'disconnected', 'error'],
  disconnected: [],
  error: ['disconnected'],
};

export function canTransition(from: SessionState, to: SessionState): boolean {
  return TRANSITIONS[from].includes(to);
}
