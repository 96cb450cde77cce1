// The main thread's side of the media workers: starts one worker per configured core, places each
// session on its room's worker (a new room on the least-loaded one), routes commands and events,
// and survives a worker's death.
import { Worker } from 'node:worker_threads';
import { TypedEmitter } from '../media/typed-emitter.ts';
import type { ProviderFallbackInfo, RoomSeat, WorkerCommand, WorkerEvent, WorkerInit } from '../media/worker/worker-protocol.ts';
import type { WorkerStats, WorkerTelemetry } from '../media/worker/worker-stats.ts';
import type { MediaSessionOptions } from '../media/media-session.ts';
import type { IceCandidateInit } from '../media/peer.ts';
import type { Config } from './config.ts';
import type { VoiceConfig } from './voice-config.ts';

const WORKER_URL = new URL('./media-worker-entry.mjs', import.meta.url);
const REQUEST_TIMEOUT_MS = 15_000;

export type MediaSessionEvent = Exclude<
  WorkerEvent,
  { ev: 'reply' } | { ev: 'ready' } | { ev: 'activity' } | { ev: 'telemetry' } | { ev: 'providerfallback' } | { ev: 'activespeaker' }
>;

export type MediaPoolEvents = {
  /** An event for one session, from the worker that hosts it. */
  session: [event: MediaSessionEvent];
  activity: [sessionIds: string[]];
  telemetry: [report: WorkerTelemetry];
  /** A provider chain in a worker moved on to its next provider. */
  providerfallback: [info: ProviderFallbackInfo];
  /** Rooms: who is speaking in a room (null: nobody for a while). */
  activespeaker: [room: string, participantId: string | null];
  /** A worker died; these sessions lost their media. */
  workerexit: [workerIndex: number, sessionIds: string[], reason: string];
};

export class MediaError extends Error {
  override name = 'MediaError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

interface Pending {
  resolve: (value: { sdp?: string; stats?: WorkerStats }) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  worker: number;
}

class MediaWorkerHandle {
  readonly index: number;
  worker: Worker;
  readonly sessions = new Set<string>();
  ready: Promise<void>;
  alive = false;

  constructor(index: number, init: WorkerInit) {
    this.index = index;
    this.worker = new Worker(WORKER_URL, { workerData: init, execArgv: [...process.execArgv] });
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (event: WorkerEvent) => {
        if (event.ev === 'ready') {
          this.worker.off('message', onMessage);
          this.alive = true;
          resolve();
        }
      };
      this.worker.on('message', onMessage);
      this.worker.once('error', reject);
    });
  }
}

export class MediaPool extends TypedEmitter<MediaPoolEvents> {
  readonly #config: Readonly<Config>;
  readonly #workers: MediaWorkerHandle[] = [];
  readonly #placement = new Map<string, MediaWorkerHandle>();
  /** Room name -> the worker all of its participants live on. */
  readonly #roomPlacement = new Map<string, MediaWorkerHandle>();
  readonly #pending = new Map<number, Pending>();
  #nextRequestId = 1;
  #closing = false;

  constructor(config: Readonly<Config>) {
    super();
    this.#config = config;
  }

