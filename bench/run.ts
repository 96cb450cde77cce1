// `npm run bench`: starts the server in its own process, then for each session count starts load
// generator processes (real werift clients on loopback sending looped Opus speech), measures the
// server over a steady window, tears the clients down, and writes bench/results/*.json plus a table.
//
//   BENCH_SESSIONS=50,100,200,300  session counts, one step each
//   BENCH_DURATION_S=20            steady window per step
//   BENCH_QUICK=1                  sanity run: 10 sessions, 5 s (explicit BENCH_* values still win)
//   BENCH_LOAD_PROCS=4             load-generator processes per step
//   BENCH_JOIN_RATE=25             joins per second across all load processes
//   BENCH_SETTLE_S=3               wait between "all listening" and the window
//   BENCH_ECHO=0                   receive pipeline only: the server hears every utterance but echoes none
//   BENCH_MIN_SILENCE_MS=1500      silence after each utterance (lengthened so the echo fits, see speech-loop.ts)
//   BENCH_QUIET_WAIT_S=90          before each step, wait up to this long for other processes on the box to go quiet
//   BENCH_CONTENTION_RETRIES=1     repeat a step whose window other processes disturbed (> 30% of a core)
//   BENCH_SERVER_CPU_PROF=<dir>    the server writes V8 CPU profiles there (main thread, each worker); see bench/profile-summary.ts
//   BENCH_PIPELINE*                the listening-pipeline steps that follow (stt_tts mode): bench/pipeline.ts
// Any other variable (MEDIA_WORKERS, ECHO_END_SILENCE_MS, JITTER_*) is passed on to the server.
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { buildSpeechLoop } from './speech-loop.ts';
import { clockTicksPerSecond, processRssBytes } from './proc-stats.ts';
import { DEFINITIONS, formatChecks, formatTable, TARGETS, type StepResult } from './report.ts';
import { BenchAbort, killAllChildren, sleep } from './children.ts';
import { ServerUnderTest } from './server-under-test.ts';
import { runStep, SETUP_LIMIT_MS, type StepOptions } from './step.ts';
import { maxPipelineSteps, newPipelineResult, readPipelineOptions, runAnsweringStep, runListeningSteps, type PipelineResult } from './pipeline.ts';
import { formatPipelineChecks, formatPipelineTable, formatSearch, pipelineChecks, PIPELINE_DEFINITIONS } from './pipeline-report.ts';
import { SttStub } from './stt-stub.ts';

const IDLE_RSS_MIN_WAIT_MS = 5000;
const WARM_UP_SESSIONS = 4;
/** Server start, warm-up step and idle-RSS wait. */
const WARM_UP_LIMIT_S = 300;
const MB = 1024 * 1024;
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

interface BenchOptions extends StepOptions {
  sessions: number[];
  contentionRetries: number;
  quick: boolean;
}

function readOptions(env: NodeJS.ProcessEnv): BenchOptions {
  const quick = env.BENCH_QUICK === '1';
  const number = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name]?.trim();
    if (!raw) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new BenchAbort(`${name}=${raw}: must be a number in [${min}, ${max}]`);
    return n;
  };
  const sessions = (env.BENCH_SESSIONS?.trim() || (quick ? '10' : '50,100,200,300')).split(',').map((s) => Number(s.trim()));
  if (sessions.some((n) => !Number.isInteger(n) || n < 1 || n > 5000)) throw new BenchAbort(`BENCH_SESSIONS=${env.BENCH_SESSIONS}: integers in [1, 5000]`);
  return {
    sessions,
    durationS: number('BENCH_DURATION_S', quick ? 5 : 20, 1, 600),
    loadProcs: Math.floor(number('BENCH_LOAD_PROCS', 4, 1, 32)),
    joinRatePerS: number('BENCH_JOIN_RATE', 25, 0.5, 1000),
    settleS: number('BENCH_SETTLE_S', quick ? 1 : 3, 0, 60),
    echo: env.BENCH_ECHO !== '0',
    minSilenceMs: number('BENCH_MIN_SILENCE_MS', 1500, 0, 20_000),
    quietWaitS: number('BENCH_QUIET_WAIT_S', quick ? 10 : 90, 0, 600),
    contentionRetries: Math.floor(number('BENCH_CONTENTION_RETRIES', 1, 0, 5)),
    quick,
  };
}

