// The voice agent's listening pipeline under load (issue targets: pipeline CPU per session-second
// with VAD gating <= 3 ms, and the largest number of concurrent talking sessions that keeps
// event-loop lag p99 <= 20 ms in every thread). Run by run.ts after the echo steps, on the same
// server: the clients join in `stt_tts` mode, so every frame goes through the listening pipeline
// (energy pre-gate + batched Silero VAD, echo guard, turn detector). At BENCH_PIPELINE_SESSIONS, three
// steps: "talking" and "silent" clients in stt_tts mode, and a "baseline" of silent clients in echo
// mode (receive, decode, energy endpointing: the foundation). Pipeline CPU = stt_tts row - baseline.
//
// When the server's echo answers nothing (BENCH_PIPELINE=only, or BENCH_ECHO=0), each pair also
// has a "talking-echo" step: the talking clients in echo mode, which the server hears (decode,
// energy endpointing, turn events) but does not answer. Talking minus talking-echo is what the
// listening pipeline adds over the foundation hearing the same speech; talking minus baseline also
// counts what talking clients cost the foundation itself (their bigger packets, endpointing).
//
// Before the measured steps, throwaway steps of talking clients at the measured size (stt_tts, and
// echo mode where a pair has a talking-echo step) compile the code paths of both (the server's
// warm-up step runs silent echo clients only), so the first pair does not pay for the JIT.
//
// Turns are detected but not answered: STT is a loopback stub (bench/stt-stub.ts) that returns an
// empty transcript at once. With the local recogniser, every looping client's turn would queue for
// its worker's single pocketsphinx decoder, and the figures would measure that queue rather than
// the pipeline. The "answering" step measures the real thing (local STT -> rule agent -> flite TTS)
// on a server of its own, at a small session count, for comparison.
//
//   BENCH_PIPELINE=1                   1: after the echo steps; 0: skip; only: skip the echo steps
//   BENCH_PIPELINE_SESSIONS=20         size of the talking, silent and baseline steps (BENCH_QUICK: 10);
//   BENCH_PIPELINE_PAIRS=5             talking/baseline pairs at that size (BENCH_QUICK: 1): the pipeline
//                                      figure is the median of the pairs' differences (later pairs run
//                                      baseline first, so the order of the two does not bias it)
//   BENCH_PIPELINE_SEARCH=10,20,30,40,60,80,100,120,160,200   session counts the search may try: from
//                                      the talking step up while steps pass (down while they fail)
//   BENCH_PIPELINE_MAX_STEPS=6         most search steps besides the talking step (BENCH_QUICK: 1)
//   BENCH_PIPELINE_DURATION_S=10       steady window per step (BENCH_QUICK: 5)
//   BENCH_PIPELINE_SILENCE_MS=1500     silence after each utterance of a talking client
//   BENCH_PIPELINE_ANSWER_SESSIONS=10  sessions of the answering step, 0 = skip (BENCH_QUICK: 4)
//   BENCH_PIPELINE_LIMIT_S=540         time for all of it (BENCH_QUICK: 150); search steps and contention
//                                      repeats that would not fit are not run
//   BENCH_PIPELINE_QUIET_WAIT_S=20     like BENCH_QUIET_WAIT_S, for these steps (BENCH_QUICK: 5)
import { performance } from 'node:perf_hooks';
import { BenchAbort } from './children.ts';
import { processRssBytes } from './proc-stats.ts';
import { ServerUnderTest } from './server-under-test.ts';
import { buildTalkLoop, ROOM_NOISE_DBFS } from './speech-loop.ts';
import { runStep, type LoadProfile, type StepOptions } from './step.ts';
import { sileroDemand } from './vad-demand.ts';
import { describeRow, LAG_LIMIT_MS, worstLag } from './pipeline-report.ts';
import { SATURATED_PERCENT, type StepResult } from './report.ts';
import type { SttStub } from './stt-stub.ts';

/** A client that waits for the answer before it speaks again: the rule agent's fallback answer is ~6 s of speech. */
const ANSWERING_SILENCE_MS = 8000;
/** Time kept for the answering step (server start, one loop of settle, window, teardown) when the search is cut. */
const ANSWERING_RESERVE_S = 45;
/** Time kept for two search steps: a step of the first three is not repeated (contention) if that would eat it. */
const SEARCH_RESERVE_S = 60;

export interface PipelineOptions {
  run: 'after' | 'off' | 'only';
  sessions: number;
  pairs: number;
  search: number[];
  maxSearchSteps: number;
  durationS: number;
  silenceMs: number;
  answerSessions: number;
  limitS: number;
  quietWaitS: number;
}

export interface SearchStep {
  sessions: number;
  pass: boolean;
  worstLagP99Ms: number;
  worstThread: string;
  /** Why a step failed. */
  note: string | null;
  /** Why its verdict is doubtful: the load generator fell behind, the box was saturated or disturbed. */
  caveats: string[];
}

