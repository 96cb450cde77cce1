// A load-generator process: holds a share of the simulated clients (real werift peers over loopback),
// joins them on a staggered schedule, and drives all of them from ONE drift-free timer that sends
// each client's next 20 ms Opus frame. The frame period is split into PHASES slots and every client
// has its own slot and its own starting point in the speech loop, so sends and utterances are spread
// out instead of arriving at the server in one burst. Nothing is logged or allocated per packet here
// beyond what werift and TestClient do themselves.
import { performance } from 'node:perf_hooks';
import { TestClient } from '../tests/helpers/werift-client.ts';
import { LatencyHistogram } from '../media/latency-histogram.ts';
import { buildLoadLoop, FRAME_MS, type SpeechLoop } from './speech-loop.ts';
import { EchoMatcher } from './echo-matcher.ts';
import type { LoadCommand, LoadPlan, LoadReport, SetupReport, WindowReport } from './ipc.ts';
import type { ServerMessage } from '../signaling/protocol.ts';

const PHASES = 4;
const TICK_MS = FRAME_MS / PHASES;
/** Further behind than this, the timer gives up catching up and skips frames (and counts them). */
const RESYNC_BEHIND_MS = 200;
/** After the last frame, time for echo packets in flight to arrive before the totals are reported. */
const DRAIN_MS = 300;
/** At window end, a window utterance without its turn this long after the echo should have ended is missed. */
const ECHO_OVERDUE_MS = 2000;

interface SimClient {
  client: TestClient;
  position: number;
  markerPending: boolean;
  echoes: EchoMatcher;
}

const toEpoch = (at: number): number => performance.timeOrigin + at;

if (!process.send) throw new Error('load-client must be started with child_process.fork');
const report = (message: LoadReport): void => {
  process.send?.(message);
};

let plan: LoadPlan;
let loop: SpeechLoop;
/** Echo mode: pair utterances with their echoes. Agent modes answer (or not) with `turn` messages instead. */
let matchEchoes = true;
const byPhase: SimClient[][] = Array.from({ length: PHASES }, () => []);
const all: SimClient[] = [];

// Counters. Lifetime totals plus the current measurement window.
let framesSent = 0;
let echoPackets = 0;
let inWindow = false;
let win = newWindow();
const timerLag = new LatencyHistogram();

let timerLagMaxMs = 0;
let timer: NodeJS.Timeout | null = null;
let tickIndex = 0;
let nextDueAt = 0;
let rejections = 0;

function newWindow(): Omit<WindowReport, 'timerLagP50Ms' | 'timerLagP99Ms' | 'timerLagMaxMs'> {
  return {
    echoRttMs: [], endpointAlignmentMs: [], serverPaceWaitMs: [], echoesMissed: 0, utterancesEnded: 0,
    turnsHeard: 0, answered: 0, interrupted: 0, answerDelayMs: [], sttFinalMs: [], errors: {},
    ticks: 0, ticksLateOver20Ms: 0, framesSkipped: 0, framesSent: 0,
  };
}

process.on('message', (command: LoadCommand) => {
  switch (command.cmd) {
    case 'prepare':
      plan = command.plan;
      loop = buildLoadLoop(plan.audio, plan.echo, plan.minSilenceMs);
      matchEchoes = plan.audio.kind === 'echo-speech';
      report({ ev: 'prepared', report: null });
      return;
    case 'start':
      start().catch((error: unknown) => report({ ev: 'error', message: errorText(error) }));
      return;
    case 'window-start':
      win = newWindow();
      timerLag.reset();
      timerLagMaxMs = 0;
      inWindow = true;
      return;
    case 'window-end':
      inWindow = false;
      report({ ev: 'window', report: windowReport() });
      return;
    case 'stop':
      void stop();
      return;
    case 'leave':
      void leaveAll();
      return;
  }
});
process.on('disconnect', () => process.exit(0));
// werift can reject inside its own timers while peers close; that must not end the process.
process.on('unhandledRejection', (error) => {
  if (rejections++ < 3) process.stderr.write(`load-client: unhandled rejection: ${(error as Error)?.message ?? error}\n`);
});

