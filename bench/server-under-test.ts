// The server under test, seen from the runner: starts bench/server-process.ts with the benchmark's
// environment and asks it for stats over IPC.
import type { ChildProcess } from 'node:child_process';
import { BenchAbort, forkChild, nextMessage, waitExit } from './children.ts';
import type { EchoSettings } from './speech-loop.ts';
import type { ServerCommand, ServerReport, ServerSnapshot } from './ipc.ts';
import { TEST_AUTH_ENV } from '../tests/helpers/auth.ts';

/**
 * BENCH_SERVER_CPU_PROF=<dir>: the server's main thread and each media worker write a V8 CPU
 * profile there when the server stops (open it in Chrome DevTools, or summarise it with
 * `node --import tsx bench/profile-summary.ts <dir>`).
 */
function serverProfileArgs(): string[] {
  const dir = process.env.BENCH_SERVER_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

export class ServerUnderTest {
  readonly child: ChildProcess;
  readonly port: number;
  readonly pid: number;
  readonly mediaWorkers: number;
  readonly echo: EchoSettings;
  #nextId = 1;

  private constructor(child: ChildProcess, ready: Extract<ServerReport, { ev: 'ready' }>) {
    this.child = child;
    this.port = ready.port;
    this.pid = ready.pid;
    this.mediaWorkers = ready.mediaWorkers;
    this.echo = ready.echo;
  }

  /** `env`: settings on top of the benchmark's (e.g. the agent steps' providers); they win. */
  static async start(options: { maxSessions: number; echo: boolean; env?: NodeJS.ProcessEnv }): Promise<ServerUnderTest> {
    const child = forkChild('./server-process.ts', {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'silent',
      RTC_HOST_ADDRESSES: '127.0.0.1',
      MAX_SESSIONS: String(options.maxSessions),
      VOICE_DEFAULT_MODE: 'echo',
      // The load clients (TestClient) mint their access tokens with the test secret.
      ...TEST_AUTH_ENV,
      // The echo answers only utterances with at least this much voiced speech; the loop has ~2.3 s.
      ...(options.echo ? {} : { ECHO_MIN_SPEECH_MS: '5000' }),
      ...options.env,
    }, serverProfileArgs());
    const ready = await nextMessage<ServerReport>(child, (m) => m.ev === 'ready' || m.ev === 'error', 60_000, 'server start');
    if (ready.ev !== 'ready') throw new BenchAbort(`server failed to start: ${ready.ev === 'error' ? ready.message : ''}`);
    return new ServerUnderTest(child, ready);
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/signal`;
  }

  async stats(reset: boolean, gc = false): Promise<ServerSnapshot> {
    const id = this.#nextId++;
    const reply = nextMessage<ServerReport>(this.child, (m) => (m.ev === 'stats' && m.id === id) || m.ev === 'error', 20_000, 'server stats');
    this.child.send({ cmd: 'stats', id, reset, gc } satisfies ServerCommand);
    const message = await reply;
    if (message.ev !== 'stats') throw new BenchAbort(`server stats failed: ${message.ev === 'error' ? message.message : ''}`);
    return message.snapshot;
  }

  async stop(): Promise<void> {
    if (this.child.connected) this.child.send({ cmd: 'shutdown' } satisfies ServerCommand);
    await waitExit(this.child, 15_000);
  }
}
