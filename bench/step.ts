// One benchmark step: N simulated clients join, stream for a steady window while the server is
// measured, and leave; the result is one row of the report.
import { performance } from 'node:perf_hooks';
import { histogramFromSparse, type PacketTotals, type WorkerStats } from '../media/worker/worker-stats.ts';
import { LatencyHistogram } from '../media/latency-histogram.ts';
import { BenchAbort, sleep } from './children.ts';
import { LoadFleet } from './load-fleet.ts';
import { machineBusyPercent, machineCpu, processCpuMs, processCpuSplitMs, processRssBytes, udpCounters, type MachineCpu, type UdpCounters } from './proc-stats.ts';
import { checkRow, percentile, type ConversationFigures, type StepResult } from './report.ts';
import type { ServerUnderTest } from './server-under-test.ts';
import type { FinalReport, LoadAudio, ServerSnapshot, SetupReport, WindowReport } from './ipc.ts';

export const SETUP_LIMIT_MS = 90_000;
const CLIENT_SETUP_TIMEOUT_MS = 30_000;
const PREPARE_LIMIT_MS = 60_000;
const DRAIN_LIMIT_MS = 30_000;
const CATCH_UP_LIMIT_MS = 30_000;
const QUIET_SAMPLE_MS = 2000;
const QUIET_OTHER_PERCENT = 25;
const CONTENDED_OTHER_PERCENT = 30;
const MB = 1024 * 1024;

export interface StepOptions {
  durationS: number;
  loadProcs: number;
  joinRatePerS: number;
  settleS: number;
  echo: boolean;
  minSilenceMs: number;
  quietWaitS: number;
}

type Log = (line: string) => void;

/** Who the step's clients are: the mode they join in and what they send. */
export interface LoadProfile {
  /** Names the row in the report: "echo", "talking", "silent", "baseline", "answering". */
  label: string;
  mode: 'echo' | 'stt_tts' | null;
  audio: LoadAudio;
}

/** The load steps of `npm run bench`: the server's default mode (echo there) and the echo speech loop. */
export const ECHO_PROFILE: LoadProfile = { label: 'echo', mode: null, audio: { kind: 'echo-speech' } };

/** What the runner itself observed over the steady window. */
interface WindowMeasurement {
  atStart: ServerSnapshot;
  atEnd: ServerSnapshot;
  windowS: number;
  serverUserMs: number;
  serverSystemMs: number;
  loadCpuMs: number;
  otherCpuMs: number;
  rssMaxBytes: number;
  machine: [MachineCpu, MachineCpu];
  reports: WindowReport[];
}

export async function runStep(server: ServerUnderTest, n: number, options: StepOptions, rssIdleBytes: number, log: Log, profile: LoadProfile = ECHO_PROFILE): Promise<StepResult> {
  const quietBefore = await waitForQuietBox(server, options.quietWaitS, log);
  const stepStart = performance.now();
  const before = await server.stats(false);
  if (before.sessions !== 0) throw new BenchAbort(`server still has ${before.sessions} sessions before the ${n}-session step`);
  const udpBefore = udpCounters();
  const fleet = new LoadFleet(Math.min(options.loadProcs, n), n, {
    wsUrl: server.wsUrl,
    mode: profile.mode,
    audio: profile.audio,
    joinRatePerS: options.joinRatePerS,
    echo: server.echo,
    minSilenceMs: options.minSilenceMs,
    setupTimeoutMs: CLIENT_SETUP_TIMEOUT_MS,
  });
  try {
    await fleet.gather('prepared', PREPARE_LIMIT_MS);
    fleet.broadcast({ cmd: 'start' });
    const setups = await fleet.gather('setup', SETUP_LIMIT_MS).catch((error: Error) => {
      throw new BenchAbort(`setup of ${n} sessions did not finish within ${SETUP_LIMIT_MS / 1000} s (${error.message})`);
    });
    const failures = setups.flatMap((s) => s.failures);
    const listening = setups.reduce((sum, s) => sum + s.listeningMs.length, 0);
    if (listening === 0) throw new BenchAbort(`no client of the ${n}-session step connected: ${failures.slice(0, 3).join('; ')}`);
    log(`  ${listening}/${n} clients listening after ${((performance.now() - stepStart) / 1000).toFixed(1)} s` +
      (failures.length > 0 ? `; ${failures.length} failed, e.g. ${failures[0]}` : ''));
    if (failures.length > 0) log(`  server sessions by state: ${JSON.stringify((await server.stats(false)).sessionsByState)}`);

    await sleep(options.settleS * 1000);
    const measured = await measureWindow(server, fleet, options.durationS);

    // Teardown: clients stop sending and report their totals; once the server has worked through
    // any backlog (its received count stops moving) they leave. Only then are packets counted,
    // so a server that is merely behind is not charged with losing packets.
    const finalsPromise = fleet.gather('final', 30_000);
    fleet.broadcast({ cmd: 'stop' });
    const finals = await finalsPromise;
    const backlogS = await waitForServerToCatchUp(server);
    if (backlogS > 1) log(`  the server took ${backlogS.toFixed(1)} s after the clients stopped to process what they had sent`);
    fleet.broadcast({ cmd: 'leave' });
    await fleet.waitExit(30_000);
    const after = await waitForNoSessions(server);
    const udp: [UdpCounters, UdpCounters] = [udpBefore, udpCounters()];
    const row = composeRow(n, options, profile, measured, setups, finals, [before, after], udp, rssIdleBytes, fleet.size);
    row.otherCpuBeforeStepPercentOfCore = quietBefore;
    return row;
  } finally {
    fleet.kill();
  }
}