async function start(): Promise<void> {
  nextDueAt = performance.now() + TICK_MS;
  timer = setTimeout(tick, TICK_MS);
  const began = performance.now();
  const setup: SetupReport = { connectedMs: [], listeningMs: [], failures: [] };
  const joins: Promise<void>[] = [];
  for (let j = 0; j < plan.count; j++) {
    const index = plan.firstIndex + j * plan.stride;
    const dueAt = began + (index / plan.joinRatePerS) * 1000;
    const wait = dueAt - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    joins.push(connect(index, setup));
  }
  await Promise.all(joins);
  report({ ev: 'setup', report: setup });
}

async function connect(index: number, setup: SetupReport): Promise<void> {
  let client: TestClient | null = null;
  let deadline: NodeJS.Timeout | undefined;
  let stage = 'websocket open';
  try {
    const expired = new Promise<never>((_, reject) => {
      deadline = setTimeout(() => reject(new Error(`setup took over ${plan.setupTimeoutMs} ms (stuck in: ${stage})`)), plan.setupTimeoutMs);
    });
    const steps = (async () => {
      client = await TestClient.open(plan.wsUrl);
      const sentAt = performance.now();
      stage = 'join';
      await client.join(plan.mode ? { mode: plan.mode } : {});
      stage = 'negotiate (offer/answer, ICE, DTLS)';
      await client.negotiate();
      const connectedAt = performance.now();
      stage = 'waiting for state "listening"';
      await client.waitFor((m) => m.type === 'state' && m.state === 'listening', plan.setupTimeoutMs);
      return { client, connectedMs: connectedAt - sentAt, listeningMs: performance.now() - sentAt };
    })();
    steps.catch(() => undefined); // a late failure after the deadline is already counted
    const done = await Promise.race([steps, expired]);
    setup.connectedMs.push(done.connectedMs);
    setup.listeningMs.push(done.listeningMs);
    done.client.messages.length = 0;
    const sim: SimClient = {
      client: done.client,
      // Spread the clients evenly over the loop, so utterances (and echoes) do not all coincide.
      position: Math.floor((index * loop.packets.length) / plan.totalClients) % loop.packets.length,
      markerPending: true,
      echoes: new EchoMatcher(plan.echo.endSilenceMs, toEpoch),
    };
    all.push(sim);
    byPhase[index % PHASES]!.push(sim);
  } catch (error) {
    setup.failures.push(`client ${index}: ${errorText(error).slice(0, 200)}${describe(client)}`);
    if (client) await leave(client);
  } finally {
    clearTimeout(deadline);
  }
}

/** werift rejects some waits (e.g. a connection-state watch that times out) with no Error at all. */
function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return error === undefined ? 'rejected without a reason (a werift wait timing out)' : String(error);
}

/** What a client that failed to set up had seen, for the report. */
function describe(client: TestClient | null): string {
  if (!client) return '';
  const states = client.messages.flatMap((m) => (m.type === 'state' ? [`${m.state}${m.reason ? ` (${m.reason})` : ''}`] : []));
  const errors = client.messages.flatMap((m) => (m.type === 'error' ? [m.code] : []));
  const pc = client.pc;
  return `; client peer ${pc ? `${pc.connectionState}/ice ${pc.iceConnectionState}` : 'not created'}` +
    `; server states seen: ${states.join(' > ') || 'none'}${errors.length > 0 ? `; errors: ${errors.join(', ')}` : ''}`;
}

function tick(): void {
  let late = performance.now() - nextDueAt;
  if (late > RESYNC_BEHIND_MS) {
    const skip = Math.floor(late / TICK_MS);
    for (let k = 0; k < skip; k++) {
      const skipped = byPhase[(tickIndex + k) % PHASES]!.length;
      if (inWindow) win.framesSkipped += skipped;
    }
    tickIndex += skip;
    nextDueAt += skip * TICK_MS;
    late -= skip * TICK_MS;
  }
  if (inWindow) {
    timerLag.record(late);
    if (late > timerLagMaxMs) timerLagMaxMs = late;
    win.ticks++;
    if (late >= FRAME_MS) win.ticksLateOver20Ms++;
  }
  const clients = byPhase[tickIndex % PHASES]!;
  for (let i = 0; i < clients.length; i++) step(clients[i]!);
  tickIndex++;
  nextDueAt += TICK_MS;
  timer = setTimeout(tick, Math.max(0, nextDueAt - performance.now()));
}

