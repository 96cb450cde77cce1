// The benchmark's child processes (server under test, load generators): fork with the TypeScript
// loader, wait for one IPC message, wait for exit, and kill whatever is left at the end.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A condition that ends the run with a clear message (as opposed to a bug in the bench). */
export class BenchAbort extends Error {
  override name = 'BenchAbort';
}

const children = new Set<ChildProcess>();

export function killAllChildren(): void {
  for (const child of children) child.kill('SIGKILL');
}

/** `nodeArgs`: more flags for the child's node (e.g. --cpu-prof); its worker threads inherit them. */
export function forkChild(file: string, env?: NodeJS.ProcessEnv, nodeArgs: string[] = []): ChildProcess {
  const child = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
    execArgv: ['--import', 'tsx', ...nodeArgs],
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function nextMessage<T>(child: ChildProcess, accept: (m: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: T) => {
      if (!accept(m)) return;
      cleanup();
      resolve(m);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new BenchAbort(`${what}: process ${child.pid} exited (code ${code}) before answering`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new BenchAbort(`${what}: no answer within ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage as (m: unknown) => void);
      child.off('exit', onExit);
    };
    child.on('message', onMessage as (m: unknown) => void);
    child.once('exit', onExit);
  });
}

export async function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