async function measureWindow(server: ServerUnderTest, fleet: LoadFleet, durationS: number): Promise<WindowMeasurement> {
  const atStart = await server.stats(true);
  const cpu0 = processCpuSplitMs(server.pid);
  const load0 = fleet.cpuMs();
  const runner0 = process.cpuUsage();
  const machine0 = machineCpu();
  const t0 = performance.now();
  fleet.broadcast({ cmd: 'window-start' });
  let rssMaxBytes = 0;
  const windowEnd = t0 + durationS * 1000;
  while (performance.now() < windowEnd) {
    rssMaxBytes = Math.max(rssMaxBytes, processRssBytes(server.pid));
    await sleep(Math.min(1000, Math.max(0, windowEnd - performance.now())));
  }
  rssMaxBytes = Math.max(rssMaxBytes, processRssBytes(server.pid));
  const cpu1 = processCpuSplitMs(server.pid);
  const loadCpuMs = fleet.cpuMs() - load0;
  const runner = process.cpuUsage(runner0);
  const machine1 = machineCpu();
  const t1 = performance.now();
  const reportsPromise = fleet.gather('window', 15_000);
  fleet.broadcast({ cmd: 'window-end' });
  const atEnd = await server.stats(false);
  const reports = await reportsPromise;
  const serverUserMs = cpu1.userMs - cpu0.userMs;
  const serverSystemMs = cpu1.systemMs - cpu0.systemMs;
  return {
    atStart,
    atEnd,
    windowS: (t1 - t0) / 1000,
    serverUserMs,
    serverSystemMs,
    loadCpuMs,
    otherCpuMs: machine1.busyMs - machine0.busyMs - serverUserMs - serverSystemMs - loadCpuMs - (runner.user + runner.system) / 1000,
    rssMaxBytes,
    machine: [machine0, machine1],
    reports,
  };
}

