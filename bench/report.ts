// What one benchmark step measured, the performance targets from docs (DESIGN.md), and the
// stdout table. Every figure's definition is written into the JSON next to the numbers.

export interface StepResult {
  sessions: number;
  /** The load (bench/step.ts LoadProfile): "echo" (echo mode), or the pipeline steps "talking", "silent", "baseline", "answering" (bench/pipeline.ts). */
  load: string;
  /** Pipeline steps: the talking/baseline pair this row belongs to (1, 2, ...), none for the others. */
  pair?: number;
  /** The server echoed utterances (BENCH_ECHO unset or 1); without echo there is no round trip to measure. */
  echo: boolean;
  /** Clients that reached "listening" (the figures are per these). */
  connected: number;
  setupFailures: number;
  setupFailureSamples: string[];
  windowS: number;
  /** Server sessions by state at the end of the window (e.g. "reconnecting" ones get no media through). */
  serverStatesAtWindowEnd: Record<string, number>;
  cpuMsPerSessionSecond: number;
  serverCpuPercentOfCore: number;
  /** Share of the server's CPU time spent in the kernel (stime): syscalls, loopback UDP. */
  serverCpuKernelShare: number;
  rssMbPerSession: number;
  /** (steady RSS - previous step's steady RSS) / (sessions - previous sessions): free of the idle baseline. */
  rssMbPerSessionMarginal: number | null;
  rssIdleMb: number;
  rssSteadyMaxMb: number;
  lagP99Ms: Record<string, number>;
  lagMaxMs: Record<string, number>;
  packets: {
    sent: number;
    serverReceived: number;
    missingAtServer: number;
    jitterBufferLost: number;
    concealed: number;
    late: number;
    duplicates: number;
    overflowDrops: number;
    fecRecovered: number;
    echoReceivedByClients: number;
    kernelUdpRcvbufErrors: number;
    kernelUdpInErrors: number;
    kernelUdpSndbufErrors: number;
  };
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencySamples: number;
  echoRoundTripP50Ms: number | null;
  echoRoundTripP95Ms: number | null;
  echoRoundTripSamples: number;
  echoesMissed: number;
  /**
   * The server's Silero VAD over the window (worker counters, all workers): windows judged per
   * session-second and windows per batched run. Null when the server reports none (echo mode only).
   */
  vad: { windows: number; runs: number; windowsPerSessionSecond: number; meanBatch: number | null; runMsPerSessionSecond: number; usPerWindow: number | null; waitMsPerWindow: number | null } | null;
  utterancesEnded: number;
  endpointAlignmentP50Ms: number | null;
  serverPaceWaitP95Ms: number | null;
  setupConnectedP50Ms: number | null;
  setupConnectedP99Ms: number | null;
  setupP50Ms: number | null;
  setupP99Ms: number | null;
  loadGenerator: {
    processes: number;
    timerLagP99Ms: number;
    timerLagMaxMs: number;
    ticksLateOver20Ms: number;
    framesSkipped: number;
    cpuPercentOfCore: number;
    keptPace: boolean;
  };
  /** Agent-mode rows: what the listening pipeline and the answers did over the window; null for echo rows. */
  conversation: ConversationFigures | null;
  machineBusyPercent: number;
  /** CPU used by processes other than the server, the load generators and the runner over the window. */
  otherCpuPercentOfCore: number;
  otherCpuBeforeStepPercentOfCore: number;
  /** Other processes used more than 30% of a core during the window: figures are pessimistic. */
  contended: boolean;
  attempt: number;
  checks: CheckResult[];
}

export interface ConversationFigures {
  /** Utterances the clients finished sending in the window. */
  utterancesSent: number;
  /** Turns the server's listening pipeline ended (`speech end_of_turn` messages) in the window. */
  turnsHeard: number;
  /** Turns answered with audio, and how many of those the user talked over (barge-in). */
  answered: number;
  interrupted: number;
  /** Server timings: end of the user's speech -> first answer packet sent. */
  answerDelayP50Ms: number | null;
  answerDelayP95Ms: number | null;
  /** Server timings: end of turn -> final transcript. */
  sttFinalP95Ms: number | null;
  /** `error` messages the clients received, by code. */
  errors: Record<string, number>;
}

export interface Target {
  id: string;
  figure: string;
  limit: number;
  unit: string;
  /** The target is stated for loads up to this many sessions (DESIGN.md); above, figures are informational. */
  appliesUpTo: number;
  needsEcho?: boolean;
  value: (row: StepResult) => number | null;
}

export interface CheckResult {
  id: string;
  value: number | null;
  limit: number;
  applies: boolean;
  pass: boolean | null;
}

