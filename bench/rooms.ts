// Room benchmark: what SFU forwarding costs the server, and how long a forwarded packet takes.
// For each room size (2, 5, 10 participants, all on one media worker) it runs the same clients
// twice against a fresh server: once each in a room of its own (receive and decode only: the
// baseline), once all in one room (plus forwarding to every other participant). The difference in
// server CPU over a steady window, divided by the packets forwarded, is the forwarding cost per
// packet; the latency is a forwarded frame's arrival at a client minus its departure from the
// sender, both clocks of this process (loopback: the network adds almost nothing; the figure is the
// server's forwarding plus both ends' werift). Writes bench/results/rooms-*.json and a table.
//   node --import tsx bench/rooms.ts [--sizes 2,5,10] [--seconds 10]
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { forkChild, killAllChildren, nextMessage, waitExit, sleep } from './children.ts';
import { processCpuMs } from './proc-stats.ts';
import { RoomLoad } from './room-load.ts';
import type { ServerCommand, ServerReport, ServerSnapshot } from './ipc.ts';
import { TEST_AUTH_ENV } from '../tests/helpers/auth.ts';

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const WARMUP_MS = 2000;

export interface RoomRun {
  participants: number;
  rooms: 'shared' | 'separate';
  windowMs: number;
  serverCpuMs: number;
  /** Packets the server forwarded in the window (worker counters). */
  forwarded: number;
  /** Forwarded packets the clients received in the window. */
  received: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencySamples: number;
  workerLagP99Ms: number;
}

export interface RoomResult {
  participants: number;
  baseline: RoomRun;
  room: RoomRun;
  /** Server CPU per forwarded packet beyond the baseline (receive + decode of every stream), µs. */
  forwardingCostUs: number | null;
  /** All server CPU in the room run per forwarded packet, µs (an upper bound). */
  cpuPerForwardedUs: number | null;
}

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '2,5,10' }, seconds: { type: 'string', default: '10' } } });
const sizes = values.sizes.split(',').map(Number);
const windowMs = Number(values.seconds) * 1000;

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function run(participants: number, rooms: 'shared' | 'separate'): Promise<RoomRun> {
  const server = forkChild('./server-process.ts', {
    ...process.env,
    ...TEST_AUTH_ENV,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    MEDIA_WORKERS: '1',
    RTC_HOST_ADDRESSES: '127.0.0.1',
    VOICE_DEFAULT_MODE: 'echo',
    ROOM_MAX_PARTICIPANTS: String(Math.max(participants, 2)),
  });
  let requestId = 0;
  const stats = async (reset: boolean): Promise<ServerSnapshot> => {
    const id = ++requestId;
    const reply = nextMessage<ServerReport>(server, (m) => m.ev === 'stats' && m.id === id, 10_000, 'server stats');
    server.send({ cmd: 'stats', id, reset } satisfies ServerCommand);
    const report = await reply;
    if (report.ev !== 'stats') throw new Error('unexpected report');
    return report.snapshot;
  };
  const ready = await nextMessage<ServerReport>(server, (m) => m.ev === 'ready', 60_000, 'server start');
  if (ready.ev !== 'ready') throw new Error('unexpected report');
  const loopFrames = Math.ceil((windowMs + WARMUP_MS + 30_000) / 20);
  const load = await RoomLoad.join(`ws://127.0.0.1:${ready.port}/v1/signal`, participants, rooms, loopFrames);
  try {
    await load.flowing(20_000, rooms === 'shared');
    await sleep(WARMUP_MS); // let joins, renegotiations and jitter buffers settle (a measurement window, not a wait for an event)
    const forwardedAt = (s: ServerSnapshot) => s.workers.reduce((sum, w) => sum + (w.forwarded?.packets ?? 0), 0);
    const before = await stats(true);
    const cpu0 = processCpuMs(ready.pid);
    const from = performance.now();
    await sleep(windowMs);
    const to = performance.now();
    const cpu1 = processCpuMs(ready.pid);
    const after = await stats(true);
    const { samples, received } = load.latencies(from, to);
    samples.sort((a, b) => a - b);
    return {
      participants,
      rooms,
      windowMs: Math.round(to - from),
      serverCpuMs: Math.round(cpu1 - cpu0),
      forwarded: forwardedAt(after) - forwardedAt(before),
      received,
      latencyP50Ms: percentile(samples, 50),
      latencyP99Ms: percentile(samples, 99),
      latencySamples: samples.length,
      workerLagP99Ms: Math.max(...after.workers.map((w) => w.eventLoopLagP99Ms)),
    };
  } finally {
    await load.close();
    server.send({ cmd: 'shutdown' } satisfies ServerCommand);
    await waitExit(server, 15_000);
  }
}

const fmt = (v: number | null, digits = 1): string => (v === null ? '-' : v.toFixed(digits));

async function main(): Promise<void> {
  const results: RoomResult[] = [];
  for (const participants of sizes) {
    const baseline = await run(participants, 'separate');
    const room = await run(participants, 'shared');
    const extraCpuMs = room.serverCpuMs - (baseline.serverCpuMs * room.windowMs) / baseline.windowMs;
    results.push({
      participants,
      baseline,
      room,
      forwardingCostUs: room.forwarded > 0 ? (extraCpuMs * 1000) / room.forwarded : null,
      cpuPerForwardedUs: room.forwarded > 0 ? (room.serverCpuMs * 1000) / room.forwarded : null,
    });
    console.log(`room of ${participants}: done`);
  }
  console.log('\nparticipants | forwarded pkt/s | server CPU % (baseline) | forwarding cost µs/pkt | CPU µs per fwd pkt | latency p50 / p99 ms | received/forwarded');
  for (const r of results) {
    const rate = (r.room.forwarded * 1000) / r.room.windowMs;
    const cpu = (run: RoomRun) => (run.serverCpuMs / run.windowMs) * 100;
    console.log(
      `${String(r.participants).padStart(12)} | ${fmt(rate, 0).padStart(15)} | ${fmt(cpu(r.room)).padStart(10)} (${fmt(cpu(r.baseline))}) | ${fmt(r.forwardingCostUs).padStart(22)} | ${fmt(r.cpuPerForwardedUs).padStart(18)} | ${fmt(r.room.latencyP50Ms, 2)} / ${fmt(r.room.latencyP99Ms, 2)} | ${r.room.received}/${r.room.forwarded}`,
    );
  }
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = `${RESULTS_DIR}rooms-${new Date().toISOString().replaceAll(':', '-').replaceAll('.', '-')}.json`;
  writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), windowMs, results }, null, 2));
  writeFileSync(`${RESULTS_DIR}rooms-latest.json`, JSON.stringify({ at: new Date().toISOString(), windowMs, results }, null, 2));
  console.log(`\nresults: ${file}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    killAllChildren();
    process.exit(1);
  },
);