function composeRow(
  n: number,
  options: StepOptions,
  profile: LoadProfile,
  m: WindowMeasurement,
  setups: SetupReport[],
  finals: FinalReport[],
  [before, after]: [ServerSnapshot, ServerSnapshot],
  [udpBefore, udpAfter]: [UdpCounters, UdpCounters],
  rssIdleBytes: number,
  loadProcesses: number,
): StepResult {
  const sessions = m.atStart.sessions;
  const cpuMs = m.serverUserMs + m.serverSystemMs;
  const percentOfCore = (ms: number): number => (ms / (m.windowS * 1000)) * 100;
  const latency = new LatencyHistogram();
  for (const w of m.atEnd.workers) histogramFromSparse(w.latencyBuckets, latency);
  const lagP99Ms: Record<string, number> = { main: m.atEnd.mainLagP99Ms };
  const lagMaxMs: Record<string, number> = { main: m.atEnd.mainLagMaxMs };
  for (const w of m.atEnd.workers) {
    lagP99Ms[`w${w.workerIndex}`] = w.eventLoopLagP99Ms;
    lagMaxMs[`w${w.workerIndex}`] = w.eventLoopLagMaxMs;
  }
  const p0 = totals(before.workers);
  const p1 = totals(after.workers);
  const sent = finals.reduce((s, f) => s + f.framesSent, 0);
  const sum = (pick: (w: WindowReport) => number): number => m.reports.reduce((s, w) => s + pick(w), 0);
  const all = (pick: (w: WindowReport) => number[]): number[] => m.reports.flatMap(pick);
  const connectedMs = setups.flatMap((s) => s.connectedMs);
  const listeningMs = setups.flatMap((s) => s.listeningMs);
  const failures = setups.flatMap((s) => s.failures);
  const rtt = all((w) => w.echoRttMs);
  const timerLagP99Ms = Math.max(...m.reports.map((w) => w.timerLagP99Ms));
  const framesSkipped = sum((w) => w.framesSkipped);
  const echoLoad = profile.audio.kind === 'echo-speech';
  const row: StepResult = {
    sessions: n,
    load: profile.label,
    echo: echoLoad && options.echo,
    connected: sessions,
    setupFailures: failures.length,
    setupFailureSamples: failures.slice(0, 5),
    windowS: m.windowS,
    serverStatesAtWindowEnd: m.atEnd.sessionsByState,
    cpuMsPerSessionSecond: cpuMs / (sessions * m.windowS),
    serverCpuPercentOfCore: percentOfCore(cpuMs),
    serverCpuKernelShare: cpuMs > 0 ? m.serverSystemMs / cpuMs : 0,
    rssMbPerSession: (m.rssMaxBytes - rssIdleBytes) / MB / sessions,
    rssMbPerSessionMarginal: null,
    rssIdleMb: rssIdleBytes / MB,
    rssSteadyMaxMb: m.rssMaxBytes / MB,
    lagP99Ms,
    lagMaxMs,
    packets: {
      sent,
      serverReceived: p1.received - p0.received,
      missingAtServer: sent - (p1.received - p0.received),
      jitterBufferLost: p1.lost - p0.lost,
      concealed: p1.concealed - p0.concealed,
      late: p1.late - p0.late,
      duplicates: p1.duplicates - p0.duplicates,
      overflowDrops: p1.overflowDrops - p0.overflowDrops,
      fecRecovered: p1.fecRecovered - p0.fecRecovered,
      echoReceivedByClients: finals.reduce((s, f) => s + f.echoPacketsReceived, 0),
      kernelUdpRcvbufErrors: udpAfter.rcvbufErrors - udpBefore.rcvbufErrors,
      kernelUdpInErrors: udpAfter.inErrors - udpBefore.inErrors,
      kernelUdpSndbufErrors: udpAfter.sndbufErrors - udpBefore.sndbufErrors,
    },
    latencyP50Ms: latency.percentile(0.5),
    latencyP99Ms: latency.percentile(0.99),
    latencySamples: latency.count,
    echoRoundTripP50Ms: percentile(rtt, 0.5),
    echoRoundTripP95Ms: percentile(rtt, 0.95),
    echoRoundTripSamples: rtt.length,
    echoesMissed: sum((w) => w.echoesMissed),
    vad: vadOver(m.atStart.workers, m.atEnd.workers, sessions * m.windowS),
    utterancesEnded: sum((w) => w.utterancesEnded),
    endpointAlignmentP50Ms: percentile(all((w) => w.endpointAlignmentMs), 0.5),
    serverPaceWaitP95Ms: percentile(all((w) => w.serverPaceWaitMs), 0.95),
    setupConnectedP50Ms: percentile(connectedMs, 0.5),
    setupConnectedP99Ms: percentile(connectedMs, 0.99),
    setupP50Ms: percentile(listeningMs, 0.5),
    setupP99Ms: percentile(listeningMs, 0.99),
    loadGenerator: {
      processes: loadProcesses,
      timerLagP99Ms,
      timerLagMaxMs: Math.max(...m.reports.map((w) => w.timerLagMaxMs)),
      ticksLateOver20Ms: sum((w) => w.ticksLateOver20Ms),
      framesSkipped,
      cpuPercentOfCore: percentOfCore(m.loadCpuMs),
      keptPace: timerLagP99Ms <= 10 && framesSkipped === 0,
    },
    conversation: echoLoad ? null : conversationFigures(m.reports),
    machineBusyPercent: machineBusyPercent(m.machine[0], m.machine[1]),
    otherCpuPercentOfCore: percentOfCore(m.otherCpuMs),
    otherCpuBeforeStepPercentOfCore: 0,
    contended: percentOfCore(m.otherCpuMs) > CONTENDED_OTHER_PERCENT,
    attempt: 1,
    checks: [],
  };
  row.checks = checkRow(row);
  return row;
}