export interface PipelineResult {
  options: PipelineOptions;
  /** Silero shares: estimates, from the server's VoiceActivity run over the loop in the runner (vad-demand.ts). */
  talkingLoop: { speechMs: number; silenceMs: number; sileroLeaseShare: number; sileroFrameShare: number };
  silentLoop: { noiseDbfs: number };
  sttStub: { requests: number; uploadBytes: number };
  /** Steps in the order run: talking, silent, baseline, then the search's further talking steps. */
  rows: StepResult[];
  search: {
    /** By session count. */
    steps: SearchStep[];
    /** Largest passing step below the smallest failing one; null when none passed. */
    maxTalkingSessions: number | null;
    /** bracketed: a pass and the failure just above it were both measured. */
    stoppedBy: 'bracketed' | 'end of list' | 'step limit' | 'time limit' | 'aborted';
  };
  answering: StepResult | null;
  answeringNote: string | null;
}

type Log = (line: string) => void;

export function readPipelineOptions(env: NodeJS.ProcessEnv, quick: boolean): PipelineOptions {
  const number = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name]?.trim();
    if (!raw) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) throw new BenchAbort(`${name}=${raw}: must be a number in [${min}, ${max}]`);
    return n;
  };
  const run = env.BENCH_PIPELINE?.trim() || '1';
  if (!['0', '1', 'only'].includes(run)) throw new BenchAbort(`BENCH_PIPELINE=${run}: 0, 1 or only`);
  const search = (env.BENCH_PIPELINE_SEARCH?.trim() || '10,20,30,40,60,80,100,120,160,200').split(',').map((s) => Number(s.trim()));
  if (search.some((n, i) => !Number.isInteger(n) || n < 1 || n > 2000 || (i > 0 && n <= search[i - 1]!))) {
    throw new BenchAbort(`BENCH_PIPELINE_SEARCH=${env.BENCH_PIPELINE_SEARCH}: ascending integers in [1, 2000]`);
  }
  return {
    run: run === '0' ? 'off' : run === 'only' ? 'only' : 'after',
    sessions: Math.floor(number('BENCH_PIPELINE_SESSIONS', quick ? 10 : 20, 1, 2000)),
    pairs: Math.floor(number('BENCH_PIPELINE_PAIRS', quick ? 1 : 5, 1, 9)),
    search,
    maxSearchSteps: Math.floor(number('BENCH_PIPELINE_MAX_STEPS', quick ? 1 : 6, 0, 50)),
    durationS: number('BENCH_PIPELINE_DURATION_S', quick ? 5 : 10, 1, 600),
    silenceMs: number('BENCH_PIPELINE_SILENCE_MS', 1500, 600, 20_000),
    answerSessions: Math.floor(number('BENCH_PIPELINE_ANSWER_SESSIONS', quick ? 4 : 10, 0, 500)),
    limitS: number('BENCH_PIPELINE_LIMIT_S', quick ? 150 : 540, 10, 3600),
    quietWaitS: number('BENCH_PIPELINE_QUIET_WAIT_S', quick ? 5 : 20, 0, 600),
  };
}

/** Most steps the pipeline part may run (for the runner's watchdog). */
export function maxPipelineSteps(p: PipelineOptions): number {
  return p.run === 'off' ? 0 : 4 + 3 * p.pairs + p.maxSearchSteps + (p.answerSessions > 0 ? 1 : 0);
}

export async function newPipelineResult(p: PipelineOptions): Promise<PipelineResult> {
  const loop = buildTalkLoop(p.silenceMs);
  const demand = await sileroDemand(loop);
  return {
    options: p,
    talkingLoop: { speechMs: loop.speechFrames * 20, silenceMs: loop.silenceMs, sileroLeaseShare: demand.leaseShare, sileroFrameShare: demand.frameShare },
    silentLoop: { noiseDbfs: ROOM_NOISE_DBFS },
    sttStub: { requests: 0, uploadBytes: 0 },
    rows: [],
    search: { steps: [], maxTalkingSessions: null, stoppedBy: 'aborted' },
    answering: null,
    answeringNote: null,
  };
}

/**
 * Talking, silent and baseline steps at `sessions`, then the search over talking steps. Fills `result` as it
 * goes, so an abort keeps what was measured. `deadline`: performance.now() by which the pipeline
 * part (answering step included) should be done.
 */
