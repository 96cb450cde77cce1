// Messages between the benchmark runner and its child processes (the server under test and the
// load generators), over the IPC channel of child_process.fork.
import type { WorkerStats } from '../media/worker/worker-stats.ts';
import type { EchoSettings } from './speech-loop.ts';

// runner -> server process
export type ServerCommand =
  /** `gc`: collect the main thread's garbage first (for the idle RSS baseline). */
  | { cmd: 'stats'; id: number; reset: boolean; gc?: boolean }
  | { cmd: 'shutdown' };

// server process -> runner
export type ServerReport =
  | { ev: 'ready'; port: number; pid: number; mediaWorkers: number; echo: EchoSettings }
  | { ev: 'stats'; id: number; snapshot: ServerSnapshot }
  | { ev: 'error'; message: string };

export interface ServerSnapshot {
  /** Sessions in the main thread's directory. */
  sessions: number;
  /** Sessions whose worker has not yet confirmed that their media is released. */
  mediaClosing: number;
  sessionsByState: Record<string, number>;
  mainLagP99Ms: number;
  mainLagMaxMs: number;
  workers: WorkerStats[];
}

/** What every simulated client sends (looped), see bench/speech-loop.ts. */
export type LoadAudio =
  /** The speech fixture with silence long enough for the echo to finish (echo mode). */
  | { kind: 'echo-speech' }
  /** The speech fixture then `silenceMs` of silence: a user who talks most of the time. */
  | { kind: 'talking'; silenceMs: number }
  /** Quiet room noise below the VAD's energy gate: a user who says nothing. */
  | { kind: 'silent' };

export interface LoadPlan {
  wsUrl: string;
  /** Conversation mode the clients join in; null = the server's default. */
  mode: 'echo' | 'stt_tts' | null;
  audio: LoadAudio;
  /** Index of this process's first client among all clients of the step, and the stride between its clients. */
  firstIndex: number;
  stride: number;
  count: number;
  totalClients: number;
  /** Joins of the whole step per second, across all load processes. */
  joinRatePerS: number;
  echo: EchoSettings;
  /** Minimum silence after each utterance (the loop lengthens it so the echo fits). */
  minSilenceMs: number;
  setupTimeoutMs: number;
}

// runner -> load process
export type LoadCommand =
  /** Load modules and build the audio loop, so that start-up work does not overlap the joins. */
  | { cmd: 'prepare'; plan: LoadPlan }
  | { cmd: 'start' }
  | { cmd: 'window-start' }
  | { cmd: 'window-end' }
  /** Stop sending and report the totals; the sessions stay open. */
  | { cmd: 'stop' }
  /** End every session ('leave') and exit. */
  | { cmd: 'leave' };

export interface SetupReport {
  /** Per connected client: join sent -> peer connection connected (ICE + DTLS), and -> state "listening". */
  connectedMs: number[];
  listeningMs: number[];
  failures: string[];
}

export interface WindowReport {
  /** Echo round trips whose turn message arrived in the window (definition in report.ts, echo-matcher.ts). */
  echoRttMs: number[];
  /** Server endOfTurnAt minus the client's wall time of sending the endpointing frame. */
  endpointAlignmentMs: number[];
  /** Server firstPacketOutAt minus endOfTurnAt: the wait for the server's 20 ms pacer. */
  serverPaceWaitMs: number[];
  /** Window utterances with no matching echo (turn) by window end, once overdue. */
  echoesMissed: number;
  utterancesEnded: number;
  /** Send-timer lateness (tick run time minus its due time). */
  timerLagP50Ms: number;
  timerLagP99Ms: number;
  timerLagMaxMs: number;
  ticks: number;
  /** Agent modes: `speech end_of_turn` messages (turns the listening pipeline ended). */
  turnsHeard: number;
  /** Agent modes: turns answered with audio, and how many of them the user interrupted. */
  answered: number;
  interrupted: number;
  /** Agent modes, per answered turn (server timings): first answer packet - end of the user's speech. */
  answerDelayMs: number[];
  /** Agent modes: final transcript - end of turn. */
  sttFinalMs: number[];
  /** `error` messages by code. */
  errors: Record<string, number>;
  /** Ticks that ran a whole frame period (20 ms) or more late. */
  ticksLateOver20Ms: number;
  /** Frames not sent because the timer fell more than 200 ms behind and resynchronised. */
  framesSkipped: number;
  framesSent: number;
}

export interface FinalReport {
  /** Frames sent by this process's clients over their whole life. */
  framesSent: number;
  /** RTP packets the clients received from the server (the echoes) over their whole life. */
  echoPacketsReceived: number;
}

// load process -> runner
export type LoadReport =
  | { ev: 'prepared'; report: null }
  | { ev: 'setup'; report: SetupReport }
  | { ev: 'window'; report: WindowReport }
  | { ev: 'final'; report: FinalReport }
  | { ev: 'error'; message: string };