function conversationFigures(reports: WindowReport[]): ConversationFigures {
  const errors: Record<string, number> = {};
  for (const r of reports) for (const [code, count] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + count;
  const delays = reports.flatMap((r) => r.answerDelayMs);
  return {
    utterancesSent: reports.reduce((s, r) => s + r.utterancesEnded, 0),
    turnsHeard: reports.reduce((s, r) => s + r.turnsHeard, 0),
    answered: reports.reduce((s, r) => s + r.answered, 0),
    interrupted: reports.reduce((s, r) => s + r.interrupted, 0),
    answerDelayP50Ms: percentile(delays, 0.5),
    answerDelayP95Ms: percentile(delays, 0.95),
    sttFinalP95Ms: percentile(reports.flatMap((r) => r.sttFinalMs), 0.95),
    errors,
  };
}

/** The workers' Silero counters between two snapshots; null when no worker reports any. */
function vadOver(before: WorkerStats[], after: WorkerStats[], sessionSeconds: number): StepResult['vad'] {
  if (!after.some((w) => w.vad)) return null;
  const count = (workers: WorkerStats[], key: 'windows' | 'runs' | 'runMs' | 'waitMs') => workers.reduce((s, w) => s + (w.vad?.[key] ?? 0), 0);
  const windows = count(after, 'windows') - count(before, 'windows');
  const runs = count(after, 'runs') - count(before, 'runs');
  const runMs = count(after, 'runMs') - count(before, 'runMs');
  const waitMs = count(after, 'waitMs') - count(before, 'waitMs');
  const perSessionSecond = (x: number) => (sessionSeconds > 0 ? x / sessionSeconds : 0);
  return {
    windows,
    runs,
    windowsPerSessionSecond: perSessionSecond(windows),
    meanBatch: runs > 0 ? windows / runs : null,
    runMsPerSessionSecond: perSessionSecond(runMs),
    usPerWindow: windows > 0 ? (runMs * 1000) / windows : null,
    waitMsPerWindow: windows > 0 ? waitMs / windows : null,
  };
}

function totals(workers: WorkerStats[]): PacketTotals {
  const sum: PacketTotals = { received: 0, lost: 0, concealed: 0, fecRecovered: 0, late: 0, duplicates: 0, overflowDrops: 0 };
  for (const w of workers) for (const key of Object.keys(sum) as (keyof PacketTotals)[]) sum[key] += w.packets[key];
  return sum;
}

/**
 * The box may be shared (other test runs, compilers). Before a step, wait (bounded) until processes
 * other than the server and this runner use less than QUIET_OTHER_PERCENT of one core; returns
 * the last such reading, in % of one core.
 */
async function waitForQuietBox(server: ServerUnderTest, limitS: number, log: Log): Promise<number> {
  const deadline = performance.now() + limitS * 1000;
  let warned = false;
  for (;;) {
    const machine0 = machineCpu();
    const server0 = processCpuMs(server.pid);
    const runner0 = process.cpuUsage();
    const t0 = performance.now();
    await sleep(QUIET_SAMPLE_MS);
    const runner = process.cpuUsage(runner0);
    const otherMs = machineCpu().busyMs - machine0.busyMs - (processCpuMs(server.pid) - server0) - (runner.user + runner.system) / 1000;
    const other = (otherMs / (performance.now() - t0)) * 100;
    if (other < QUIET_OTHER_PERCENT) return other;
    if (performance.now() > deadline) {
      if (limitS > 0) log(`  WARNING: other processes keep using ${other.toFixed(0)}% of a core; measuring anyway (figures will be pessimistic)`);
      return other;
    }
    if (!warned) log(`  waiting for the box to quieten: other processes use ${other.toFixed(0)}% of a core`);
    warned = true;
  }
}

/** Waits (bounded) until the workers' received-packet count holds still for a second; returns the wait, s. */
async function waitForServerToCatchUp(server: ServerUnderTest): Promise<number> {
  const started = performance.now();
  let last = -1;
  let stableSince = started;
  while (performance.now() - started < CATCH_UP_LIMIT_MS) {
    const received = totals((await server.stats(false)).workers).received;
    if (received !== last) {
      last = received;
      stableSince = performance.now();
    } else if (performance.now() - stableSince >= 1000) {
      break;
    }
    await sleep(200);
  }
  return (stableSince - started) / 1000;
}

async function waitForNoSessions(server: ServerUnderTest): Promise<ServerSnapshot> {
  const deadline = performance.now() + DRAIN_LIMIT_MS;
  for (;;) {
    const snapshot = await server.stats(false);
    if (snapshot.sessions === 0 && snapshot.mediaClosing === 0 && snapshot.workers.every((w) => w.sessions === 0)) return snapshot;
    if (performance.now() > deadline) {
      throw new BenchAbort(`server still reports ${snapshot.sessions} sessions (${snapshot.mediaClosing} closing) ${DRAIN_LIMIT_MS / 1000} s after the clients left`);
    }
    await sleep(250);
  }
}