export async function runListeningSteps(
  server: ServerUnderTest, base: StepOptions & { contentionRetries: number }, p: PipelineOptions, stub: SttStub,
  result: PipelineResult, rssIdleBytes: number, deadline: number, log: Log,
): Promise<void> {
  const talkingOptions = pipelineStepOptions(base, p, result.talkingLoop.speechMs + result.talkingLoop.silenceMs);
  const quietOptions = pipelineStepOptions(base, p, 0);
  const talking: LoadProfile = { label: 'talking', mode: 'stt_tts', audio: { kind: 'talking', silenceMs: p.silenceMs } };
  const silent: LoadProfile = { label: 'silent', mode: 'stt_tts', audio: { kind: 'silent' } };
  const baseline: LoadProfile = { label: 'baseline', mode: 'echo', audio: { kind: 'silent' } };
  const talkingEcho: LoadProfile = { label: 'talking-echo', mode: 'echo', audio: { kind: 'talking', silenceMs: p.silenceMs } };
  // Only where the echo cannot answer the fixture's utterances (an answer would add its encoding).
  const speechMatched = server.echo.minSpeechMs > result.talkingLoop.speechMs;
  const answeringReserveS = p.answerSessions > 0 ? ANSWERING_RESERVE_S : 0;
  const measure = async (n: number, profile: LoadProfile, retryDeadline: number, pair?: number): Promise<{ row: StepResult; seconds: number }> => {
    const started = performance.now();
    log(`pipeline step: ${n} ${profile.label} sessions (${profile.mode} mode)${pair ? `, pair ${pair}` : ''}`);
    const options = profile.audio.kind === 'talking' ? talkingOptions : quietOptions;
    const row = await runRetried(server, n, options, base.contentionRetries, rssIdleBytes, log, profile, retryDeadline);
    if (pair) row.pair = pair;
    result.rows.push(row);
    result.sttStub = { requests: stub.requests, uploadBytes: stub.uploadBytes };
    log(describeRow(row, server.mediaWorkers, result.talkingLoop.sileroLeaseShare));
    return { row, seconds: (performance.now() - started) / 1000 };
  };

  // Warm-up at the measured size, one talking loop of each mode that a pair measures: per-turn code
  // (the upload to speech-to-text, turn events) runs a few times a second only at full size, and
  // until V8 has compiled it, a step pays for the compiler threads too.
  const loopS = Math.ceil((result.talkingLoop.speechMs + result.talkingLoop.silenceMs) / 1000);
  for (const profile of speechMatched ? [talking, talkingEcho] : [talking]) {
    log(`pipeline warm-up: ${p.sessions} ${profile.label} sessions (${profile.mode} mode), one loop (not measured)`);
    await runStep(server, p.sessions, { ...talkingOptions, durationS: loopS, quietWaitS: 0 }, 0, log, profile);
  }

  const firstRetryDeadline = deadline - (answeringReserveS + SEARCH_RESERVE_S) * 1000;
  const first = await measure(p.sessions, talking, firstRetryDeadline, 1);
  const search = result.search;
  record(search, first.row);
  await measure(p.sessions, silent, firstRetryDeadline);
  await measure(p.sessions, baseline, firstRetryDeadline, 1);
  if (speechMatched) await measure(p.sessions, talkingEcho, firstRetryDeadline, 1);
  // Further pairs, baseline first: a drift of the box (or of the server's heap) over the steps then
  // weighs on the two sides alike. A pair that would not fit before the deadline is not started.
  for (let pair = 2; pair <= p.pairs; pair++) {
    const pairS = (speechMatched ? 3 : 2) * Math.max(first.seconds, 1);
    if (performance.now() + (pairS + answeringReserveS + SEARCH_RESERVE_S) * 1000 > deadline) {
      log(`  pairs: ${pair - 1} of ${p.pairs} (time limit)`);
      break;
    }
    await measure(p.sessions, baseline, firstRetryDeadline, pair);
    if (speechMatched) await measure(p.sessions, talkingEcho, firstRetryDeadline, pair);
    await measure(p.sessions, talking, firstRetryDeadline, pair);
  }

  // From the talking step: up while steps pass, or down while they fail, until a pass sits below a failure.
  const up = search.steps[0]!.pass;
  const ladder = p.search.filter((n) => (up ? n > p.sessions : n < p.sessions));
  if (!up) ladder.reverse();
  let last = first;
  search.stoppedBy = 'end of list';
  for (const [i, n] of ladder.entries()) {
    if (i >= p.maxSearchSteps) {
      search.stoppedBy = 'step limit';
      break;
    }
    const extraJoinS = Math.max(0, n - last.row.sessions) / base.joinRatePerS;
    if (performance.now() + (last.seconds + extraJoinS + answeringReserveS) * 1000 > deadline) {
      search.stoppedBy = 'time limit';
      break;
    }
    last = await measure(n, talking, deadline - answeringReserveS * 1000);
    if (record(search, last.row) !== up) {
      search.stoppedBy = 'bracketed';
      break;
    }
  }
}