/**
 * RSS of the idle server. After activity stops, V8's memory reducer shrinks each thread's heap in
 * turn, in steps 10-15 s apart (seen idle: 212 -> 186 -> 172 -> 160 MB over 30 s). So: collect the
 * main thread's garbage, wait until RSS has stayed within 1 MB for `flatMs` (bounded), and take
 * the lowest sample.
 */
async function idleRss(server: ServerUnderTest, flatMs: number, limitMs: number): Promise<number> {
  await sleep(IDLE_RSS_MIN_WAIT_MS);
  await server.stats(false, true);
  const deadline = performance.now() + limitMs;
  const samples: number[] = [];
  const window = Math.ceil(flatMs / 500);
  for (;;) {
    await sleep(500);
    samples.push(processRssBytes(server.pid));
    const recent = samples.slice(-window);
    const settled = recent.length === window && Math.max(...recent) - Math.min(...recent) <= MB;
    if (settled || performance.now() > deadline) return Math.min(...samples);
  }
}

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

function writeResults(report: object): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = `${RESULTS_DIR}bench-${stamp}.json`;
  const text = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(file, text);
  writeFileSync(`${RESULTS_DIR}latest.json`, text);
  return file;
}

async function main(): Promise<number> {
  const options = readOptions(process.env);
  const pipeline = readPipelineOptions(process.env, options.quick);
  const echoSteps = pipeline.run === 'only' ? [] : options.sessions;
  // Without echo steps the echo need not answer: off, so the pipeline part can measure echo mode
  // hearing the talking clients (the talking-echo rows, bench/pipeline.ts).
  const serverEcho = options.echo && echoSteps.length > 0;
  // Every wait inside a step is bounded; this only catches what slips through (a hung child, say).
  const perStepLimitS = (options.quietWaitS + 60 + SETUP_LIMIT_MS / 1000 + options.settleS + options.durationS + 150) * (1 + options.contentionRetries);
  const watchdog = setTimeout(() => {
    process.stderr.write('bench: overall time limit exceeded; killing everything\n');
    killAllChildren();
    process.exit(2);
  }, (WARM_UP_LIMIT_S + (echoSteps.length + maxPipelineSteps(pipeline)) * perStepLimitS) * 1000);
  watchdog.unref();

  log(`bench: sessions ${echoSteps.join(', ') || 'none'}; ${options.durationS} s window; ${options.loadProcs} load processes; ` +
    `joins ${options.joinRatePerS}/s; echo ${serverEcho ? 'on' : 'off (receive pipeline only)'}; ${availableParallelism()} cores`);
  if (pipeline.run !== 'off') {
    log(`then the listening pipeline (stt_tts): ${pipeline.sessions} talking, silent and baseline sessions; search from ${pipeline.sessions} over ` +
      `${pipeline.search.join(', ')} (at most ${pipeline.maxSearchSteps} more); ` +
      `${pipeline.durationS} s windows; answering step ${pipeline.answerSessions || 'skipped'}; within ${pipeline.limitS} s`);
  }
  // The agent steps' turns end at a loopback STT stub (bench/pipeline.ts says why); echo sessions never use it.
  const stub = pipeline.run !== 'off' ? await SttStub.start() : null;
  const largest = Math.max(...options.sessions, ...(pipeline.run !== 'off' ? [pipeline.sessions, ...pipeline.search] : []));
  const server = await ServerUnderTest.start({ maxSessions: largest + 100, echo: serverEcho, env: stub?.serverEnv() });
  const rows: StepResult[] = [];
  let pipelineResult: PipelineResult | null = null;
  let pipelineDeadline = 0;
  let abort: string | null = null;
  let rssIdleBytes = 0;
  const loop = buildSpeechLoop(server.echo, options.minSilenceMs);
  try {
    // A short throwaway step first: JIT warm-up, and the workers collect their start-up garbage,
    // so neither the idle baseline nor the first step's figures carry start-up effects.
    log(`warm-up: ${WARM_UP_SESSIONS} sessions, 3 s`);
    await runStep(server, WARM_UP_SESSIONS, { ...options, durationS: 3, settleS: 0, quietWaitS: 0 }, 0, log);
    rssIdleBytes = options.quick ? await idleRss(server, 5000, 15_000) : await idleRss(server, 20_000, 75_000);
    log(`server pid ${server.pid}, port ${server.port}, ${server.mediaWorkers} media workers, idle RSS ${(rssIdleBytes / MB).toFixed(1)} MB`);
    log(`client audio: ${loop.speechFrames * 20} ms speech (last loud frame ${loop.speechEndFrame}) + ${loop.silenceMs} ms silence, looped; ` +
      `echo ${Math.round(loop.echoMs)} ms per utterance; endpointing silence ${server.echo.endSilenceMs} ms`);
    for (const n of echoSteps) {
      log(`step: ${n} sessions`);
      let row = await runStep(server, n, options, rssIdleBytes, log);
      for (let retry = 1; row.contended && retry <= options.contentionRetries; retry++) {
        log(`  other processes used ${row.otherCpuPercentOfCore.toFixed(0)}% of a core during the window; repeating the step`);
        row = await runStep(server, n, options, rssIdleBytes, log);
        row.attempt = retry + 1;
      }
      const previous = rows.at(-1);
      if (previous && row.connected !== previous.connected) {
        row.rssMbPerSessionMarginal = (row.rssSteadyMaxMb - previous.rssSteadyMaxMb) / (row.connected - previous.connected);
      }
      rows.push(row);
      log(`  cpu ${row.cpuMsPerSessionSecond.toFixed(2)} ms/session-s (${row.serverCpuPercentOfCore.toFixed(0)}% of a core), ` +
        `lag p99 ${Object.entries(row.lagP99Ms).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')} ms, ` +
        `echo RTT p95 ${row.echoRoundTripP95Ms?.toFixed(1) ?? '-'} ms, box ${row.machineBusyPercent.toFixed(0)}% busy`);
      if (!row.loadGenerator.keptPace) {
        log(`  WARNING: the load generator did not keep its 20 ms pace (timer lag p99 ${row.loadGenerator.timerLagP99Ms.toFixed(1)} ms, ` +
          `${row.loadGenerator.framesSkipped} frames skipped): figures at this step are limited by the client side`);
      }
    }
    if (pipeline.run !== 'off') {
      pipelineDeadline = performance.now() + pipeline.limitS * 1000;
      pipelineResult = await newPipelineResult(pipeline);
      // The echo steps leave a bigger heap behind: a fresh baseline for RSS per session.
      const rssIdle = echoSteps.length === 0 ? rssIdleBytes : await idleRss(server, options.quick ? 5000 : 10_000, options.quick ? 15_000 : 30_000);
      log(`\nlistening pipeline: idle RSS ${(rssIdle / MB).toFixed(1)} MB; talking clients: ${pipelineResult.talkingLoop.speechMs} ms speech + ${pipelineResult.talkingLoop.silenceMs} ms silence, ` +
        `each holds a Silero stream ~${(pipelineResult.talkingLoop.sileroLeaseShare * 100).toFixed(0)}% of the time and Silero runs on ~${(pipelineResult.talkingLoop.sileroFrameShare * 100).toFixed(0)}% of its frames (est.); ` +
        `turns end at the STT stub (${stub!.baseUrl})`);
      await runListeningSteps(server, options, pipeline, stub!, pipelineResult, rssIdle, pipelineDeadline, log);
    }
  } catch (error) {
    if (!(error instanceof BenchAbort)) throw error;
    abort = error.message;
    log(`\nbench ABORTED: ${abort}`);
  } finally {
    await server.stop();
    killAllChildren();
  }
  if (pipelineResult && !abort) {
    // On a server of its own, after the first one is gone: they would share the two cores.
    try {
      await runAnsweringStep(options, pipeline, pipelineResult, pipelineDeadline, log);
    } catch (error) {
      if (!(error instanceof BenchAbort)) throw error;
      pipelineResult.answeringNote = `aborted: ${error.message}`;
      log(`  answering step ABORTED: ${error.message}`);
    } finally {
      killAllChildren();
    }
  } else if (pipelineResult) {
    pipelineResult.answeringNote = 'not run: the benchmark was aborted';
  }
  await stub?.close();

  const report = {
    startedAt: new Date().toISOString(),
    aborted: abort,
    machine: { cores: availableParallelism(), clockTicksPerSecond: clockTicksPerSecond(), node: process.version },
    options,
    server: { mediaWorkers: server.mediaWorkers, echo: server.echo, idleRssMb: rssIdleBytes / MB },
    clientAudio: { speechMs: loop.speechFrames * 20, silenceMs: loop.silenceMs, speechEndFrame: loop.speechEndFrame, endpointFrame: loop.endpointFrame, echoMs: loop.echoMs },
    targets: TARGETS.map(({ value: _value, ...t }) => ({ ...t, appliesUpTo: Number.isFinite(t.appliesUpTo) ? t.appliesUpTo : null })),
    definitions: DEFINITIONS,
    rows,
    pipeline: pipelineResult && {
      ...pipelineResult,
      targets: pipelineChecks(pipelineResult),
      definitions: PIPELINE_DEFINITIONS,
    },
  };
  const file = writeResults(report);

  if (rows.length > 0) {
    log(`\n${formatTable(rows, server.mediaWorkers)}`);
    log('  "!": client timer = the load generator fell behind its 20 ms pace; box busy = over 90%, the box is saturated;\n' +
      '       other cpu = other processes disturbed the window. Figures on a "!" row describe an overloaded box, not the server alone.');
    log(`\nTargets (docs: DESIGN.md; n/a = above the load the target is stated for)\n${formatChecks(rows)}`);
    log('\nDiagnostics');
    for (const r of rows) {
      log(`  ${r.sessions}: echo RTT p50 ${r.echoRoundTripP50Ms?.toFixed(1) ?? '-'} ms, missed ${r.echoesMissed}/${r.utterancesEnded}; ` +
        `endpoint alignment p50 ${r.endpointAlignmentP50Ms?.toFixed(0) ?? '-'} ms; server pacer wait p95 ${r.serverPaceWaitP95Ms?.toFixed(0) ?? '-'} ms; ` +
        `lag max ${Object.entries(r.lagMaxMs).map(([k, v]) => `${k} ${v.toFixed(0)}`).join('/')} ms; ` +
        `concealed ${r.packets.concealed}, fec ${r.packets.fecRecovered}, dup ${r.packets.duplicates}, overflow ${r.packets.overflowDrops}; ` +
        `echo pkts to clients ${r.packets.echoReceivedByClients}; kernel UDP rcvbuf/in/sndbuf errors ${r.packets.kernelUdpRcvbufErrors}/${r.packets.kernelUdpInErrors}/${r.packets.kernelUdpSndbufErrors}; ` +
        `server CPU ${r.serverCpuPercentOfCore.toFixed(0)}% of a core (${(r.serverCpuKernelShare * 100).toFixed(0)}% in the kernel); RSS ${r.rssSteadyMaxMb.toFixed(0)} MB (marginal ${r.rssMbPerSessionMarginal?.toFixed(2) ?? '-'} MB/session); load gen ${r.loadGenerator.cpuPercentOfCore.toFixed(0)}% of a core` +
        `; server states ${JSON.stringify(r.serverStatesAtWindowEnd)}` +
        (r.setupFailures > 0 ? `; setup failures ${r.setupFailures}` : ''));
    }
    log('\nDefinitions');
    for (const [name, text] of Object.entries(DEFINITIONS)) log(`  ${name}: ${text}`);
  }
  if (pipelineResult && (pipelineResult.rows.length > 0 || pipelineResult.answering)) {
    log('\nListening pipeline (stt_tts, VAD gating). talking/silent: turns end at a loopback STT stub and are not answered, so the figures are the pipeline\'s;\n' +
      '  baseline: the silent clients in echo mode (the foundation); answering: local STT -> rule agent -> flite TTS on a server of its own, for comparison');
    log(formatPipelineTable(pipelineResult, server.mediaWorkers));
    log('  "*": lag p99 above 20 ms. "!": the load generator fell behind, the box was saturated, or other processes disturbed the window (as for the echo table).\n' +
      '  energy-only VAD (est.): share of the frames that want Silero judged by energy alone because the worker has no Silero stream left to give (2000 each).');
    log(`\nTargets (issue: listening pipeline under load)\n${formatPipelineChecks(pipelineResult)}`);
    log(formatSearch(pipelineResult));
    log(`  STT stub answered ${pipelineResult.sttStub.requests} turn uploads (${(pipelineResult.sttStub.uploadBytes / MB).toFixed(1)} MB)` +
      `${pipelineResult.answeringNote ? `; answering step: ${pipelineResult.answeringNote}` : ''}`);
    log('\nDefinitions (pipeline)');
    for (const [name, text] of Object.entries(PIPELINE_DEFINITIONS)) log(`  ${name}: ${text}`);
  }
  log(`\nresults: ${file}`);
  clearTimeout(watchdog);
  return abort ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${(error as Error)?.stack ?? String(error)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