function step(sim: SimClient): void {
  collect(sim);
  const position = sim.position;
  sim.client.sendFrame(loop.packets[position]!, sim.markerPending);
  sim.markerPending = false;
  framesSent++;
  if (inWindow) win.framesSent++;
  if (position === loop.speechEndFrame) {
    if (matchEchoes) win.echoesMissed += sim.echoes.speechEnded(performance.now(), inWindow);
    if (inWindow) win.utterancesEnded++;
  } else if (matchEchoes && position === loop.endpointFrame) {
    sim.echoes.endpointSent(performance.now());
  }
  sim.position = position + 1 === loop.packets.length ? 0 : position + 1;
}

/** Reads what arrived for a client since its last turn: echo packets and server messages. */
function collect(sim: SimClient): void {
  const received = sim.client.received;
  if (received.length > 0) {
    for (let i = 0; i < received.length; i++) sim.echoes.packet(received[i]!.at, received[i]!.marker);
    echoPackets += received.length;
    received.length = 0;
  }
  const messages = sim.client.messages;
  if (messages.length === 0) return;
  for (const message of messages) {
    if (inWindow && message.type === 'error') win.errors[message.code] = (win.errors[message.code] ?? 0) + 1;
    if (!matchEchoes) {
      if (inWindow) countConversation(message);
      continue;
    }
    if (message.type !== 'turn') continue;
    const match = sim.echoes.turn(message.turn.timings);
    if (!match || !inWindow) continue;
    win.echoRttMs.push(match.roundTripMs);
    win.endpointAlignmentMs.push(match.endpointAlignmentMs);
    win.serverPaceWaitMs.push(match.serverPaceWaitMs);
  }
  messages.length = 0;
}

/** Agent modes: turns the pipeline ended, and the answers (if the server gives any). */
function countConversation(message: ServerMessage): void {
  if (message.type === 'speech' && message.event === 'end_of_turn') {
    win.turnsHeard++;
  } else if (message.type === 'turn') {
    const t = message.turn.timings;
    if (t.firstPacketOutAt === null) return;
    win.answered++;
    if (message.turn.interrupted) win.interrupted++;
    win.answerDelayMs.push(t.firstPacketOutAt - t.speechEndAt);
    if (t.sttFinalAt != null) win.sttFinalMs.push(t.sttFinalAt - t.endOfTurnAt);
  }
}

function windowReport(): WindowReport {
  // Utterances of the window still without their echo well after it should have ended count as missed.
  const now = performance.now();
  if (matchEchoes) for (const sim of all) win.echoesMissed += sim.echoes.takeOverdue(now, loop.echoMs + ECHO_OVERDUE_MS);
  return {
    ...win,
    timerLagP50Ms: timerLag.percentile(0.5) ?? 0,
    timerLagP99Ms: timerLag.percentile(0.99) ?? 0,
    timerLagMaxMs,
  };
}

/** Ends the session explicitly: a dropped socket alone may leave it open for a resume. */
async function leave(client: TestClient): Promise<void> {
  try {
    if (client.ws.readyState === client.ws.OPEN) {
      client.send({ type: 'leave' });
      await client.waitClose(5000);
    }
  } catch {
    // Closed below regardless.
  }
  await client.close().catch(() => undefined);
}

/** Stops sending; the peers stay up (the server may still be working through a backlog). */
async function stop(): Promise<void> {
  if (timer) clearTimeout(timer);
  timer = null;
  await new Promise((resolve) => setTimeout(resolve, DRAIN_MS));
  for (const sim of all) echoPackets += sim.client.received.length;
  report({ ev: 'final', report: { framesSent, echoPacketsReceived: echoPackets } });
}

async function leaveAll(): Promise<void> {
  await Promise.all(all.map((sim) => leave(sim.client)));
  // Give the WebSocket close frames a moment to leave before the process ends.
  setTimeout(() => process.exit(0), 200);
}