/** Adds a talking step to the search; returns whether it passed. */
function record(search: PipelineResult['search'], row: StepResult): boolean {
  const n = row.sessions;
  const { ms, thread } = worstLag(row);
  const complete = row.connected === n && row.setupFailures === 0;
  const pass = complete && ms <= LAG_LIMIT_MS;
  const note = !complete ? `${row.connected}/${n} clients listening` : pass ? null : `lag p99 ${ms.toFixed(1)} ms in ${thread}`;
  search.steps.push({ sessions: n, pass, worstLagP99Ms: ms, worstThread: thread, note, caveats: caveats(row) });
  search.steps.sort((a, b) => a.sessions - b.sessions);
  const lowestFailure = Math.min(...search.steps.filter((x) => !x.pass).map((x) => x.sessions));
  const passes = search.steps.filter((x) => x.pass && x.sessions < lowestFailure).map((x) => x.sessions);
  search.maxTalkingSessions = passes.length > 0 ? Math.max(...passes) : null;
  return pass;
}

/**
 * The answering step: real local providers (pocketsphinx STT -> rule agent -> flite TTS) on a
 * server of its own, clients that wait for each answer. RSS per session is against the server's
 * RSS right after start (no idle baseline: the decoders load with the first turns).
 */
export async function runAnsweringStep(
  base: StepOptions & { contentionRetries: number }, p: PipelineOptions, result: PipelineResult, deadline: number, log: Log,
): Promise<void> {
  if (p.answerSessions === 0) {
    result.answeringNote = 'skipped (BENCH_PIPELINE_ANSWER_SESSIONS=0)';
    return;
  }
  const loopMs = result.talkingLoop.speechMs + ANSWERING_SILENCE_MS;
  // A window of at least one loop, so that every client's turn falls into it.
  const options = { ...pipelineStepOptions(base, p, loopMs), durationS: Math.max(p.durationS, Math.ceil(loopMs / 1000)) };
  log(`pipeline step: ${p.answerSessions} answering sessions (stt_tts, local STT -> agent -> TTS; own server)`);
  const server = await ServerUnderTest.start({ maxSessions: p.answerSessions + 20, echo: true, env: { VOICE_DEFAULT_MODE: 'stt_tts' } });
  try {
    await server.stats(false, true);
    const rssStart = processRssBytes(server.pid);
    const profile: LoadProfile = { label: 'answering', mode: 'stt_tts', audio: { kind: 'talking', silenceMs: ANSWERING_SILENCE_MS } };
    result.answering = await runRetried(server, p.answerSessions, options, base.contentionRetries, rssStart, log, profile, deadline);
    log(describeRow(result.answering, server.mediaWorkers, null));
  } finally {
    await server.stop();
  }
}

/**
 * Talking clients settle for at least one loop (`loopMs`), so that every client has opened its VAD
 * gate and holds a Silero stream, before the window.
 */
function pipelineStepOptions(base: StepOptions, p: PipelineOptions, loopMs: number): StepOptions {
  return { ...base, durationS: p.durationS, quietWaitS: p.quietWaitS, settleS: Math.max(base.settleS, Math.ceil(loopMs / 1000) + 1) };
}

/** Conditions under which a step's lag verdict describes the box more than the server. */
function caveats(row: StepResult): string[] {
  const out: string[] = [];
  if (!row.loadGenerator.keptPace) out.push(`load generator behind (timer p99 ${row.loadGenerator.timerLagP99Ms.toFixed(0)} ms, ${row.loadGenerator.framesSkipped} frames skipped)`);
  if (row.machineBusyPercent > SATURATED_PERCENT) out.push(`box ${row.machineBusyPercent.toFixed(0)}% busy`);
  if (row.contended) out.push(`other processes ${row.otherCpuPercentOfCore.toFixed(0)}% of a core`);
  return out;
}

/** Repeats a step that other processes disturbed (BENCH_CONTENTION_RETRIES), while another one fits before `deadline`. */
async function runRetried(
  server: ServerUnderTest, n: number, options: StepOptions, retries: number, rssIdleBytes: number, log: Log, profile: LoadProfile, deadline: number,
): Promise<StepResult> {
  const started = performance.now();
  let row = await runStep(server, n, options, rssIdleBytes, log, profile);
  for (let retry = 1; row.contended && retry <= retries; retry++) {
    if (performance.now() + (performance.now() - started) / retry > deadline) {
      log(`  other processes used ${row.otherCpuPercentOfCore.toFixed(0)}% of a core during the window; no time left to repeat the step`);
      break;
    }
    log(`  other processes used ${row.otherCpuPercentOfCore.toFixed(0)}% of a core during the window; repeating the step`);
    row = await runStep(server, n, options, rssIdleBytes, log, profile);
    row.attempt = retry + 1;
  }
  return row;
}
