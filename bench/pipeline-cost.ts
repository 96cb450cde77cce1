// The listening pipeline's own CPU cost, in process: the server's VAD stage (energy pre-gate +
// batched Silero, as configured by default) + echo guard + turn detector, fed the talking loop of the
// pipeline steps (the speech fixture, then 1.5 s of silence) and quiet noise, with no network, no
// decode and no speech-to-text. The load steps of bench/pipeline.ts measure the whole server, where a
// talking session also pays for its turn's upload to the STT stub; this separates the two.
// The pipelines run in step (each 20 ms tick, every pipeline takes its frame, then Silero's batch
// comes back), so their windows share batches; with caches warm, this is Silero at its cheapest.
// The load steps show it in a busy worker. Prints a table and writes bench/results/pipeline-cost-latest.json.
//   BENCH_PIPELINE_COST_SESSIONS=5  pipelines run side by side (one Silero model per thread)
//   BENCH_PIPELINE_COST_LOOPS=6     talking loops per repetition; 3 repetitions, the median is quoted
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../server/config.ts';
import { createVadStage, prepareVad, workerSilero } from '../server/voice/vad-stage.ts';
import { ListeningPipeline } from '../media/listening-pipeline.ts';
import { readWav, SPEECH_WAV } from '../tests/helpers/audio.ts';
import { mulberry32 } from '../tests/helpers/prng.ts';

const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));
const SESSIONS = Number(process.env.BENCH_PIPELINE_COST_SESSIONS ?? 5);
const LOOPS = Number(process.env.BENCH_PIPELINE_COST_LOOPS ?? 6);
const REPEATS = 3;
const BUDGET_MS = 3; // the foundation's per-session budget (DESIGN.md), per session-second
const FRAME = 320;

const voice = loadConfig({}).voice;

function framesOf(pcm: Int16Array): Int16Array[] {
  const frames: Int16Array[] = [];
  for (let offset = 0; offset + FRAME <= pcm.length; offset += FRAME) frames.push(pcm.slice(offset, offset + FRAME));
  return frames;
}

function talkingLoop(): Int16Array[] {
  const speech = readWav(SPEECH_WAV).samples;
  const pcm = new Int16Array(speech.length + 1.5 * 16000);
  pcm.set(speech);
  return framesOf(pcm);
}

/** White noise at about -60 dBFS: below the pre-gate's floor, as in the "silent" load step. */
function quietLoop(frames: number): Int16Array[] {
  const random = mulberry32(7);
  const pcm = new Int16Array(frames * FRAME);
  for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round((random() * 2 - 1) * 33 * Math.sqrt(3));
  return framesOf(pcm);
}

/** CPU ms per session-second of audio pushed through SESSIONS pipelines, median of REPEATS runs. */
async function measure(frames: Int16Array[]): Promise<{ msPerSessionSecond: number; runs: number[]; events: number }> {
  const silero = workerSilero()!;
  const runs: number[] = [];
  let events = 0;
  for (let r = 0; r < REPEATS; r++) {
    const pipelines = Array.from({ length: SESSIONS }, () =>
      new ListeningPipeline(createVadStage(voice), { preRollMs: voice.preRollMs, bargeInMinMs: voice.bargeInMinMs, bargeInGraceMs: voice.bargeInGraceMs, turn: { ...voice.turn }, echoGuard: {} }),
    );
    let atMs = 0;
    const before = process.cpuUsage();
    for (let loop = 0; loop < LOOPS; loop++) {
      for (const frame of frames) {
        for (const pipeline of pipelines) events += pipeline.push(frame, false, atMs).length;
        await silero.idle();
        atMs += 20;
      }
    }
    const used = process.cpuUsage(before);
    for (const pipeline of pipelines) pipeline.close();
    runs.push((used.user + used.system) / 1000 / (SESSIONS * LOOPS * frames.length * 0.02));
  }
  const sorted = [...runs].sort((a, b) => a - b);
  return { msPerSessionSecond: Math.round(sorted[1]! * 100) / 100, runs: runs.map((x) => Math.round(x * 100) / 100), events };
}

async function main(): Promise<void> {
  await prepareVad(voice);
  const talking = talkingLoop();
  // Warm-up: code paths compiled.
  await measure(talking.slice(0, 100));
  const talk = await measure(talking);
  const silent = await measure(quietLoop(talking.length));
  const result = {
    at: new Date().toISOString(),
    sessions: SESSIONS,
    loops: LOOPS,
    loopSeconds: talking.length * 0.02,
    talkingMsPerSessionSecond: talk.msPerSessionSecond,
    talkingRuns: talk.runs,
    silentMsPerSessionSecond: silent.msPerSessionSecond,
    silentRuns: silent.runs,
    target: { maxMsPerSessionSecond: BUDGET_MS },
  };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(`${RESULTS}pipeline-cost-latest.json`, JSON.stringify(result, null, 2));
  const verdict = (ms: number) => (ms <= BUDGET_MS ? 'PASS' : 'FAIL');
  console.log(`\nlistening pipeline alone, in process (${SESSIONS} pipelines, ${LOOPS} loops of ${result.loopSeconds.toFixed(1)} s, median of ${REPEATS})`);
  console.log(`  talking (fixture + 1.5 s silence)  ${talk.msPerSessionSecond.toFixed(2)} ms CPU per session-second   target <= ${BUDGET_MS}: ${verdict(talk.msPerSessionSecond)}   runs ${talk.runs.join(', ')}`);
  console.log(`  silent (noise below the gate)      ${silent.msPerSessionSecond.toFixed(2)} ms CPU per session-second   target <= ${BUDGET_MS}: ${verdict(silent.msPerSessionSecond)}   runs ${silent.runs.join(', ')}`);
  console.log(`\nwritten: ${RESULTS}pipeline-cost-latest.json`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
