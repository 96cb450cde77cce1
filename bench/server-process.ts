// The server under test, in its own process so its CPU and memory can be read from /proc. Forked by
// run.ts with the environment that configures it; answers stats requests over IPC and reports the
// main thread's event-loop lag the same way the media workers report theirs.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadConfig } from '../server/config.ts';
import { buildApp } from '../server/app.ts';
import { EventLoopLag } from '../media/worker/worker-stats.ts';
import type { ServerCommand, ServerReport } from './ipc.ts';

if (!process.send) throw new Error('server-process must be started with child_process.fork');
const send = (report: ServerReport): void => {
  process.send?.(report);
};

// A gc() for the idle-memory baseline. Not through --expose-gc: the media workers inherit this
// process's execArgv and worker threads refuse that flag.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

const config = loadConfig();
const mainLag = new EventLoopLag();
const server = await buildApp(config);
await server.app.listen({ host: config.host, port: config.port });
const address = server.app.server.address();
if (!address || typeof address === 'string') throw new Error('server has no TCP address');

let stopping = false;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const timer = setTimeout(() => process.exit(code || 1), 10_000);
  timer.unref();
  await server.close().catch(() => undefined);
  process.exit(code);
}

process.on('message', (command: ServerCommand) => {
  if (command.cmd === 'shutdown') {
    void shutdown(0);
    return;
  }
  if (command.gc) collectGarbage();
  const lag = mainLag.read(command.reset);
  server.media.stats(command.reset).then(
    (workers) =>
      send({
        ev: 'stats',
        id: command.id,
        snapshot: {
          sessions: server.sessions.size,
          mediaClosing: server.sessions.mediaClosing,
          sessionsByState: countStates(),
          mainLagP99Ms: lag.p99Ms,
          mainLagMaxMs: lag.maxMs,
          workers,
        },
      }),
    (error: unknown) => send({ ev: 'error', message: `stats failed: ${(error as Error)?.message ?? String(error)}` }),
  );
});

function countStates(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const session of server.sessions.all()) counts[session.state] = (counts[session.state] ?? 0) + 1;
  return counts;
}

// The runner going away (crash, Ctrl-C) must not leave a server behind.
process.on('disconnect', () => void shutdown(0));

send({ ev: 'ready', port: address.port, pid: process.pid, mediaWorkers: server.media.workerCount, echo: { ...config.echo } });