export const TARGETS: Target[] = [
  {
    id: 'lag', figure: 'event-loop lag p99, worst thread', limit: 20, unit: 'ms', appliesUpTo: 300,
    value: (r) => Math.max(...Object.values(r.lagP99Ms)),
  },
  {
    id: 'loss', figure: 'packets missing at the server (sent - server-received)', limit: 0, unit: 'packets', appliesUpTo: 300,
    value: (r) => r.packets.missingAtServer,
  },
  { id: 'cpu', figure: 'server CPU per session-second', limit: 3, unit: 'ms', appliesUpTo: Infinity, value: (r) => r.cpuMsPerSessionSecond },
  { id: 'rss', figure: 'server RSS per session', limit: 2, unit: 'MB', appliesUpTo: Infinity, value: (r) => r.rssMbPerSession },
  { id: 'latency', figure: 'server-added latency p99', limit: 5, unit: 'ms', appliesUpTo: 200, value: (r) => r.latencyP99Ms },
  { id: 'echo', figure: 'echo round trip p95', limit: 40, unit: 'ms', appliesUpTo: 200, needsEcho: true, value: (r) => r.echoRoundTripP95Ms },
];

export function checkRow(row: StepResult): CheckResult[] {
  return TARGETS.map((t) => {
    const value = t.value(row);
    const applies = row.sessions <= t.appliesUpTo && (row.echo || !t.needsEcho);
    return { id: t.id, value, limit: t.limit, applies, pass: !applies ? null : value === null ? false : value <= t.limit };
  });
}

export const DEFINITIONS: Record<string, string> = {
  window: 'Steady window: starts after every client of the step is listening plus a settle time, lasts BENCH_DURATION_S. CPU, lag, latency, echo round trip and load-generator pace are measured over it; packet counts over the whole life of the step\'s sessions.',
  cpuMsPerSessionSecond: 'Server process utime+stime (all threads, /proc/<pid>/stat, CLK_TCK) over the window, in ms, divided by (sessions x window seconds). Kernel work for the UDP packets the server sends on loopback is charged to it; for packets the clients send, to the clients.',
  rssMbPerSession: '(highest server VmRSS sampled each second in the window - idle VmRSS) / sessions, MB = 2^20 bytes. Idle VmRSS: after a throwaway 4-session warm-up step and its teardown, with 0 sessions, main-thread GC, the lowest sample once RSS is flat within 1 MB for 20 s (5 s with BENCH_QUICK). Baseline noise is about +-15 MB, so the figure means little below ~50 sessions. rssMbPerSessionMarginal = (steady RSS - previous step\'s steady RSS) / (sessions - previous sessions).',
  lagP99Ms: 'p99 of monitorEventLoopDelay (10 ms resolution) per thread over the window: "main" = Fastify/session thread (bench/server-process.ts), "wN" = media worker N (media.stats(true) resets at window start).',
  packets: 'sent = RTP frames the clients sent over the step; serverReceived = packets the workers\' jitter buffers counted (delta of packets.received, incl. duplicates and late ones); missingAtServer = sent - serverReceived (lost between client and jitter buffer: sockets, kernel, werift SRTP); jitterBufferLost = sequence gaps the jitter buffer concealed as lost; late = arrived after their playout time and were dropped; echoReceivedByClients = server->client echo packets. kernelUdp* = machine-wide /proc/net/snmp deltas (both directions, all processes).',
  latency: 'Server-added latency per packet: RTP event in the worker -> decoded 20 ms PCM frame handed to the pipeline, minus the deliberate jitter-buffer hold; p50/p99 from the merged worker LatencyHistograms over the window (bucket upper edges: 10 us steps below 10 ms).',
  echoRoundTrip: 'Per utterance, at the client: time the first packet of its echo arrived minus time the client sent the utterance\'s last speech frame (the last frame the server\'s own SpeechDetector counts as loud, found by running it over the same decoded audio), minus the configured endpointing silence (ECHO_END_SILENCE_MS). So it is the round trip plus server processing plus the wait for the server\'s 20 ms pacer, with the deliberate endpointing silence removed. Includes load-generator event-loop delay on both ends.',
  endpointAlignment: 'Diagnostic for the echo definition: server endOfTurnAt (turn timings) minus the client\'s wall time of sending the frame that completes endpointing. Positive = one-way trip + jitter-buffer hold. Negative = the server ended the turn before that frame arrived: frames its jitter buffer concealed count as silence, so it heard less than ECHO_END_SILENCE_MS of real silence, and the echo round trip reads that much too low. serverPaceWait = firstPacketOutAt - endOfTurnAt. Utterances are paired with echoes through the turn messages (bench/echo-matcher.ts), so a late echo is never taken for the next utterance\'s.',
  setup: 'Per client: join sent -> werift connectionState "connected" (ICE + DTLS), and join sent -> state "listening" received over the WebSocket (setupP50/P99). Joins staggered at BENCH_JOIN_RATE per second while earlier clients already stream.',
  loadGenerator: 'Each load process drives all its clients from one timer (5 ms ticks, 4 phase slots = one frame per client per 20 ms). timerLag = tick run time - due time over the window (worst process); keptPace = p99 <= 10 ms and no frames skipped.',
  machineBusyPercent: 'Whole machine CPU busy over the window (/proc/stat), % of all cores: the server and the load generator share this box.',
  otherCpu: 'Machine busy time minus server, load generators and runner over the window, % of one core: other processes on the box plus kernel work not charged to any process (softirq). Before each step the runner waits (BENCH_QUIET_WAIT_S) for this to drop below 25% with the server idle.',
};