  async start(): Promise<void> {
    const { mediaWorkers, rtcPortRange } = this.#config;
    // Split the UDP port range so workers never race for the same port.
    const span = Math.floor((rtcPortRange[1] - rtcPortRange[0] + 1) / mediaWorkers);
    for (let i = 0; i < mediaWorkers; i++) {
      const lo = rtcPortRange[0] + i * span;
      const hi = i === mediaWorkers - 1 ? rtcPortRange[1] : lo + span - 1;
      this.#workers.push(this.#spawn(i, [lo, hi]));
    }
    await Promise.all(this.#workers.map((w) => w.ready));
  }

  /** True when every worker thread is running (a dead one is being replaced). */
  get healthy(): boolean {
    return this.#workers.length > 0 && this.#workers.every((w) => w.alive);
  }

  get workerCount(): number {
    return this.#workers.length;
  }

  workerOf(sessionId: string): number | null {
    return this.#placement.get(sessionId)?.index ?? null;
  }

  /** Opens a session's media on its room's worker (a new room goes to the least-loaded worker). */
  open(sessionId: string, options: MediaSessionOptions, room: RoomSeat): number {
    let handle = this.#roomPlacement.get(room.name);
    if (!handle || !handle.alive) {
      handle = this.#workers.reduce((best, w) => (w.sessions.size < best.sessions.size ? w : best));
      this.#roomPlacement.set(room.name, handle);
    }
    handle.sessions.add(sessionId);
    this.#placement.set(sessionId, handle);
    this.#post(handle, { op: 'open', sessionId, options, room });
    return handle.index;
  }

  /** The room closed: its next participant may be placed anywhere. */
  closeRoom(room: string): void {
    this.#roomPlacement.delete(room);
  }

  /** Rooms: stops or resumes forwarding `participantId` to this session's client. */
  setSubscriptionMuted(sessionId: string, participantId: string, muted: boolean): void {
    const handle = this.#placement.get(sessionId);
    if (handle) this.#post(handle, { op: 'subscription', sessionId, participantId, muted });
  }

  /** Rooms: forwards only these participants to this session's client (null: everyone). */
  subscribe(sessionId: string, participantIds: string[] | null): void {
    const handle = this.#placement.get(sessionId);
    if (handle) this.#post(handle, { op: 'subscribe', sessionId, participantIds });
  }

  /** Rooms: the agent listens to this session's participant from now on. */
  designateAgent(sessionId: string): void {
    const handle = this.#placement.get(sessionId);
    if (handle) this.#post(handle, { op: 'agent', sessionId });
  }

  /** Re-sends an unanswered server offer, or offers if the session's tracks changed. */
  renegotiate(sessionId: string): void {
    const handle = this.#placement.get(sessionId);
    if (handle) this.#post(handle, { op: 'renegotiate', sessionId });
  }

  async acceptOffer(sessionId: string, sdp: string): Promise<string> {
    const result = await this.#request(sessionId, (requestId) => ({ op: 'offer', sessionId, sdp, requestId }));
    return result.sdp ?? '';
  }

  async acceptAnswer(sessionId: string, sdp: string): Promise<void> {
    await this.#request(sessionId, (requestId) => ({ op: 'answer', sessionId, sdp, requestId }));
  }

  async addCandidate(sessionId: string, candidate: IceCandidateInit | null): Promise<void> {
    await this.#request(sessionId, (requestId) => ({ op: 'candidate', sessionId, candidate, requestId }));
  }

  /** Server-initiated ICE restart; returns the restart offer for the client. */
  async restartIce(sessionId: string): Promise<string> {
    const result = await this.#request(sessionId, (requestId) => ({ op: 'restartIce', sessionId, requestId }));
    return result.sdp ?? '';
  }

  /** Makes the session's agent speak `text` now (agent modes only). */
  async say(sessionId: string, text: string): Promise<void> {
    await this.#request(sessionId, (requestId) => ({ op: 'say', sessionId, text, requestId }));
  }

  /** Full rejoin: replaces the session's peer connection; the next client offer negotiates it. */
  async replacePeer(sessionId: string): Promise<void> {
    await this.#request(sessionId, (requestId) => ({ op: 'replacePeer', sessionId, requestId }));
  }

  setMuted(sessionId: string, muted: boolean): void {
    const handle = this.#placement.get(sessionId);
    if (handle) this.#post(handle, { op: 'mute', sessionId, muted });
  }

  close(sessionId: string): void {
    const handle = this.#placement.get(sessionId);
    if (!handle) return;
    this.#placement.delete(sessionId);
    handle.sessions.delete(sessionId);
    this.#post(handle, { op: 'close', sessionId });
  }

  /** Sessions hosted per worker, from the main thread's bookkeeping. */
  placements(): number[] {
    return this.#workers.map((w) => w.sessions.size);
  }

  async stats(reset = false): Promise<WorkerStats[]> {
    return Promise.all(
      this.#workers.map(async (handle) => {
        const result = await this.#send(handle, (requestId) => ({ op: 'stats', requestId, reset }));
        return result.stats!;
      }),
    );
  }

  /** Ends a worker abruptly, as a crash would (used by tests of worker failure). */
  async terminateWorker(index: number): Promise<void> {
    await this.#workers[index]?.worker.terminate();
  }

  async stop(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new MediaError('SERVER_ERR_SHUTDOWN', 'server is shutting down'));
    }
    this.#pending.clear();
  }

  #spawn(index: number, portRange: [number, number]): MediaWorkerHandle {
    const init: WorkerInit = {
      workerIndex: index,
      portRange,
      hostAddresses: [...this.#config.rtcHostAddresses],
      announcedAddress: this.#config.rtcAnnouncedAddress,
      voice: structuredClone(this.#config.voice) as VoiceConfig,
      roomAgentListens: this.#config.rooms.agentListens,
    };
    const handle = new MediaWorkerHandle(index, init);
    handle.worker.on('message', (event: WorkerEvent) => this.#onWorkerEvent(event));
    handle.worker.on('error', (error) => process.emitWarning(`media worker ${index} error: ${error.stack ?? error}`));
    handle.worker.once('exit', (code) => this.#onWorkerExit(handle, portRange, `exit code ${code}`));
    return handle;
  }

  #onWorkerExit(handle: MediaWorkerHandle, portRange: [number, number], reason: string): void {
    handle.alive = false;
    if (this.#closing) return;
    const lost = [...handle.sessions];
    handle.sessions.clear();
    for (const id of lost) this.#placement.delete(id);
    for (const [room, placed] of this.#roomPlacement) if (placed === handle) this.#roomPlacement.delete(room);
    // Requests in flight to that worker will never be answered.
    for (const [requestId, pending] of this.#pending) {
      if (pending.worker === handle.index) {
        clearTimeout(pending.timer);
        this.#pending.delete(requestId);
        pending.reject(new MediaError('MEDIA_ERR_WORKER_DIED', 'the media worker hosting this session stopped'));
      }
    }
    const replacement = this.#spawn(handle.index, portRange);
    this.#workers[handle.index] = replacement;
    this.safeEmit('workerexit', handle.index, lost, reason);
  }

  #onWorkerEvent(event: WorkerEvent): void {
    switch (event.ev) {
      case 'reply': {
        const pending = this.#pending.get(event.requestId);
        if (!pending) return;
        this.#pending.delete(event.requestId);
        clearTimeout(pending.timer);
        if (event.ok) pending.resolve({ sdp: event.sdp, stats: event.stats });
        else pending.reject(new MediaError(event.code, event.message));
        return;
      }
      case 'ready':
        return;
      case 'activity':
        this.safeEmit('activity', event.sessionIds);
        return;
      case 'telemetry':
        this.safeEmit('telemetry', event.report);
        return;
      case 'providerfallback':
        this.safeEmit('providerfallback', event.info);
        return;
      case 'activespeaker':
        this.safeEmit('activespeaker', event.room, event.participantId);
        return;
      default:
        this.safeEmit('session', event);
    }
  }

  #request(sessionId: string, build: (requestId: number) => WorkerCommand): Promise<{ sdp?: string; stats?: WorkerStats }> {
    const handle = this.#placement.get(sessionId);
    if (!handle) return Promise.reject(new MediaError('SESSION_ERR_NOT_FOUND', 'session has no media'));
    return this.#send(handle, build);
  }

  #send(handle: MediaWorkerHandle, build: (requestId: number) => WorkerCommand): Promise<{ sdp?: string; stats?: WorkerStats }> {
    const requestId = this.#nextRequestId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(new MediaError('MEDIA_ERR_TIMEOUT', 'the media worker did not answer in time'));
      }, REQUEST_TIMEOUT_MS);
      const pending: Pending = { resolve, reject, timer, worker: handle.index };
      this.#pending.set(requestId, pending);
      this.#post(handle, build(requestId));
    });
  }

  #post(handle: MediaWorkerHandle, command: WorkerCommand): void {
    handle.worker.postMessage(command);
  }
}
