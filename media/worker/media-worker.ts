// Entry of a media worker thread: owns its sessions' peers, jitter buffers, codecs and pipelines.
// A thin message loop around MediaSession; a bad command or packet never takes the thread down.
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { MediaSession, type MediaClock, type MediaSessionOptions } from '../media-session.ts';
import { LatencyHistogram } from '../latency-histogram.ts';
import { GlareError, InvalidStateError, NoPortsError } from '../peer.ts';
import { addJitterStats, emptyTotals, emptyVadTotals, EventLoopLag, sparseBuckets, subtractTotals, type PacketTotals, type VadTotals, type WorkerStats, type WorkerTelemetry } from './worker-stats.ts';
import type { RoomSeat, WorkerCommand, WorkerEvent, WorkerInit } from './worker-protocol.ts';
import { createConversation, providersWarm, readVadTotals } from './conversation-hook.ts';
import type { Conversation, ConversationWorkerEvent } from '../conversation-events.ts';
import { WorkerRooms } from './worker-rooms.ts';

const POLL_INTERVAL_MS = 10;
const FRAME_MS = 20;
const ACTIVITY_INTERVAL_MS = 1000;

if (!parentPort) throw new Error('media-worker must run in a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;
/** Rooms: the agent hears every participant, not only the one it is attached to. */
const listensToAll = init.roomAgentListens === 'all';
const clock: MediaClock = { now: () => performance.now(), wall: () => Date.now() };
const sessions = new Map<string, MediaSession>();
const conversations = new Map<string, Conversation>();
const latency = new LatencyHistogram();
const lag = new EventLoopLag();
const telemetryLag = new EventLoopLag();
let reportedTotals: PacketTotals = emptyTotals();
let reportedVad: VadTotals = emptyVadTotals();
const closedTotals = emptyTotals();
const rooms = new WorkerRooms(clock.now, (event) => post(event));

const post = (event: WorkerEvent): void => port.postMessage(event);

port.on('message', (command: WorkerCommand) => {
  try {
    handle(command);
  } catch (error) {
    if ('requestId' in command) fail(command.requestId, error);
  }
});

function handle(command: WorkerCommand): void {
  switch (command.op) {
    case 'open':
      open(command.sessionId, command.options, command.room);
      return;
    case 'offer':
      reply(command.requestId, session(command.sessionId).peer.acceptOffer(command.sdp).then((sdp) => ({ sdp })));
      return;
    case 'answer':
      reply(command.requestId, session(command.sessionId).peer.acceptAnswer(command.sdp).then(() => ({})));
      return;
    case 'candidate':
      reply(command.requestId, session(command.sessionId).peer.addCandidate(command.candidate).then(() => ({})));
      return;
    case 'restartIce':
      reply(
        command.requestId,
        session(command.sessionId).peer.createOffer({ iceRestart: true }).then((sdp) => {
          rooms.postTracks(command.sessionId);
          return { sdp };
        }),
      );
      return;
    case 'replacePeer':
      reply(command.requestId, session(command.sessionId).replacePeer().then(() => ({})));
      return;
    case 'mute':
      session(command.sessionId).setMuted(command.muted);
      return;
    case 'say': {
      const conversation = conversations.get(command.sessionId);
      if (!conversation) throw new InvalidStateError('this session has no agent to speak');
      conversation.say(command.text);
      post({ ev: 'reply', requestId: command.requestId, ok: true });
      return;
    }
    case 'close':
      void closeSession(command.sessionId);
      return;
    case 'subscription':
      rooms.setSubscriptionMuted(command.sessionId, command.participantId, command.muted);
      return;
    case 'subscribe':
      rooms.subscribe(command.sessionId, command.participantIds);
      return;
    case 'agent': {
      const media = session(command.sessionId);
      if (!media.agent) attachAgent(command.sessionId, media);
      return;
    }
    case 'renegotiate':
      session(command.sessionId).renegotiate();
      return;
    case 'stats':
      post({ ev: 'reply', requestId: command.requestId, ok: true, stats: stats(command.reset) });
      return;
  }
}

function open(sessionId: string, options: MediaSessionOptions, seat: RoomSeat): void {
  if (sessions.has(sessionId)) return;
  const media = new MediaSession(
    sessionId,
    options,
    { portRange: init.portRange, hostAddresses: init.hostAddresses, announcedAddress: init.announcedAddress },
    clock,
    latency,
  );
  sessions.set(sessionId, media);
  media.onDeadline = schedulePoll;
  media.on('candidate', (candidate) => post({ ev: 'candidate', sessionId, candidate }));
  media.on('connection', (state) => post({ ev: 'connection', sessionId, state }));
  media.on('media', (info) => post({ ev: 'media', sessionId, ...info }));
  media.on('quality', (report) => post({ ev: 'quality', sessionId, report }));
  media.on('speechstart', (at) => post({ ev: 'speech', sessionId, phase: 'start', at }));
  media.on('offer', (sdp) => {
    rooms.postTracks(sessionId); // the mapping first, so the client knows the new m-lines' participants
    post({ ev: 'offer', sessionId, sdp });
  });
  rooms.join(seat, sessionId, media);
  media.setAgent(false);
  if (seat.agent) attachAgent(sessionId, media);
  else if (listensToAll) agentOfRoom(sessionId)?.listenTo?.(media, seat.participantId);
}

/** The conversation of the agent in this session's room (hosted by another participant's session). */
function agentOfRoom(sessionId: string): Conversation | null {
  for (const mate of rooms.roommates(sessionId)) {
    const conversation = conversations.get(mate.sessionId);
    if (conversation) return conversation;
  }
  return null;
}

/** The agent (or the echo) listens to this session's participant from now on. */
function attachAgent(sessionId: string, media: MediaSession): void {
  media.setAgent(true);
  media.listenAlong(null); // it may have been heard along with a former host
  const options = media.options;
  const report = (event: ConversationWorkerEvent): void => post({ ev: 'conversation', sessionId, event });
  const conversation = options.mode === 'echo' ? null : createConversation(media, options, report, listensToAll ? rooms.participantOf(sessionId) : null);
  if (conversation) {
    conversations.set(sessionId, conversation);
    if (listensToAll) {
      for (const mate of rooms.roommates(sessionId)) {
        const mateMedia = sessions.get(mate.sessionId);
        if (mateMedia) conversation.listenTo?.(mateMedia, mate.participantId);
      }
    }
    media.on('listen', (event, at) => {
      if (event.type === 'speech_start') post({ ev: 'speech', sessionId, phase: 'start', at });
    });
    return;
  }
  media.on('utterance', (info) => post({ ev: 'utterance', sessionId, ...info }));
  media.on('response', ({ playout: _playout, ...info }) => post({ ev: 'response', sessionId, ...info }));
}

function session(sessionId: string): MediaSession {
  const media = sessions.get(sessionId);
  if (!media) throw new InvalidStateError(`no media for session ${sessionId}`);
  return media;
}

async function closeSession(sessionId: string): Promise<void> {
  const media = sessions.get(sessionId);
  if (!media) return;
  sessions.delete(sessionId);
  if (listensToAll && !conversations.has(sessionId)) agentOfRoom(sessionId)?.stopListening?.(media);
  rooms.leave(sessionId);
  conversations.get(sessionId)?.close();
  conversations.delete(sessionId);
  addJitterStats(closedTotals, media.jitterBuffer.toJSON());
  await media.close();
  post({ ev: 'closed', sessionId });
}

function reply(requestId: number, work: Promise<{ sdp?: string }>): void {
  work.then(
    (value) => post({ ev: 'reply', requestId, ok: true, ...value }),
    (error) => fail(requestId, error),
  );
}

function fail(requestId: number, error: unknown): void {
  const code =
    error instanceof GlareError ? 'SIG_ERR_GLARE'
    : error instanceof InvalidStateError ? 'SIG_ERR_OUT_OF_ORDER'
    : error instanceof NoPortsError ? 'MEDIA_ERR_NO_PORTS'
    : 'MEDIA_ERR_NEGOTIATION';
  post({
    ev: 'reply',
    requestId,
    ok: false,
    code,
    message: (error as Error)?.message ?? String(error),
  });
}

function packetTotals(): PacketTotals {
  const packets = { ...closedTotals };
  for (const media of sessions.values()) addJitterStats(packets, media.jitterBuffer.toJSON());
  return packets;
}

function stats(reset: boolean): WorkerStats {
  const packets = packetTotals();
  const loop = lag.read(reset);
  const memory = process.memoryUsage();
  const value: WorkerStats = {
    workerIndex: init.workerIndex,
    sessions: sessions.size,
    eventLoopLagP99Ms: loop.p99Ms,
    eventLoopLagMaxMs: loop.maxMs,
    packets,
    latencyBuckets: sparseBuckets(latency),
    heapUsedBytes: memory.heapUsed,
    externalBytes: memory.external,
    forwarded: rooms.stats(),
  };
  const vad = readVadTotals();
  if (vad) value.vad = vad;
  const warm = providersWarm();
  if (warm !== null) value.providersWarm = warm;
  if (reset) latency.reset();
  return value;
}

// Jitter-buffer release and concealment: one timer for the worker, set to the earliest deadline of
// any session (at most POLL_INTERVAL_MS away), so a held packet is released when it is due rather
// than at the next fixed tick.
let pollTimer: NodeJS.Timeout | null = null;
let pollAt = Infinity;
function schedulePoll(at: number): void {
  if (at >= pollAt) return;
  if (pollTimer) clearTimeout(pollTimer);
  pollAt = at;
  pollTimer = setTimeout(runPoll, Math.max(1, at - performance.now()));
}
function runPoll(): void {
  pollTimer = null;
  pollAt = Infinity;
  let next = performance.now() + POLL_INTERVAL_MS;
  for (const media of sessions.values()) {
    media.poll();
    const due = media.jitterBuffer.nextDeadlineMs();
    if (due !== null && due < next) next = due;
  }
  schedulePoll(next);
}
schedulePoll(performance.now() + POLL_INTERVAL_MS);

// Outbound pacing: one 20 ms frame per responding session per tick, on a drift-free schedule.
let nextFrameAt = performance.now() + FRAME_MS;
function pace(): void {
  for (const media of sessions.values()) {
    if (media.responding) {
      try {
        media.sendNextFrame();
      } catch (error) {
        process.emitWarning(`session ${media.id}: send failed: ${(error as Error).message}`);
      }
    }
  }
  const now = performance.now();
  nextFrameAt += FRAME_MS;
  if (nextFrameAt < now) nextFrameAt = now + FRAME_MS; // fell behind: skip, never burst
  setTimeout(pace, nextFrameAt - now);
}
setTimeout(pace, FRAME_MS);

// Once a second, one pass over the sessions: which received media (idle timeout), and telemetry as
// deltas since the last report, so each packet is counted exactly once in the main thread.
setInterval(() => {
  const totals = { ...closedTotals };
  const samples: WorkerTelemetry['sessions'] = [];
  const active: string[] = [];
  for (const media of sessions.values()) {
    const jb = media.jitterBuffer.toJSON();
    addJitterStats(totals, jb);
    samples.push({ jitterBufferDelayMs: jb.targetDelayMs, jitterMs: jb.jitterMs });
    if (media.takeMediaSeen()) active.push(media.id);
  }
  const delta = subtractTotals(totals, reportedTotals);
  reportedTotals = totals;
  if (active.length > 0) post({ ev: 'activity', sessionIds: active });
  const report: WorkerTelemetry = { workerIndex: init.workerIndex, delta, eventLoopLagP99Ms: telemetryLag.read(true).p99Ms, sessions: samples };
  const vad = readVadTotals();
  if (vad) {
    report.vad = subtractTotals(vad, reportedVad);
    reportedVad = vad;
  }
  post({ ev: 'telemetry', report });
}, ACTIVITY_INTERVAL_MS);

post({ ev: 'ready' });