/** Above this the box is saturated: the server and the load generator wait for CPU, not for work. */
export const SATURATED_PERCENT = 90;

export const fmt = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

export function formatTable(rows: StepResult[], workerCount: number): string {
  const threads = ['main', ...Array.from({ length: workerCount }, (_, i) => `w${i}`)];
  const header = [
    'sessions', 'cpu ms/sess-s', 'RSS MB/sess', `lag p99 ms ${threads.join('/')}`, 'sent', 'srv recv', 'missing',
    'jb lost', 'late', 'lat p50/p99 ms', 'echo RTT p95 ms (n)', 'setup conn p50/p99', 'listening p50/p99',
    'client timer p99/max', 'box busy', 'other cpu',
  ];
  const lines = rows.map((r) => [
    r.connected === r.sessions ? String(r.sessions) : `${r.connected}/${r.sessions}`,
    fmt(r.cpuMsPerSessionSecond, 2),
    fmt(r.rssMbPerSession, 2),
    threads.map((t) => fmt(r.lagP99Ms[t])).join('/'),
    String(r.packets.sent),
    String(r.packets.serverReceived),
    String(r.packets.missingAtServer),
    String(r.packets.jitterBufferLost),
    String(r.packets.late),
    `${fmt(r.latencyP50Ms, 2)}/${fmt(r.latencyP99Ms, 2)}`,
    `${fmt(r.echoRoundTripP95Ms)} (${r.echoRoundTripSamples})`,
    `${fmt(r.setupConnectedP50Ms, 0)}/${fmt(r.setupConnectedP99Ms, 0)}`,
    `${fmt(r.setupP50Ms, 0)}/${fmt(r.setupP99Ms, 0)}`,
    `${fmt(r.loadGenerator.timerLagP99Ms)}/${fmt(r.loadGenerator.timerLagMaxMs)}${r.loadGenerator.keptPace ? '' : ' !'}`,
    `${fmt(r.machineBusyPercent, 0)}%${r.machineBusyPercent > SATURATED_PERCENT ? ' !' : ''}`,
    `${fmt(r.otherCpuPercentOfCore, 0)}%${r.contended ? ' !' : ''}`,
  ]);
  return alignColumns([header, ...lines]);
}

export function formatChecks(rows: StepResult[]): string {
  const header = ['target', 'limit', ...rows.map((r) => `${r.sessions} sess`)];
  const lines = TARGETS.map((t) => [
    `${t.figure}${Number.isFinite(t.appliesUpTo) ? ` (up to ${t.appliesUpTo} sessions)` : ''}`,
    `<= ${t.limit} ${t.unit}`,
    ...rows.map((r) => {
      const c = r.checks.find((x) => x.id === t.id)!;
      const verdict = c.pass === null ? 'n/a' : c.pass ? 'PASS' : 'FAIL';
      return `${fmt(c.value, t.unit === 'packets' ? 0 : 2)} ${verdict}`;
    }),
  ]);
  return alignColumns([header, ...lines]);
}

export function alignColumns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const render = (r: string[]): string => r.map((cell, i) => cell.padStart(i === 0 ? 0 : widths[i]!).padEnd(i === 0 ? widths[i]! : 0)).join(' | ');
  const [head, ...body] = rows;
  return [render(head!), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(render)].join('\n');
}

/** Nearest-rank percentile of unsorted samples; null when empty. */
export function percentile(samples: number[], p: number): number | null {
  if (samples.length === 0) return null;
  const sorted = Float64Array.from(samples).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}
