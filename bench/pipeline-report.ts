// The listening-pipeline part of the report (bench/pipeline.ts): its table, its targets and the
// definitions of its figures, in the style of report.ts.
import { alignColumns, fmt, SATURATED_PERCENT, type StepResult } from './report.ts';
import { energyOnlyShare, SILERO_STREAMS_PER_WORKER } from './vad-demand.ts';
import { ROOM_NOISE_DBFS } from './speech-loop.ts';
import type { PipelineResult } from './pipeline.ts';

/** Issue target: event-loop lag p99 in every thread (main and media workers). */
export const LAG_LIMIT_MS = 20;
/** Issue target: the foundation's per-session CPU budget, kept with the pipeline on every frame. */
export const PIPELINE_CPU_LIMIT_MS = 3;

/**
 * CPU per session-second of the listening pipeline itself: an stt_tts row minus the echo-mode
 * baseline at the same session count (a talking row: the baseline of its pair; the silent row,
 * which has no pair: the median of the baselines, see `silentBaseline`); null where there is none.
 */
export function pipelineCpuMs(row: StepResult, rows: StepResult[]): number | null {
  if (row.load === 'silent') {
    const baseline = silentBaseline(row, rows);
    return baseline === null ? null : row.cpuMsPerSessionSecond - baseline.ms;
  }
  if (row.load !== 'talking' || row.pair === undefined) return null;
  const baseline = rows.find((r) => r.load === 'baseline' && r.pair === row.pair && r.connected === row.connected);
  return baseline ? row.cpuMsPerSessionSecond - baseline.cpuMsPerSessionSecond : null;
}

/**
 * The silent row's reference: the median CPU of the baseline rows at its session count (the
 * undisturbed ones; all when each was disturbed). One baseline step moves by a few ms on a shared
 * box; the silent row, measured once, would carry that noise twice.
 */
export function silentBaseline(silent: StepResult, rows: StepResult[]): { ms: number; used: number } | null {
  const baselines = rows.filter((r) => r.load === 'baseline' && r.connected === silent.connected);
  const clean = baselines.filter((r) => !disturbed(r));
  const used = (clean.length > 0 ? clean : baselines).map((r) => r.cpuMsPerSessionSecond);
  const ms = median(used);
  return ms === null ? null : { ms, used: used.length };
}

