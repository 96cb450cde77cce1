// What a media worker reports about itself: load, event-loop lag, packet statistics, and the
// server-added latency histogram (RTP event -> decoded PCM frame, deliberate jitter-buffer hold excluded).
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { LatencyHistogram } from '../latency-histogram.ts';
import type { JitterBufferStats } from '../jitter-buffer.ts';

export interface PacketTotals {
  received: number;
  lost: number;
  concealed: number;
  fecRecovered: number;
  late: number;
  duplicates: number;
  overflowDrops: number;
}

export interface WorkerStats {
  workerIndex: number;
  sessions: number;
  eventLoopLagP99Ms: number;
  eventLoopLagMaxMs: number;
  packets: PacketTotals;
  /** Sparse bucket counts of the LatencyHistogram: [bucketIndex, count][]. */
  latencyBuckets: [number, number][];
  heapUsedBytes: number;
  externalBytes: number;
  /** Rooms: packets forwarded to subscribers, and not forwarded (muted subscriptions), since start. */
  forwarded?: { packets: number; dropped: number; rooms: number };
  /** The worker's Silero VAD since start (agent modes; absent when the worker has none). */
  vad?: VadTotals;
  /** Whether the local providers' warm-up at worker start has settled (absent without a conversation entry). */
  providersWarm?: boolean;
}

/** One telemetry interval of a worker: packet counters as deltas (each counted once), samples. */
export interface WorkerTelemetry {
  workerIndex: number;
  delta: PacketTotals;
  eventLoopLagP99Ms: number;
  /** Per live session: jitter-buffer target delay and measured inbound jitter, ms. */
  sessions: { jitterBufferDelayMs: number; jitterMs: number }[];
  /** The worker's Silero VAD since the last report (agent modes; absent when the worker has none). */
  vad?: VadTotals;
}

/** Counters of a worker's batched Silero VAD (media/vad/silero-vad.ts), totals since start or deltas. */
export interface VadTotals {
  /** 32 ms windows judged. */
  windows: number;
  /** Batched runs (windows / runs = mean batch). */
  runs: number;
  /** Windows dropped because their session had four waiting (the worker fell behind). */
  droppedWindows: number;
  /** Runs that failed (their windows got no verdict). */
  errors: number;
  /** Time spent in Silero's runs, ms (on the worker's thread: its CPU, barring preemption). */
  runMs: number;
  /** What the windows waited for their run (the batch gathering), summed over windows, ms. */
  waitMs: number;
}

/** Counter totals now minus the totals of the last report: what to report as this interval's deltas. */
export function subtractTotals<T extends { [K in keyof T]: number }>(now: T, before: T): T {
  const out = { ...now };
  for (const key of Object.keys(now) as (keyof T)[]) out[key] = (now[key] - before[key]) as T[keyof T];
  return out;
}

export const emptyVadTotals = (): VadTotals => ({ windows: 0, runs: 0, droppedWindows: 0, errors: 0, runMs: 0, waitMs: 0 });

export const emptyTotals = (): PacketTotals => ({
  received: 0, lost: 0, concealed: 0, fecRecovered: 0, late: 0, duplicates: 0, overflowDrops: 0,
});

export function addJitterStats(totals: PacketTotals, s: JitterBufferStats): void {
  totals.received += s.received;
  totals.lost += s.lost;
  totals.concealed += s.concealed;
  totals.fecRecovered += s.fecRecovered;
  totals.late += s.late;
  totals.duplicates += s.duplicates;
  totals.overflowDrops += s.overflowDrops;
}

export class EventLoopLag {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });

  constructor() {
    this.#histogram.enable();
  }

  /** p99 and max of the event-loop delay since the last reset, in ms. */
  read(reset: boolean): { p99Ms: number; maxMs: number } {
    const h = this.#histogram;
    const value = { p99Ms: h.count > 0 ? h.percentile(99) / 1e6 : 0, maxMs: h.count > 0 ? h.max / 1e6 : 0 };
    if (reset) h.reset();
    return value;
  }
}

export function sparseBuckets(histogram: LatencyHistogram): [number, number][] {
  const out: [number, number][] = [];
  histogram.counts.forEach((count, index) => {
    if (count > 0) out.push([index, count]);
  });
  return out;
}

export function histogramFromSparse(buckets: [number, number][], into = new LatencyHistogram()): LatencyHistogram {
  const add = new LatencyHistogram();
  for (const [index, count] of buckets) add.counts[index] = count;
  into.merge(new LatencyHistogram(add.counts));
  return into;
}
