// What the scripted fakes share: a fault that strikes (throws its error or stalls until the abort),
// and waiting that an abort cuts short.
import type { ProviderError } from '../types.ts';

export interface FaultStrike {
  /** The error to throw; without one the call stalls until aborted. */
  error?: ProviderError;
  /** Called when the fault strikes, so a test can act at exactly that moment. */
  onStrike?: () => void;
}

/** Throws the fault's error, or stalls until the abort (then throws the AbortError). */
export async function strike(fault: FaultStrike, signal: AbortSignal): Promise<void> {
  fault.onStrike?.();
  if (fault.error) throw fault.error;
  await unlessAborted(new Promise<void>(() => {}), signal);
}

/** Waits for `wait` unless the signal aborts first (then rejects with its reason). */
export async function unlessAborted(wait: Promise<void> | void, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  if (!wait) return;
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    wait.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