function median(values: number[]): number | null {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length === 0 ? null : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A pair's figure, and whether either of its steps was disturbed (see `disturbed`). */
interface PairFigure {
  value: number;
  disturbed: boolean;
}

/** The median over the undisturbed pairs (over all of them when every pair was disturbed). */
export interface PairedFigure {
  pairs: PairFigure[];
  median: number | null;
  /** Pairs the median leaves out. */
  leftOut: number;
}

/**
 * A step whose CPU figure describes the box more than the server: other processes used more than
 * CONTENDED_OTHER_PERCENT (bench/step.ts) of a core during its window, or the load generator fell behind its pace.
 */
export function disturbed(row: StepResult): boolean {
  return row.contended || !row.loadGenerator.keptPace;
}

/** The talking rows minus the baseline of their pair. */
export function talkingPipelineCpu(rows: StepResult[]): PairedFigure {
  return pairedFigure(rows, 'baseline');
}

/**
 * Talking rows minus the talking-echo row of their pair (the foundation hearing the same speech in
 * echo mode, answering nothing).
 */
export function speechMatchedPipelineCpu(rows: StepResult[]): PairedFigure {
  return pairedFigure(rows, 'talking-echo');
}

function pairedFigure(rows: StepResult[], against: string): PairedFigure {
  const pairs: PairFigure[] = [];
  for (const talking of rows.filter((r) => r.load === 'talking' && r.pair !== undefined)) {
    const other = rows.find((r) => r.load === against && r.pair === talking.pair && r.connected === talking.connected);
    if (other) pairs.push({ value: talking.cpuMsPerSessionSecond - other.cpuMsPerSessionSecond, disturbed: disturbed(talking) || disturbed(other) });
  }
  const clean = pairs.filter((p) => !p.disturbed);
  const used = (clean.length > 0 ? clean : pairs).map((p) => p.value);
  return { pairs, median: median(used), leftOut: pairs.length - used.length };
}

function describePairs(figure: PairedFigure): string {
  if (figure.pairs.length < 2) return figure.pairs[0]?.disturbed ? ' (disturbed)' : '';
  const values = figure.pairs.map((p) => `${fmt(p.value, 2)}${p.disturbed ? '*' : ''}`).join(', ');
  const counted = figure.pairs.length - figure.leftOut;
  return ` (median of ${counted} pair${counted === 1 ? '' : 's'}: ${values}${figure.leftOut > 0 ? '; * disturbed, left out' : figure.pairs.some((p) => p.disturbed) ? '; * disturbed, all were' : ''})`;
}

function describeSilentBaseline(silent: StepResult, rows: StepResult[]): string {
  const used = silentBaseline(silent, rows)?.used ?? 0;
  return used > 1 ? ` (against the median of ${used} baselines)` : '';
}

export function worstLag(row: StepResult): { ms: number; thread: string } {
  let worst = { ms: 0, thread: 'main' };
  for (const [thread, ms] of Object.entries(row.lagP99Ms)) if (ms > worst.ms) worst = { ms, thread };
  return worst;
}

/** One log line after a step. `leaseShare`: null where the estimate does not apply. */
export function describeRow(r: StepResult, workers: number, leaseShare: number | null): string {
  const c = r.conversation;
  const energy = leaseShare !== null && r.load === 'talking' ? `, est. energy-only VAD ${(energyOnlyShare(r.connected, workers, leaseShare) * 100).toFixed(0)}%` : '';
  const silero = r.vad && r.vad.windows > 0
    ? `, Silero ${r.vad.windowsPerSessionSecond.toFixed(1)} windows/session-s in batches of ${fmt(r.vad.meanBatch, 1)}, ${r.vad.runMsPerSessionSecond.toFixed(2)} ms/session-s in runs (${fmt(r.vad.usPerWindow, 0)} us/window), waited ${fmt(r.vad.waitMsPerWindow, 1)} ms/window`
    : '';
  const answers = c && r.load === 'answering' ? `, answered ${c.answered} (interrupted ${c.interrupted}), answer delay p50/p95 ${fmt(c.answerDelayP50Ms, 0)}/${fmt(c.answerDelayP95Ms, 0)} ms` : '';
  return `  cpu ${r.cpuMsPerSessionSecond.toFixed(2)} ms/session-s (${r.serverCpuPercentOfCore.toFixed(0)}% of a core), ` +
    `lag p99 ${Object.entries(r.lagP99Ms).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')} ms, ` +
    `turns heard ${c?.turnsHeard ?? '-'}/${c?.utterancesSent ?? '-'} utterances${answers}${silero}${energy}, box ${r.machineBusyPercent.toFixed(0)}% busy` +
    (r.loadGenerator.keptPace ? '' : ' (load generator fell behind)');
}

export function formatPipelineTable(result: PipelineResult, workerCount: number): string {
  const threads = ['main', ...Array.from({ length: workerCount }, (_, i) => `w${i}`)];
  const header = [
    'load', 'sessions', 'cpu ms/sess-s', 'pipeline ms/sess-s', 'RSS MB/sess', `lag p99 ms ${threads.join('/')}`, 'missing', 'lat p50/p99 ms',
    'turns/utterances', 'energy-only VAD (est.)', 'answered (interrupted)', 'answer p50/p95 ms', 'errors',
    'client timer p99/max', 'box busy', 'other cpu',
  ];
  const rows = [...result.rows, ...(result.answering ? [result.answering] : [])];
  const lines = rows.map((r) => {
    const c = r.conversation;
    const answering = r.load === 'answering';
    const errors = Object.entries(c?.errors ?? {}).map(([code, n]) => `${code} ${n}`).join(', ');
    return [
      r.pair !== undefined && result.options.pairs > 1 ? `${r.load} ${r.pair}` : r.load,
      r.connected === r.sessions ? String(r.sessions) : `${r.connected}/${r.sessions}`,
      fmt(r.cpuMsPerSessionSecond, 2),
      fmt(pipelineCpuMs(r, result.rows), 2),
      fmt(r.rssMbPerSession, 2),
      threads.map((t) => `${fmt(r.lagP99Ms[t])}${(r.lagP99Ms[t] ?? 0) > LAG_LIMIT_MS ? '*' : ''}`).join('/'),
      String(r.packets.missingAtServer),
      `${fmt(r.latencyP50Ms, 2)}/${fmt(r.latencyP99Ms, 2)}`,
      c ? `${c.turnsHeard}/${c.utterancesSent}` : '-',
      r.load === 'talking' ? `${(energyOnlyShare(r.connected, workerCount, result.talkingLoop.sileroLeaseShare) * 100).toFixed(0)}%` : r.load === 'silent' ? 'gated' : '-',
      answering && c ? `${c.answered} (${c.interrupted})` : r.load === 'baseline' ? 'echo mode' : r.load === 'talking-echo' ? 'echo: none' : 'stub: none',
      answering && c ? `${fmt(c.answerDelayP50Ms, 0)}/${fmt(c.answerDelayP95Ms, 0)}` : '-',
      errors || '-',
      `${fmt(r.loadGenerator.timerLagP99Ms)}/${fmt(r.loadGenerator.timerLagMaxMs)}${r.loadGenerator.keptPace ? '' : ' !'}`,
      `${fmt(r.machineBusyPercent, 0)}%${r.machineBusyPercent > SATURATED_PERCENT ? ' !' : ''}`,
      `${fmt(r.otherCpuPercentOfCore, 0)}%${r.contended ? ' !' : ''}`,
    ];
  });
  return alignColumns([header, ...lines]);
}

export interface PipelineCheck {
  target: string;
  limit: string;
  /** The figure (ms, or sessions for the search); null where it could not be measured. */
  value: number | null;
  /** The figure as printed, with its context. */
  shown: string;
  pass: boolean | null;
}

/** The issue's targets, checked on the first talking and silent rows and on the search. */
export function pipelineChecks(result: PipelineResult): PipelineCheck[] {
  const checks: PipelineCheck[] = [];
  const talking = talkingPipelineCpu(result.rows);
  const matched = speechMatchedPipelineCpu(result.rows);
  for (const load of ['talking', 'silent'] as const) {
    const row = result.rows.find((r) => r.load === load);
    if (!row) continue;
    const pipeline = load === 'talking' ? talking.median : pipelineCpuMs(row, result.rows);
    const pairs = load === 'talking' ? describePairs(talking) : describeSilentBaseline(row, result.rows);
    checks.push({
      target: `listening pipeline CPU per session-second with VAD gating (${load} - baseline), ${row.sessions} ${load} sessions`,
      limit: `<= ${PIPELINE_CPU_LIMIT_MS} ms`,
      value: pipeline,
      shown: `${fmt(pipeline, 2)}${pairs}`,
      pass: pipeline === null ? null : pipeline <= PIPELINE_CPU_LIMIT_MS,
    });
    checks.push({
      target: `whole server CPU per session-second (foundation target), ${row.sessions} ${load} sessions`,
      limit: `<= ${PIPELINE_CPU_LIMIT_MS} ms`,
      value: row.cpuMsPerSessionSecond,
      shown: fmt(row.cpuMsPerSessionSecond, 2),
      pass: row.cpuMsPerSessionSecond <= PIPELINE_CPU_LIMIT_MS,
    });
    if (load === 'talking' && matched.median !== null) {
      const pairs = describePairs(matched);
      checks.push({
        target: `listening pipeline CPU per session-second over echo mode hearing the same speech (talking - talking-echo), ${row.sessions} talking sessions`,
        limit: `<= ${PIPELINE_CPU_LIMIT_MS} ms`,
        value: matched.median,
        shown: `${fmt(matched.median, 2)}${pairs}`,
        pass: matched.median <= PIPELINE_CPU_LIMIT_MS,
      });
    }
    const lag = worstLag(row);
    checks.push({ target: `event-loop lag p99, worst thread, ${row.sessions} ${load} sessions`, limit: `<= ${LAG_LIMIT_MS} ms`, value: lag.ms, shown: `${fmt(lag.ms)} (${lag.thread})`, pass: lag.ms <= LAG_LIMIT_MS });
  }
  const s = result.search;
  const failed = s.steps.find((x) => !x.pass);
  const doubtful = s.steps.filter((x) => x.caveats.length > 0).map((x) => x.sessions);
  const found = s.maxTalkingSessions !== null ? String(s.maxTalkingSessions) : s.steps.length > 0 ? `< ${s.steps[0]!.sessions}` : 'not measured';
  checks.push({
    target: `largest number of talking sessions with lag p99 <= ${LAG_LIMIT_MS} ms in every thread`,
    limit: 'report',
    value: s.maxTalkingSessions,
    shown: `${found} (${failed ? `${failed.sessions}: ${failed.note}` : s.steps.length > 0 ? `no failure up to ${s.steps.at(-1)!.sessions}` : 'no step'}; stopped: ${s.stoppedBy})` +
      (doubtful.length > 0 ? `; doubtful steps (see search): ${doubtful.join(', ')}` : ''),
    pass: null,
  });
  return checks;
}

export function formatSearch(result: PipelineResult): string {
  const steps = result.search.steps.map((x) => `${x.sessions} ${x.pass ? 'pass' : 'FAIL'} (${x.worstLagP99Ms.toFixed(1)} ms ${x.worstThread}` +
    `${x.caveats.length > 0 ? `; ${x.caveats.join(', ')}` : ''})`);
  return `  search: ${steps.join('; ') || 'no step'}; stopped: ${result.search.stoppedBy}`;
}

export function formatPipelineChecks(result: PipelineResult): string {
  const verdict = (pass: boolean | null) => (pass === null ? '' : pass ? ' PASS' : ' FAIL');
  return alignColumns([['target', 'limit', 'value'], ...pipelineChecks(result).map((c) => [c.target, c.limit, `${c.shown}${verdict(c.pass)}`])]);
}

export const PIPELINE_DEFINITIONS: Record<string, string> = {
  mode: 'talking/silent/answering rows: clients join in stt_tts mode, and each decoded 20 ms frame goes through the listening pipeline (media/listening-pipeline.ts: VoiceActivity = energy pre-gate + batched Silero VAD, echo guard, turn detector). baseline row: the same silent clients in echo mode (receive, decode, energy endpointing; no echo, as nothing is said). talking-echo row (only when the server\'s echo answers nothing: BENCH_PIPELINE=only or BENCH_ECHO=0): the talking clients in echo mode, heard (decode, energy endpointing of their speech, turn events) but not answered. Figures are defined as for the echo steps (DEFINITIONS), over the same kind of window.',
  pipelineCpu: 'pipeline ms/sess-s = cpu ms/sess-s of the stt_tts row - that of the baseline row at the same session count (same server, same load generator): what the listening pipeline adds to the foundation per session-second. The difference of two measurements on a shared box, so noisy (a single pair\'s figure moved by several ms between runs of the same code on the 2-core CI box): BENCH_PIPELINE_PAIRS talking/baseline pairs are run (the later ones baseline first) and the target is checked on the median of their differences, leaving out pairs with a disturbed step (other processes above the contention threshold, or the load generator behind; all are kept if every pair was disturbed), which are listed with a *; the silent row, measured once, is against the median of the baseline rows (the undisturbed ones). Unmeasured steps of talking clients at the same size (stt_tts, and echo mode where there are talking-echo rows) compile both modes\' code first, so the first pair does not pay for the JIT. The baseline is silent clients: it also leaves out what talking clients cost the foundation itself (bigger packets, speech endpointing and its events), which the difference thus counts as pipeline. Where there are talking-echo rows, a second figure takes them as the baseline of their pair: what the pipeline adds over the foundation hearing the same speech. The baseline sends room noise, which costs a little more to decode than the talking clients\' speech with its silences, so the talking figure errs low by about that (~0.3 ms measured in-process).',
  answers: 'talking/silent rows: STT is a loopback stub (bench/stt-stub.ts) that answers each turn\'s upload (the OpenAI STT adapter: WAV, multipart POST at end of turn) at once with an empty transcript, so no turn is answered. Server CPU thus covers the pipeline plus each turn\'s upload, not recognition, agent or synthesis. answering row: a server of its own with the local providers (pocketsphinx STT, one decoder per worker -> rule agent -> flite TTS); clients pause 8 s after each utterance so the answer (the rule agent\'s fallback reply, ~6 s) can play; the window lasts at least one loop; RSS per session is against the RSS right after start.',
  talking: 'Each client loops the speech fixture then BENCH_PIPELINE_SILENCE_MS of silence, spread evenly over the loop.',
  silent: `Each client loops quiet white noise at ${ROOM_NOISE_DBFS} dBFS, below the gate floor (-55 dBFS): every frame is gated, Silero never runs.`,
  turns: 'turns/utterances: `speech end_of_turn` messages the clients received in the window / utterances they finished sending in it. About 1 when the pipeline hears every utterance once (a pause inside the fixture can make it more; frames judged by energy alone may differ).',
  silero: 'Measured (the media workers\' Silero counters over the window, as exported in voice.vad.windows, voice.vad.runs, voice.vad.run_time and voice.vad.wait_time): Silero windows judged per session-second, the mean batch (windows per run), the time in Silero\'s runs (VAD_ENGINE) per session-second and per window (timed around each synchronous run on the worker thread: its CPU, barring preemption), and the mean time a window waited for its run (the delay batching adds to a verdict, VAD_BATCH_WINDOW_MS at most, plus event-loop lag). A talker needs ~16 windows/s while its gate is open; larger batches cost less per window.',
  energyOnlyVad: `Estimate (the server counts Silero windows and runs, not energy-only frames): share of the frames that want Silero that get an energy-only verdict because the worker has no stream left to give (${SILERO_STREAMS_PER_WORKER} per worker). From the share of time one talking client holds a Silero stream (the server's VoiceActivity run over the client's loop in the runner: talkingLoop.sileroLeaseShare) x sessions / workers, against the cap. Where it is above 0, CPU per session falls with more sessions because fewer frames reach Silero. talkingLoop.sileroFrameShare: share of a talking client\'s frames that Silero runs on (the others are gated), the part that costs CPU.`,
  search: `Starts from the talking step (BENCH_PIPELINE_SESSIONS) and tries the session counts of BENCH_PIPELINE_SEARCH above it while steps pass (below it, downwards, if it failed), at most BENCH_PIPELINE_MAX_STEPS more, while they fit in BENCH_PIPELINE_LIMIT_S. A step passes when every client is listening and event-loop lag p99 <= ${LAG_LIMIT_MS} ms in every thread. maxTalkingSessions = the largest passing step below the smallest failing one (the true limit lies between the two; without a failure it is at least that). Steps with caveats (load generator behind, box saturated, other processes) describe the shared box more than the server.`,
  answerDelay: 'answering row, server turn timings per answered turn: first answer packet sent - end of the user\'s speech (includes the endpointing silence, STT final, agent and TTS first audio, and any wait for the worker\'s decoder).',
};
